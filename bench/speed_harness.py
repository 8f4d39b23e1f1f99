"""How fast shotfit renders and trains, beside a naive baseline and the machine's own limit.

Everything is measured in one process, one after the other, so the ratios hold on a shared and
noisy machine even where the absolute numbers wander:

- the **peak**: the best GFLOP/s of a plain 3x3 convolution (and a square matrix product) in each
  precision, the ceiling any network made of convolutions can approach;
- **rendering**: megapixels per second of the default network at 1080p and 4K, naive (eager fp32,
  contiguous memory, the whole frame at once; PyTorch's defaults, so TF32 convolutions on CUDA) and
  as shotfit renders (BatchNorm folded, channels-last, tiles, the precision it picks), with each
  step on its own, the achieved GFLOP/s as a share of the peak, and how far each output lies from
  strict fp32 (no TF32) in 8- and 16-bit code values;
- **training**: patches per second of the default config, naive (eager fp32, contiguous) and through
  shotfit's own training step, the share of a step spent drawing the batch, and the loss curves of
  both from the same start;
- **memory**: peak RSS (and CUDA's max allocated) rendering one 4K and one 8K frame with default
  settings, each in a fresh process.

``bench/speed.py`` runs it and prints JSON; docs/performance.md holds the results. The training part
is :mod:`bench.speed_training`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import shotfit
from shotfit.archs import build_network, resolve_network_args
from shotfit.compare.costs import flops_per_pixel, median_seconds
from shotfit.config import Config
from shotfit.device import cpu_has_native_bf16, pick_device
from shotfit.errors import ShotfitError
from shotfit.infer.optimize import InferenceNetwork, fold_batchnorm, resolve_precision, strict_fp32, wants_compile
from shotfit.infer.predictor import Predictor
from shotfit.infer.tile_plan import default_tile
from shotfit.infer.tiling import tiled_forward
from shotfit.io import ColourPipeline, PixelFormat, resolve_colour

SIZES = {"1080p": (1080, 1920), "4K": (2160, 3840), "8K": (4320, 7680)}


def frame_size(name: str) -> tuple[int, int]:
    """(height, width) of ``name``: one of :data:`SIZES`, or WIDTHxHEIGHT such as ``"640x360"``."""
    if name in SIZES:
        return SIZES[name]
    width, sep, height = name.partition("x")
    if not (sep and width.isdigit() and height.isdigit()):
        raise ShotfitError(f"frame size {name!r} is not one of {', '.join(SIZES)} or WIDTHxHEIGHT")
    return int(height), int(width)


def machine(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "threads": torch.get_num_threads(), "device": str(device),
                            "cpu": _cpu_name(), "cpu_bf16": cpu_has_native_bf16()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# --- the machine's limit -----------------------------------------------------------------------

def precisions(device: torch.device) -> list[str]:
    """The precisions worth measuring here: bf16 where the CPU has it natively, fp16 and bf16 on CUDA."""
    if device.type == "cuda":
        return ["fp32", "fp16", "bf16"]
    return ["fp32", "bf16"] if cpu_has_native_bf16() else ["fp32"]


_DTYPE = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def conv_peak(device: torch.device, precision: str, repeats: int = 3, scale: float = 1.0) -> dict[str, Any]:
    """The best GFLOP/s of a 3x3 convolution over a few shapes like the default network's, channels-last.

    ``scale`` shrinks the images (tests); the shapes are (channels in, out, side): 32 -> 32 at 1024,
    64 -> 64 at 512 and 128 -> 128 at 256, each 2 * 9 * C_in * C_out FLOPs per pixel.
    """
    dtype = _DTYPE[precision]
    best: dict[str, Any] = {"gflops": 0.0}
    for c_in, c_out, side in ((32, 32, 1024), (64, 64, 512), (128, 128, 256)):
        side = max(int(side * scale), 8)
        x = torch.randn(1, c_in, side, side, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
        w = torch.randn(c_out, c_in, 3, 3, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            seconds = median_seconds(lambda x=x, w=w: F.conv2d(x, w, padding=1), device, repeats)
        gflops = 2 * 9 * c_in * c_out * side * side / seconds / 1e9
        if gflops > best["gflops"]:
            best = {"gflops": round(gflops, 1), "shape": f"3x3 {c_in}->{c_out} at {side}x{side}"}
    return best


def matmul_peak(device: torch.device, precision: str, n: int = 4096, repeats: int = 3) -> float:
    """GFLOP/s of an n x n matrix product."""
    a = torch.randn(n, n, device=device, dtype=_DTYPE[precision])
    b = torch.randn(n, n, device=device, dtype=_DTYPE[precision])
    seconds = median_seconds(lambda: a @ b, device, repeats)
    return round(2 * n**3 / seconds / 1e9, 1)


# --- rendering ---------------------------------------------------------------------------------

def test_frame(size: tuple[int, int], image: np.ndarray, device: torch.device) -> torch.Tensor:
    """``image`` (H, W, 3) in [0, 1] resized to ``size`` as a (1, 3, H, W) network input in [-1, 1]."""
    height, width = size
    resized = cv2.resize(image.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    x = torch.from_numpy(np.ascontiguousarray(np.clip(resized, 0.0, 1.0).transpose(2, 0, 1)))[None]
    return (x * 2 - 1).to(device)


def code_values(a: torch.Tensor, b: torch.Tensor, bits: int) -> int:
    """The largest difference of two [-1, 1] outputs once written as ``bits``-bit codes."""
    top = 2**bits - 1
    codes = [torch.round((t.float().clamp(-1, 1) + 1) * (top / 2)) for t in (a, b)]
    return int((codes[0] - codes[1]).abs().max())


def render_variants(network: nn.Module, device: torch.device, cfg: Config) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Each way of rendering a frame, by name: the naive baseline, each step alone, and shotfit's default."""
    network = network.to(device).eval()
    variants: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"naive": network}
    folded = fold_batchnorm(network)
    variants["BatchNorm folded"] = folded
    variants["channels-last"] = _channels_last_only(network)
    variants["folded + channels-last"] = InferenceNetwork(network, "fp32")
    for precision in precisions(device)[1:]:
        variants[f"folded + channels-last + {precision}"] = InferenceNetwork(network, precision)
    # compiled variants are the default's rows on CUDA (compile is on there); each compile takes a minute
    return variants


def _channels_last_only(network: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    moved = copy.deepcopy(network).to(memory_format=torch.channels_last).eval()
    return lambda x: moved(x.contiguous(memory_format=torch.channels_last))


def shotfit_render(network: nn.Module, device: torch.device, cfg: Config, bits: int) -> tuple[str, Callable]:
    """How ``shotfit render`` runs a frame written at ``bits`` bits with default settings: its precision and runner."""
    fmt = PixelFormat(".png", f"uint{bits}", 3)
    precision = resolve_precision(cfg.render.precision, device, fmt)
    runner = InferenceNetwork(network.to(device).eval(), precision, compile=wants_compile(cfg.render.compile, device))
    return precision, lambda x: tiled_forward(runner, x, default_tile(cfg.render.tile, device.type, *x.shape[-2:]),
                                              cfg.render.tile_overlap, cfg.render.blend)


def measure_render(network: nn.Module, image: np.ndarray, device: torch.device, cfg: Config, sizes: list[str],
                   repeats: int, peaks: dict[str, float], all_variants_at: tuple[str, ...] = ("1080p",),
                   scale: float = 1.0, other_tiles: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    """Every render variant at every size: seconds, MP/s, ratio to naive, share of the peak, code differences.

    ``other_tiles``: also shotfit's default with these tile sizes (8-bit output).
    """
    flops = flops_per_pixel(network.to(device).eval(), device)
    rows = []
    for size_name in sizes:
        size = tuple(max(int(s * scale), 16) for s in frame_size(size_name))
        x = test_frame(size, image, device)
        variants = render_variants(network, device, cfg)
        if size_name not in all_variants_at:
            variants = {"naive": variants["naive"]}
        for bits in (8, 16):
            precision, runner = shotfit_render(network, device, cfg, bits)
            variants[f"shotfit default, {bits}-bit output ({precision})"] = runner
        for tile in other_tiles:
            tiled_cfg = dataclasses.replace(cfg, render=dataclasses.replace(cfg.render, tile=tile))
            precision, runner = shotfit_render(network, device, tiled_cfg, 8)
            variants[f"shotfit, tile {tile}, 8-bit output ({precision})"] = runner
        with torch.inference_mode(), strict_fp32(device):  # what every output is compared with
            reference = network.to(device).eval()(x)
        naive_seconds = None
        for name, run in variants.items():
            with torch.inference_mode():
                seconds = median_seconds(lambda run=run, x=x: run(x), device, repeats)
                y = run(x)
            if naive_seconds is None:
                naive_seconds = seconds
            mp_s = size[0] * size[1] / seconds / 1e6
            precision = _precision_of(name)
            gflops = flops * mp_s / 1e3
            rows.append({
                "size": size_name, "height": size[0], "width": size[1], "variant": name, "precision": precision,
                "seconds": round(seconds, 4), "mp_per_s": round(mp_s, 4),
                "speedup": round(naive_seconds / seconds, 3), "gflops": round(gflops, 1),
                "of_peak": round(gflops / peaks[precision], 3) if peaks.get(precision) else None,
                "max_codes_8bit": code_values(y, reference, 8), "max_codes_16bit": code_values(y, reference, 16),
            })
            del y
    return rows


def _precision_of(name: str) -> str:
    for precision in ("bf16", "fp16"):
        if precision in name:
            return precision
    return "fp32"


# --- memory ------------------------------------------------------------------------------------

def memory_probe(size_name: str, device_spec: str, float_frames: bool) -> dict[str, Any]:
    """Render one frame of ``size_name`` through the default Predictor in this process; peak memory.

    Run in a fresh process (``measure_memory``), so the peak is this render's alone.
    """
    device = pick_device(device_spec)
    cfg = Config()
    fmt = PixelFormat(".exr", "half", 3) if float_frames else PixelFormat(".png", "uint8", 3)
    network = build_network(cfg.model.arch, **resolve_network_args(cfg.model.arch, dict(cfg.model.args)))
    predictor = Predictor(network, ColourPipeline(resolve_colour(fmt)), device, cfg.render.tile,
                          cfg.render.tile_overlap, cfg.render.blend, cfg.render.precision, fmt,
                          wants_compile(cfg.render.compile, device))
    height, width = frame_size(size_name)
    rng = np.random.default_rng(0)
    frame = rng.random((height, width, 3), dtype=np.float32) * (4.0 if float_frames else 1.0)
    before = _rss_mb()
    started = time.perf_counter()
    out = predictor(frame)
    seconds = time.perf_counter() - started
    result = {"size": size_name, "height": height, "width": width, "frames": fmt.describe(),
              "precision": predictor.precision, "seconds": round(seconds, 2),
              "tile": default_tile(predictor.tile, device.type, height, width),
              "rss_before_mb": round(before), "peak_rss_mb": round(_rss_mb()), "output_ok": bool(np.isfinite(out).all())}
    if device.type == "cuda":
        result["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    return result


def _rss_mb() -> float:
    """This process's peak resident memory in MB.

    Linux's VmHWM, not getrusage's ru_maxrss: a child process started by fork and exec inherits its
    parent's ru_maxrss (a 7.8 GB parent made every probe report 7.8 GB), while VmHWM starts afresh.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def measure_memory(sizes: list[str], device_spec: str, float_frames: bool = True) -> list[dict[str, Any]]:
    """:func:`memory_probe` for each size, each in its own process."""
    rows = []
    for size_name in sizes:
        code = ("import json, sys; from bench.speed_harness import memory_probe; "
                f"print(json.dumps(memory_probe({size_name!r}, {device_spec!r}, {float_frames!r})))")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_probe_environment())
        if done.returncode != 0:
            rows.append({"size": size_name, "error": done.stderr.strip().splitlines()[-1:]})
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def _probe_environment() -> dict[str, str]:
    """This environment, with the same shotfit and bench package importable in the probe's process."""
    roots = [str(Path(shotfit.__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*roots, *filter(None, [os.environ.get("PYTHONPATH")])])}
