"""A trained network made ready for rendering: BatchNorm folded into its convolutions, channels-last
memory, and reduced precision only where the output stays within one code value of fp32.

What each step bought on the 2-core CPU (AVX-512, AVX-512-BF16) with the default network at 1080p,
against eager fp32 in contiguous memory (``bench/speed.py``; docs/performance.md has the tables):
folding and channels-last together 1.54x (1.61x as ``shotfit render`` runs it), which puts the
network at 78% of the machine's fp32 convolution peak. bf16 runs 3.0x, but differs from fp32 by 3-4
8-bit code values on real frames, so it is never chosen for you on the CPU.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from shotfit.errors import ConfigError
from shotfit.infer.tiling import declared_tiling
from shotfit.io import PixelFormat

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "tf32", "bf16", "fp16")
# tf32: fp32 tensors, but CUDA convolutions and matrix products round their inputs to 10-bit mantissas
_DTYPES = {"fp32": None, "tf32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# what a network declares for tiling; the wrapper passes it on
# the process-wide TF32 flags, switched by strict_fp32 (an RLock: a network may nest forward passes)
_TF32_FLAGS = threading.RLock()


def fold_batchnorm(network: nn.Module) -> nn.Module:
    """A copy of ``network`` in eval mode with every BatchNorm2d that follows a Conv2d in a Sequential
    folded into that convolution's weights and bias (the BatchNorm becomes an Identity).

    In eval mode BatchNorm is an affine map per channel, so the folded network computes the same
    function (to float rounding, ~1e-6) with one pass over each activation less.
    """
    folded = copy.deepcopy(network).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, norm = module[i], module[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and norm.track_running_stats:
                module[i] = fuse_conv_bn_eval(conv, norm)
                module[i + 1] = nn.Identity()
    return folded


class InferenceNetwork(nn.Module):
    """``network`` for rendering: folded BatchNorm, channels-last memory, optional autocast, compiled if asked.

    Takes and returns (B, C, H, W) float32 like the network (the output in channels-last memory, whose
    (H, W, C) view is contiguous), so tiling and everything after it are unchanged; declares the same
    ``size_multiple``, ``tile_overlap`` and ``max_tile``.

    Args:
        network: a trained image-to-image network.
        precision: ``"fp32"`` (strict, also on CUDA), ``"tf32"`` (CUDA's TensorFloat-32 convolutions),
            ``"bf16"`` or ``"fp16"`` (autocast: convolutions in that dtype).
        channels_last: NHWC memory, which oneDNN (CPU) and cuDNN (tensor cores) convolve faster.
        compile: wrap in ``torch.compile`` (worth it on CUDA; on the CPU it made rendering slower).
    """

    def __init__(self, network: nn.Module, precision: str = "fp32", channels_last: bool = True,
                 compile: bool = False) -> None:
        super().__init__()
        if precision not in _DTYPES:
            raise ConfigError(f"render precision {precision!r} is not one of {', '.join(_DTYPES)}")
        self.size_multiple, self.tile_overlap, self.max_tile = declared_tiling(network)
        body = fold_batchnorm(network)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.body = body.to(memory_format=self.memory_format)
        self.precision = precision
        self.dtype = _DTYPES[precision]
        self.run = torch.compile(self.body) if compile else self.body
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        x = x.contiguous(memory_format=self.memory_format)
        with torch.autocast(x.device.type, dtype=self.dtype or torch.bfloat16, enabled=self.dtype is not None), \
                strict_fp32(x.device if self.precision == "fp32" else None):
            y = self.run(x)
        return y.float()


@contextlib.contextmanager
def strict_fp32(device: torch.device | None) -> Iterator[None]:
    """fp32 that is fp32 on CUDA: cuDNN's default TF32 convolutions keep 10 bits of mantissa, which
    moved 16-bit renders by 140 code values on an H200.

    torch (2.13) has no per-call or per-thread switch for TF32: ``allow_tf32`` and its successor
    ``fp32_precision`` are process-wide flags. So they are turned off only around this forward pass,
    under a lock that keeps two threads from restoring each other's values; CUDA work in another
    thread meanwhile (a training on the same process's GPU) runs without TF32 too. On the CPU, where
    TF32 does not exist, nothing is touched.
    """
    if device is None or device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    with _TF32_FLAGS:
        matmul = torch.backends.cuda.matmul.allow_tf32
        try:
            torch.backends.cuda.matmul.allow_tf32 = False
            with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                             allow_tf32=False):
                yield
        finally:
            torch.backends.cuda.matmul.allow_tf32 = matmul


def wants_compile(setting: str, device: torch.device) -> bool:
    """Whether render.compile = ``setting`` (auto, always, never) compiles on ``device``: auto means on CUDA."""
    return setting == "always" or (setting == "auto" and device.type == "cuda")


def resolve_precision(spec: str, device: torch.device, fmt: PixelFormat | None) -> str:
    """The precision a render runs in: ``spec``, or for ``"auto"`` the fastest that keeps output
    within one code value of fp32 where we measured it to.

    ``auto`` is fp16 on CUDA for integer outputs of at most 8 bits (checked on the first frame, see
    :func:`code_difference`), and fp32 everywhere else: on the CPU bf16 moved 8-bit outputs by up to
    4 code values, and no reduced precision (TF32 included) holds 16-bit or float outputs to one code
    value.
    """
    if spec not in PRECISIONS:
        raise ConfigError(f"render.precision = {spec!r} is not one of {', '.join(PRECISIONS)}")
    if spec != "auto":
        return spec
    if device.type == "cuda" and fmt is not None and fmt.bits is not None and fmt.bits <= 8:
        return "fp16"
    return "fp32"


def code_difference(fast: np.ndarray, reference: np.ndarray, fmt: PixelFormat) -> float:
    """The largest difference between two renders of a frame, in code values of ``fmt``.

    Integer formats compare the codes the file will hold; float formats count the spacing of their
    own dtype at the reference's value (a half-float ulp, say). 1.0 means "one code value".
    """
    if fmt.max_code is None:
        storage = np.float16 if fmt.dtype == "half" else np.float32
        diff = np.abs(fast.astype(storage).astype(np.float64) - reference.astype(storage).astype(np.float64))
        step = np.spacing(np.abs(reference).astype(storage)).astype(np.float64)
        return float((diff / step).max(initial=0.0))

    def codes(pixels: np.ndarray) -> np.ndarray:  # as the file will hold them
        return np.rint(np.clip(pixels, 0.0, 1.0) * fmt.max_code)

    return float(np.abs(codes(fast) - codes(reference)).max(initial=0.0))
