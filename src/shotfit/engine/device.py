"""Where the work runs: device choice, CPU threads and mixed precision."""

from __future__ import annotations

import contextlib
import logging

import torch

from shotfit.errors import ConfigError

log = logging.getLogger(__name__)


def pick_device(spec: str = "auto") -> torch.device:
    """The device for ``spec``: "auto" takes CUDA, then Apple's MPS, then the CPU.

    An explicit device that this machine lacks is a ConfigError rather than a silent fallback.
    """
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"train.device = {spec!r} is not a device (auto, cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {spec!r} but this machine has no CUDA device")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device = {spec!r} but this machine has no MPS device")
    return device


def configure_threads(threads: int = 0) -> int:
    """Use ``threads`` CPU threads for torch; 0 keeps torch's own choice (one per core, or
    ``OMP_NUM_THREADS`` when set, so a farm's limits are respected)."""
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def autocast_dtype(device: torch.device, amp: str = "auto") -> torch.dtype | None:
    """The mixed-precision dtype for ``amp`` on ``device``, or None for full fp32.

    "auto" means bf16 on CUDA cards that support it (no loss scaling needed), fp16 on older ones,
    and fp32 elsewhere: on the CPU reduced precision changes the loss curve for little gain in training.
    """
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """An autocast context for ``dtype``, or a no-op one for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
