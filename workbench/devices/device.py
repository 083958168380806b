"""Where training runs: CUDA, Apple MPS or CPU, and which autocast precision that device earns."""
import contextlib
import os

import torch

from workbench.errors import WorkbenchError


def pick_device(name="auto"):
    """'auto' takes the fastest available device; an explicit name must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise WorkbenchError(f"--device {name}: not a device name; use auto, cpu, cuda, cuda:N or mps.") from e
    if device.type not in ("cpu", "cuda", "mps"):   # meta, xpu, ...: torch knows the name, the workbench does not run there
        raise WorkbenchError(f"--device {name}: the workbench runs on auto, cpu, cuda, cuda:N or mps only.")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise WorkbenchError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise WorkbenchError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}.")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise WorkbenchError(f"--device {name}: Apple MPS is not available on this machine; use --device cpu or auto.")
    return device


def autocast_dtype(device, enabled, cpu_bf16=False):
    """bf16 where the GPU supports it (no loss scaling needed), else fp16. On a CPU, float32 unless
    `cpu_bf16` asks for bf16 and the CPU computes it natively (AVX512-BF16 or AMX); emulated bf16
    is slower than float32."""
    if not enabled:
        return None
    if device.type == "cpu":
        return torch.bfloat16 if cpu_bf16 and cpu_has_native_bf16() else None
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def cpu_has_native_bf16():
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device, dtype):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def out_of_memory(e):
    """Whether `e` is the device (or the host) running out of memory, however torch spells it."""
    if isinstance(e, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(t in text.lower() for t in ("not enough memory", "out of memory",
                                                                             "can't allocate memory"))


def memory_hint(e, lower):
    """The one line for an out-of-memory `e`: how much was asked for (when torch says) and what to lower."""
    import re

    asked = re.search(r"allocate (\d+) bytes", str(e)) or re.search(r"allocate ([\d.]+ [GMK]iB)", str(e))
    size = asked.group(1) if asked else None
    if size and size.isdigit():
        size = f"{int(size) / 2**30:.1f} GiB"
    return f"out of memory{f' (asked for {size})' if size else ''}; lower {lower}."


def host_memory():
    """Bytes of physical memory (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
