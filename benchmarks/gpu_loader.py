"""Does the loader starve the GPU? The training loader's crops/s from a folder of 12 MP JPEGs and
from the same photos prepared as shards, per worker and with the automatic worker count of this
machine, beside the model's consumption rate; and what one 12 MP JPEG costs to decode on the CPU
(Pillow, as the loader does; torchvision) and on the GPU (nvJPEG through torchvision.io).

A part of benchmarks/gpu.py (`--no-loader` leaves it out).
"""
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import throughput_data
import torch
from PIL import Image
from throughput_photos import _photo

PHOTOS = 8
FULL, QUICK = (4000, 3000), (400, 300)


def make_jpegs(folder, count, size):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        _photo([], i).resize(size, Image.Resampling.BICUBIC).save(folder / f"photo{i}.jpg", quality=90)
    return folder


def crops_per_s(data, workers, seconds, size=64, recipe="superres"):
    """Crops/s of `recipe`'s training loader over `seconds` after its first batch (workers started)."""
    plugins = throughput_data.wb_plugins.load()
    r = throughput_data.wb_recipe.load(recipe, plugins, [f"data.size={size}", f"data.workers={workers}"])
    r["data"]["train"] = str(data)
    loader, sampler = throughput_data.training_loader(r, plugins)
    resolved = loader.num_workers
    epoch, n = 0, 0
    sampler.set_epoch(epoch)
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        try:
            n += len(next(it)["damaged"])
        except StopIteration:
            epoch += 1
            sampler.set_epoch(epoch)
            it = iter(loader)
    rate = n / (time.perf_counter() - t0)
    del it, loader
    return rate, resolved


def decode_ms(jpeg_path, device, repeats=3):
    """Milliseconds to decode one JPEG: Pillow (the loader's way), torchvision on the CPU, and nvJPEG."""
    data = Path(jpeg_path).read_bytes()
    out = {}

    def best(fn):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return round(1000 * min(times), 1)

    out["pillow_ms"] = best(lambda: np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    try:
        from torchvision.io import decode_jpeg

        raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        out["torchvision_cpu_ms"] = best(lambda: decode_jpeg(raw))
        if device.type == "cuda":
            decode_jpeg(raw, device=device)   # warm up nvJPEG
            out["nvjpeg_ms"] = best(lambda: (decode_jpeg(raw, device=device), torch.cuda.synchronize(device)))
    except (ImportError, RuntimeError) as e:   # a torchvision without image support, or no nvJPEG
        out["note"] = str(e).splitlines()[0][:120]
    return out


def loader_rows(device, model_img_s, *, quick):
    """Rows {source, workers, crops_s, model_img_s, feeds} and the decode costs."""
    from workbench.data.prepare import prepare

    seconds = 1.0 if quick else 8.0
    with tempfile.TemporaryDirectory(prefix="wb-gpu-loader-") as tmp:
        jpegs = make_jpegs(Path(tmp) / "jpegs", 2 if quick else PHOTOS, QUICK if quick else FULL)
        shards = Path(tmp) / "shards"
        prepare(str(jpegs), shards, size=96 if quick else 480, step=48 if quick else 240, workers=0, progress=False)
        rows = []
        for name, data in (("12 MP JPEG folder" if not quick else "JPEG folder", jpegs), ("prepared shards", shards)):
            for workers in (0, -1):
                rate, resolved = crops_per_s(data, workers, seconds)
                rows.append({"source": name, "workers": resolved, "crops_s": round(rate, 1),
                             "model_img_s": model_img_s, "feeds": None if not model_img_s else rate >= model_img_s})
        decode = decode_ms(next(jpegs.glob("*.jpg")), device)
    return rows, decode


def markdown(rows, decode, cores):
    out = ["", "## Loader vs model (`benchmarks/gpu.py`)", "",
           f"superres at 64 px; {cores} cores; workers 0 = one loader process's rate, the other row the automatic count.",
           "", "| source | workers | crops/s | model images/s (amp+cl) | loader keeps up |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        out.append(f"| {r['source']} | {r['workers']} | {r['crops_s']:.1f} | {r['model_img_s'] or '-'} | "
                   f"{'-' if r['feeds'] is None else ('yes' if r['feeds'] else 'no')} |")
    out += ["", "One JPEG decoded: " + ", ".join(f"{k} {v}" for k, v in decode.items())]
    return "\n".join(out)
