"""`workbench export`: a trained model as a .safetensors, TorchScript or ONNX file, told by the name's suffix.

- `.safetensors`: the weights, with the resolved recipe, task and versions as metadata
  (workbench.runs.exported); `restore` and `export` itself take it in place of a run.
- `.torchscript`: `torch.jit.trace` of the model (the suffix Ultralytics uses); `torch.jit.load` runs it.
- `.onnx`: opset 18 (torchlib's own opset, so nothing is converted; onnxruntime has run it since 1.14),
  with dynamic batch, height and width.

TorchScript and ONNX hold the model's forward alone, traced at an odd-sized example image: the pad to a
multiple of the stride and the crop back are traced as arithmetic on the input's size, so the graph takes
other sizes too, and a model that `takes_mask` gets a second input, the bool mask (True = missing; ONNX
refuses such a model, see `export_run`). The graph is then run at other sizes and compared with the model
(`TOLERANCE`); a graph that disagrees is refused, not written. The smallest side it accepts is found by
trying and kept in its metadata (a U-Net's reflect padding needs some pixels; the PyTorch model falls
back to replicate padding there, a branch the trace does not keep).
"""
import contextlib
import io
import json
import operator
import warnings
from pathlib import Path

import torch

from workbench.api.contracts import call_model, capability
from workbench.errors import WorkbenchError, first_line
from workbench.runs import checkpoint, exported
from workbench.runs.files import atomic_write
from workbench.runs.outputs import check_file

FORMATS = {".safetensors": "safetensors", ".torchscript": "TorchScript", ".onnx": "ONNX"}
OPSET = 18
# Largest difference allowed between the exported graph and the model: for outputs in [0, 1], 1e-4; for larger
# ones (an untrained net's), 1e-4 of the largest, as float32 rounding grows with the values.
TOLERANCE = 1e-4
# Traced at H x W = 37 x 4099: odd sides, so the model's pad to a multiple of its stride is traced, not
# skipped; long, so a loop that runs once per halving of the image (the masked U-Net's push-pull fill,
# workbench.images.masks) is traced as often as a photo of up to 8192 px a side needs. Batch 2: torch.export
# fixes a batch of 1 for good.
EXAMPLE = (2, 37, 4099)
CHECKS = ((2, 23, 37), (1, 97, 131))   # (batch, H, W) the graph is compared with the model at
PROBE = 24         # smallest sides tried: 1 .. PROBE - 1
ONNX_EXTRA = "ONNX export needs the onnx extra: pip install -e '.[onnx]'"


def format_of(out):
    """'safetensors', 'TorchScript' or 'ONNX', from the suffix of `out`."""
    suffix = Path(out).suffix.lower()
    if Path(out).is_dir():
        raise WorkbenchError(f"{out} is a folder; -o takes the file to write, e.g. {Path(out) / 'model.safetensors'}.")
    if suffix in FORMATS:
        return FORMATS[suffix]
    known = ", ".join(FORMATS)
    if suffix in (".pt", ".pth", ".ts"):
        raise WorkbenchError(f"{out}: {suffix} is ambiguous here (checkpoints are .pt); end the name in {known} "
                             "(.torchscript for TorchScript).")
    raise WorkbenchError(f"{out}: cannot tell the export format from the name; end it in one of {known}.")


def require_onnx():
    """The ONNX packages, or the one line saying how to install them."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401   torch's ONNX exporter (dynamo=True) is written in it
    except ImportError:
        raise WorkbenchError(ONNX_EXTRA) from None


def export_run(where, out, *, plugins, which="best", overwrite=False):
    """Write the model of run (or checkpoint, or exported file) `where` to `out` -> a dict saying what was written."""
    fmt = format_of(out)
    if fmt == "ONNX":
        require_onnx()   # before the model is loaded
    source = checkpoint.locate(where, which)
    check_file(out, overwrite=overwrite, inputs=[source])
    model, state = checkpoint.load_model(where, plugins, which)
    model.eval()
    if fmt == "ONNX" and capability(model, "takes_mask"):
        raise WorkbenchError(f"{where}: this model takes a mask, and torch's ONNX exporter (torch.export) needs tens of "
                             "minutes for its fill, whose steps depend on the image size; export to .torchscript "
                             "(inputs img and mask) or .safetensors instead.")
    task = checkpoint.task_of(state, plugins)
    meta = exported.metadata(state, task=task, source=source)
    info = {"format": fmt, "source": source, "out": Path(out), "task": task, "epoch": state.get("epoch")}
    if fmt == "safetensors":
        data = _safetensors(model, meta)
    else:
        takes_mask = bool(capability(model, "takes_mask"))
        make = _torchscript if fmt == "TorchScript" else _onnx
        data, info["min_side"] = make(model, takes_mask, meta, where)
        info["inputs"] = "img, mask" if takes_mask else "img"
    atomic_write(out, lambda f: f.write(data), replace=overwrite, what=f"the {fmt} export")
    return info


def _safetensors(model, meta):
    from safetensors.torch import save

    # Own contiguous copies: safetensors refuses tensors that share memory (tied weights, views)
    return save({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, metadata=meta)


def _inputs(batch, h, w, takes_mask, seed=0):
    """A random image batch and, for a model that takes one, a mask: a hole in the middle, and on the second
    image everything missing but one pixel (the hardest fill)."""
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(batch, 3, h, w, generator=g)
    if not takes_mask:
        return (img,)
    mask = torch.zeros(batch, 1, h, w, dtype=torch.bool)
    mask[0, :, h // 4:h - h // 4, w // 4:w - w // 4] = True
    if batch > 1:
        mask[1:] = True
        mask[1:, :, h // 3, w // 3] = False
    return img, mask


def _verify(model, run, takes_mask, fmt, where):
    """Compare the graph `run(*inputs) -> tensor` with the model at CHECKS; refuse a disagreement. Returns the
    smallest side the graph takes."""
    for batch, h, w in CHECKS:
        inputs = _inputs(batch, h, w, takes_mask, seed=h)
        error = _difference(model, run, inputs)
        if error is not None:
            raise WorkbenchError(f"{where}: the {fmt} graph does not reproduce the model on a {batch} x {h} x {w} batch "
                                 f"({error}): its forward depends on the image size in a way tracing cannot record; "
                                 "export to .safetensors instead (restore reads it).")
    for n in range(1, PROBE):
        if _difference(model, run, _inputs(1, n, n, takes_mask)) is None:
            return n
    return PROBE


def _difference(model, run, inputs):
    """None where the graph matches the model on `inputs`, else what went wrong, in a few words."""
    with torch.no_grad():
        try:
            want = call_model(model, *inputs).float()
        except Exception:   # the model itself refuses this size: nothing to compare
            return "the model itself fails"
        try:
            got = run(*inputs)
        except Exception as e:
            return f"it fails: {first_line(e)[:160]}"
    if got.shape != want.shape:
        return f"output {tuple(got.shape)}, the model's {tuple(want.shape)}"
    diff, limit = (got.float() - want).abs().max().item(), TOLERANCE * max(1.0, want.abs().max().item())
    return None if diff <= limit else f"max difference {diff:.2g} > {limit:.2g}"


@contextlib.contextmanager
def _quiet():
    """The exporters' progress lines and warnings (TracerWarnings on the traced shape arithmetic, which
    `_verify` checks, and torch.jit's deprecation) stay off the command's output."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _failed(fmt, where, e):
    first = first_line(e)[:200]
    return WorkbenchError(f"{where}: torch cannot export this model to {fmt} ({first}); export to .safetensors instead.")


def _torchscript(model, takes_mask, meta, where):
    try:
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(model, _inputs(*EXAMPLE, takes_mask), check_trace=False)
            buf = io.BytesIO()
            torch.jit.save(traced, buf)
            loaded = torch.jit.load(io.BytesIO(buf.getvalue()))   # check what is written, not what is in memory
    except Exception as e:
        raise _failed("TorchScript", where, e) from e
    min_side = _verify(model, loaded, takes_mask, "TorchScript", where)
    extra = {"workbench.json": json.dumps({**meta, "workbench.min_side": str(min_side)})}
    buf = io.BytesIO()
    with _quiet():
        torch.jit.save(traced, buf, _extra_files=extra)
    return buf.getvalue(), min_side


def _floordiv():
    """Python's floor division of two int64s in ONNX. torchlib translates `operator.floordiv` (the traced
    size arithmetic) as a truncating Div, right for positive operands only, while the U-Net rounds up with
    -(-h // s) * s: untranslated, every odd size came out a pixel short."""
    from onnx import TensorProto
    from onnxscript import INT64
    from onnxscript import opset18 as op

    def floordiv(a: INT64, b: INT64) -> INT64:
        inexact = op.Not(op.Equal(op.Mod(a, b), op.Constant(value_int=0)))
        signs_differ = op.Equal(op.Less(a, op.Constant(value_int=0)), op.Greater(b, op.Constant(value_int=0)))
        return op.Sub(op.Div(a, b), op.Cast(op.And(inexact, signs_differ), to=TensorProto.INT64))
    return floordiv


def _onnx(model, takes_mask, meta, where):
    import onnx
    import onnxruntime as ort

    names = ["img", "mask"][: 1 + takes_mask]
    dims = {0: "batch", 2: "height", 3: "width"}   # torch.onnx makes each a Dim.DYNAMIC with this name
    # dynamo=True (torch.export): the TorchScript-based exporter (dynamo=False) is deprecated since torch 2.9 and
    # has the same truncating floor division, fixable only through a global symbolic registration; this one
    # takes a translation per call, and needs only onnxscript, installed with the extra (no network).
    try:
        with _quiet():
            program = torch.onnx.export(model, _inputs(*EXAMPLE, takes_mask), dynamo=True, opset_version=OPSET,
                                        input_names=names, output_names=["out"], dynamic_shapes=tuple(dims for _ in names),
                                        custom_translation_table={operator.floordiv: _floordiv()}, verbose=False)
        proto = program.model_proto
        data = proto.SerializeToString()
    except Exception as e:
        raise _failed("ONNX", where, e) from e
    opts = ort.SessionOptions()
    opts.log_severity_level = 4   # probing too-small sizes fails on purpose: no error logs on the terminal
    session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])

    def run(*inputs):
        return torch.from_numpy(session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})[0])
    min_side = _verify(model, run, takes_mask, "ONNX", where)
    onnx.helper.set_model_props(proto, {**meta, "workbench.min_side": str(min_side)})
    return proto.SerializeToString(), min_side
