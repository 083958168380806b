"""Training crops cut in uint8 and batches in lanes: the same pixels as the float path, each photo
decoded once per epoch, the same batches with any workers or processes, resume without replay."""
import numpy as np
import pytest
import torch
from PIL import Image

from workbench.data import PairDataset, crops, open_source, train_loader
from workbench.data.lanes import LaneSampler, auto_workers
from workbench.errors import WorkbenchError


class Noise:   # module level: DataLoader workers unpickle it
    def __call__(self, img, rng):
        return (img + torch.from_numpy(rng.normal(0, 0.05, img.shape).astype(np.float32))).clamp(0, 1)


def photos(folder, n=9, h=40, w=56):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = np.random.default_rng(i).integers(0, 256, (h + i, w - i, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"p{i}.png")
    return open_source(folder)


class Counting:
    """A source that counts decodes per image (in this process)."""

    def __init__(self, src):
        self.src, self.reads = src, {}

    def __getattr__(self, name):
        return getattr(self.src, name)

    def __len__(self):
        return len(self.src)

    def pixels(self, i):
        self.reads[i] = self.reads.get(i, 0) + 1
        return self.src.pixels(i)


def pairs(src, **kw):
    opts = dict(size=16, pad=4, flip=True, seed=3, crops_per_image=3, repeat=2)
    return PairDataset(src, range(len(src)), [("noise", Noise())], **{**opts, **kw})


@pytest.mark.parametrize("shape", [(3, 40, 56), (3, 16, 16), (3, 9, 30), (3, 8, 200)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_cutting_the_stored_photo_gives_the_padded_float_crop(shape, dtype):
    """train_region on uint8 (or 16-bit-as-float) pixels equals padding the float photo and cropping it."""
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
    pixels = pixels if dtype == torch.uint8 else pixels.float() / 255
    size, margin = 16, 4
    assert crops.can_cut(shape, size, margin)
    img = pixels.float() / 255 if dtype == torch.uint8 else pixels
    for seed in range(20):
        fast = crops.train_region(pixels, np.random.default_rng(seed), size, margin)
        fast = fast.float() / 255 if dtype == torch.uint8 else fast
        padded = crops.pad_to(crops.pad(img, margin, margin, margin, margin), size)
        rng = np.random.default_rng(seed)
        top, left = int(rng.integers(padded.shape[1] - size + 1)), int(rng.integers(padded.shape[2] - size + 1))
        assert torch.equal(fast, padded[:, top:top + size, left:left + size])


def test_a_plain_key_gives_the_same_item_as_before_the_uint8_path(tmp_path):
    """Item (epoch, i) through the uint8 cut equals the float path (pad, pad_to, crop) on the same rng."""
    src = photos(tmp_path / "p", n=3)
    ds = pairs(src)
    for key in [(0, 0), (1, 2), (5, 1)]:
        item = ds[key]
        rng = np.random.default_rng([3, key[0], key[1]])
        clean = ds._flip_and_trivial(ds._crop_padded(src.load(key[1] % 3), rng), rng).contiguous()
        assert torch.equal(item["clean"], clean)
        assert torch.equal(item["damaged"], Noise()(clean, rng))


def lane_batches(ds, *, batch_size, workers=0, rank=0, world=1, epoch=0, skip=0):
    loader, sampler = train_loader(ds, batch_size=batch_size, workers=workers, rank=rank, world=world)
    sampler.set_epoch(epoch, skip)
    return list(loader)


def same(a, b):
    return all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in ("damaged", "clean", "mask", "index")) and len(a) == len(b)


def test_each_photo_is_decoded_once_per_epoch_and_gives_its_crops(tmp_path):
    src = Counting(photos(tmp_path / "p", n=8))
    ds = pairs(src, repeat=1)            # 8 photos, 4 lanes: 2 photos x 3 crops per lane
    batches = lane_batches(ds, batch_size=4)
    assert len(batches) == 6 and all(b["clean"].shape == (4, 3, 16, 16) for b in batches)
    assert src.reads == {i: 1 for i in range(8)}
    index = torch.stack([b["index"] for b in batches])   # steps x lanes
    assert all(len(set(row.tolist())) == 4 for row in index)                  # a batch: 4 different photos
    assert sorted(index.flatten().tolist()) == sorted(list(range(8)) * 3)     # every photo's 3 crops


def test_workers_do_not_change_the_batches(tmp_path):
    ds = pairs(photos(tmp_path / "p"), trivial_augment=True)
    serial = lane_batches(ds, batch_size=4, workers=0, epoch=1)
    assert same(serial, lane_batches(ds, batch_size=4, workers=2, epoch=1))
    assert same(serial, lane_batches(ds, batch_size=4, workers=3, epoch=1))   # not a divisor: slower, same
    assert not torch.equal(serial[0]["clean"], lane_batches(ds, batch_size=4, epoch=2)[0]["clean"])


def test_the_ranks_batches_together_are_the_one_process_batch(tmp_path):
    ds = pairs(photos(tmp_path / "p"), repeat=1)
    whole = lane_batches(ds, batch_size=6)
    parts = [lane_batches(ds, batch_size=3, rank=r, world=2) for r in range(2)]
    assert len(whole) == len(parts[0]) == len(parts[1])
    for w, a, b in zip(whole, *parts):
        assert all(torch.equal(w[k], torch.cat([a[k], b[k]])) for k in ("damaged", "clean", "index"))
    reads = [set(torch.cat([b["index"] for b in p]).tolist()) for p in parts]
    assert not reads[0] & reads[1]   # each rank decodes its own photos


def test_a_resumed_epoch_starts_at_its_step(tmp_path):
    ds = pairs(photos(tmp_path / "p"))
    full = lane_batches(ds, batch_size=4, workers=0, epoch=2)
    assert same(full[5:], lane_batches(ds, batch_size=4, workers=2, epoch=2, skip=5))


def test_damage_first_and_small_photos_go_through_lanes(tmp_path):
    src = photos(tmp_path / "p", n=4, h=6, w=12)     # smaller than the crop: the float path pads them
    for damage_first in (False, True):
        batches = lane_batches(pairs(src, damage_first=damage_first), batch_size=4)
        assert batches and all(b["clean"].shape == (4, 3, 16, 16) for b in batches)


def test_labels_travel_with_the_lane_batches(tmp_path):
    for c in ("a", "b"):
        photos(tmp_path / "l" / c, n=3)
    src = open_source(tmp_path / "l")
    batch = lane_batches(pairs(src, labels="source"), batch_size=4)[0]
    assert batch["label"].tolist() == [src.label(i) for i in batch["index"].tolist()]


def test_automatic_crops_and_repeat_and_too_small_an_epoch(tmp_path):
    assert crops.auto_crops(512 * 512, 64) == 16 and crops.auto_crops(2040 * 1356, 64) == 168
    assert crops.auto_crops(4000 * 3000, 64) == 256 and crops.auto_crops(64 * 64, 64) == 1
    src = photos(tmp_path / "p", n=2)
    ds = pairs(src, repeat=0, crops_per_image=0)
    assert ds.crops_per_image == 2 and ds.passes(lanes=16) == 64   # 256 crops: 2 photos x 2 crops x 64 passes
    with pytest.raises(WorkbenchError, match="raise data.repeat or set it to 0"):
        LaneSampler(pairs(src, repeat=1), batch_size=4)


def test_auto_workers_divide_the_lanes(monkeypatch):
    monkeypatch.setattr("workbench.data.lanes.cores", lambda: 7)
    assert auto_workers(16) == 4 and auto_workers(6) == 6 and auto_workers(1) == 1
    monkeypatch.setattr("workbench.data.lanes.cores", lambda: 1)
    assert auto_workers(16) == 1


def test_workers_start_after_the_parent_used_opencvs_thread_pool(tmp_path):
    """A loader worker forked after the parent ran a parallel OpenCV call used to hang for ever in
    cv2.setNumThreads (the child waited for the parent's pool threads): before_fork prevents it."""
    import subprocess
    import sys

    photos(tmp_path / "p", n=4)
    script = f"""
import cv2, numpy as np
from workbench.data import PairDataset, open_source, train_loader
cv2.cvtColor(np.zeros((960, 960, 3), np.uint8), cv2.COLOR_BGR2RGB)   # starts OpenCV's thread pool here
src = open_source({str(tmp_path / "p")!r})
loader, sampler = train_loader(PairDataset(src, range(4), [], size=16, crops_per_image=2, repeat=2), batch_size=4, workers=1)
print(len(list(loader)))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "4", done.stderr
