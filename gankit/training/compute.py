"""How the arithmetic runs: the device, precision, memory layout, torch.compile. Nothing here changes what a
step computes beyond rounding; each choice is a flag, and each was measured (benchmarks/ and
`gankit bench`) before becoming a default.
"""

from __future__ import annotations

import contextlib
import shutil
import sys

import torch
from torch import nn


def native_bf16(device: torch.device) -> bool:
    """True where bfloat16 matrix products run on dedicated hardware, so bf16 is faster, not
    just emulated: x86 CPUs with AVX512-BF16 or AMX, CUDA GPUs of compute capability 8.0+."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(cpu, name, lambda: False)()) for name in probes)
    return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The dtype that matmuls and convolutions run in: float32 or bfloat16.

    "auto" picks bf16 only where the hardware has it natively (on a 2-core AVX512-BF16 CPU it
    trained dcgan-small 1.5x faster; emulated bf16 is slower than fp32). Weights, optimiser
    state, BatchNorm statistics and losses stay float32 either way: autocast only lowers the
    inputs of the big products.
    """
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if native_bf16(device) else torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """"float32", "bfloat16": how logs and tables name a precision."""
    return str(dtype).removeprefix("torch.")


def autocast(device: torch.device, dtype: torch.dtype):
    """A context that runs the forward passes in `dtype` (a no-op for float32)."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def mixes_images(net: nn.Module) -> bool:
    """Whether an image's output depends on the other images of its batch: BatchNorm, or a layer
    that says so (`mixes_images = True`, as the minibatch-stddev layer). Real and fake images must
    then go through D in separate calls; otherwise one call does both."""
    return has_batchnorm(net) or any(getattr(m, "mixes_images", False) for m in net.modules())


def has_batchnorm(net: nn.Module) -> bool:
    """BatchNorm makes an output depend on the rest of the batch, so real and fake images must
    then go through D in separate calls (as in the seeds); without it one call does both."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def compile_unavailable(device: torch.device) -> str | None:
    """Why torch.compile cannot work here, or None: Inductor needs a C++ compiler on CPU and
    Triton on CUDA; torch.compile itself is missing on Windows for some Python versions."""
    if not hasattr(torch, "compile"):
        return "this PyTorch has no torch.compile"
    if device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++", "cl")):
        return "no C++ compiler on PATH (install g++ or clang)"
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "the triton package is not installed"
    if device.type == "mps":
        return "torch.compile does not support MPS well yet"
    return None


def compiled(net: nn.Module, device: torch.device, wanted: bool, *, warn=print) -> nn.Module:
    """`net` itself, or a torch.compile'd view of it sharing its parameters. The view is only for
    calling: state_dict() and checkpoints always use the plain module."""
    if not wanted:
        return net
    reason = compile_unavailable(device)
    if reason:
        warn(f"warning: --compile: {reason}; training without it")
        return net
    import torch._dynamo
    torch._dynamo.config.suppress_errors = True  # a graph that fails to compile runs eagerly
    return torch.compile(net, dynamic=False)


def to_channels_last(net: nn.Module, wanted: bool) -> nn.Module:
    """NHWC weights for the conv layers (inputs follow at the first conv); a no-op for MLPs."""
    if wanted:
        net.to(memory_format=torch.channels_last)
    return net


def warn_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pick_device(name: str) -> torch.device:
    """"auto" -> CUDA if present, then Apple's MPS, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from gankit.errors import UserError
        raise UserError("--device cuda: this PyTorch build sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name)
