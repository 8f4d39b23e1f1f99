"""What a network costs, measured rather than quoted: parameters, FLOPs per pixel, training step
time and rendering throughput.

Every number comes from the network as the registry builds it (its own few-shot defaults, or the
options given) on the machine at hand, in one process, so a table of architectures compares like
with like. Times are medians of several repeats after a warm-up, with the thread count stated.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from shotfit.archs import build_network, count_parameters
from shotfit.config import Config
from shotfit.infer.tile_plan import default_tile
from shotfit.infer.tiling import tiled_forward
from shotfit.losses import build_loss

# FLOPs are counted on a square this size: large enough that padding to a network's size multiple
# (up to 64 px) changes the per-pixel figure by little, small enough to count in a second.
FLOP_SIDE = 256


@dataclass(frozen=True)
class NetworkCosts:
    """One architecture's costs. ``flops_per_pixel`` counts convolutions and matrix products (what
    torch's FLOP counter sees: element-wise work such as a state-space scan is not in it)."""

    arch: str
    parameters: int
    flops_per_pixel: float
    train_step_s: float
    train_patches_per_s: float
    render_megapixels_per_s: float
    render_size: tuple[int, int]  # (height, width) of the rendered frame
    threads: int
    device: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_costs(arch: str, cfg: Config, render_size: tuple[int, int] = (720, 1280), repeats: int = 3,
                  device: str = "cpu", options: Mapping[str, Any] | None = None) -> NetworkCosts:
    """Measure ``arch`` built with ``options`` (default: its own defaults) under the training settings of ``cfg``.

    Runs on torch's thread count as the caller (an entry point) set it, and reports that count.

    Args:
        arch: a registered architecture.
        cfg: where the batch size, patch size, loss weights, learning rate and tiling come from.
        render_size: (height, width) of the frame whose render is timed (tiled as ``cfg.render`` says).
        repeats: timed repeats after one warm-up; the median is reported.
        device: where to measure.

    Returns:
        The costs; the training step includes the hybrid loss of ``cfg`` and an AdamW update.
    """
    # The weights only need to be some weights (costs are timings): a seeded draw on a forked random
    # state repeats the old initialisation without moving the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = build_network(arch, **dict(options or {}))
    net = net.to(device)
    # the config is this command's own (its --set), so the plug-ins it names are the user's to run
    loss = build_loss(cfg.loss, plugins={term.network for term in cfg.loss.extra})
    step_s = _train_step_seconds(net, cfg, loss.to(device), repeats, device)
    net.eval()
    flops = flops_per_pixel(net, device)
    render_s = _render_seconds(net, cfg, render_size, repeats, device)
    height, width = render_size
    batch = cfg.data.batch_size
    return NetworkCosts(arch, count_parameters(net), flops, step_s, batch / step_s,
                        height * width / render_s / 1e6, (height, width), torch.get_num_threads(), str(device))


def _train_step_seconds(net: torch.nn.Module, cfg: Config, loss: torch.nn.Module, repeats: int, device: str) -> float:
    """Median seconds of forward + hybrid loss + backward + AdamW step on one batch of patches."""
    side = cfg.augment.patch_size
    generator = torch.Generator().manual_seed(0)
    source = (torch.rand(cfg.data.batch_size, 3, side, side, generator=generator) * 2 - 1).to(device)
    target = (source * 0.8 + 0.1).clamp(-1, 1)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    net.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        total, _ = loss(net(source), target)
        total.backward()
        optimizer.step()

    return median_seconds(step, device, repeats)


def flops_per_pixel(net: torch.nn.Module, device: str | torch.device) -> float:
    """Forward FLOPs per pixel (convolutions and matrix products, as FlopCounterMode counts them)."""
    x = torch.zeros(1, int(getattr(net, "in_channels", 3)), FLOP_SIDE, FLOP_SIDE, device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(x)
    return counter.get_total_flops() / FLOP_SIDE**2


def _render_seconds(net: torch.nn.Module, cfg: Config, size: tuple[int, int], repeats: int, device: str) -> float:
    generator = torch.Generator().manual_seed(1)
    frame = (torch.rand(1, 3, *size, generator=generator) * 2 - 1).to(device)
    tile = default_tile(cfg.render.tile, torch.device(device).type, *size)
    return median_seconds(lambda: tiled_forward(net, frame, tile, cfg.render.tile_overlap, cfg.render.blend),
                          device, repeats)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU needs nothing)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(work: Any, device: str | torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``work`` over ``repeats`` runs after ``warmup`` untimed ones
    (allocator, kernels picked, LPIPS weights read)."""
    device = torch.device(device)
    for _ in range(warmup):
        work()
    times = []
    for _ in range(max(repeats, 1)):
        sync(device)
        started = time.perf_counter()
        work()
        sync(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)
