"""Choosing the device and the numeric precision; running out of memory on it."""

from __future__ import annotations

import torch

from ..errors import HFDError

PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, then Apple MPS, then the CPU. Any torch device string is accepted."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise HFDError(f"unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise HFDError(f"device '{name}' asked for, but this PyTorch has no CUDA GPU available")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise HFDError(f"device '{name}' asked for, but Apple MPS is not available")
    return device


def pick_dtype(device: torch.device, precision: str = "auto") -> torch.dtype:
    """Half precision on CUDA by default (bf16 where supported, else fp16); fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise HFDError(f"unknown precision '{precision}' (use one of {', '.join(PRECISIONS)})")
    if precision == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision != "fp32" and device.type == "cpu":
        raise HFDError(f"precision {precision} is for GPUs; on the CPU use fp32")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def is_out_of_memory(error: BaseException) -> bool:
    """A device (or host) allocation failure, as CUDA, MPS and the CPU allocator report it."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(
        text in str(error) for text in ("out of memory", "can't allocate memory", "Cannot allocate memory"))


def batch_for_memory(free_bytes: int, pair_bytes: int, most: int = 16, share: float = 0.6) -> int:
    """Pairs per model call that fit in ``share`` of the free memory, given one pair's measured peak."""
    return int(max(1, min(most, share * free_bytes // max(pair_bytes, 1))))
