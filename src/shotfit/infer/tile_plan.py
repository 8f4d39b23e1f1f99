"""Where tiles go and how they blend: shared by the PyTorch and the numpy (onnxruntime) renderers.

Near a tile edge that lies inside the frame, the network sees padding where the whole-frame pass
sees image. A depth-4 U-Net reaches 124 pixels, and padding within 64 pixels of a pixel moved it
by up to 4e-2 (on [-1, 1]) in our measurements, so a seam cannot simply feather over its overlap. Each
seam therefore spends its overlap in three parts: the outer 7/16 on either side is discarded (each
tile is trusted only that far inside its own edge) and the middle eighth is feathered from one
tile to the other with weights that sum to one. A tile edge that is also the frame's edge is not
feathered: the whole-frame pass sees the same padding there.

Tiles start on multiples of the network's ``size_multiple`` (2**depth for a U-Net), so every tile
pools and upsamples on the same grid as the whole frame; the last row and column of tiles end
exactly at the frame's far edge rather than running past it.

Nothing here imports torch: a machine with only onnxruntime renders through :func:`tiled_apply`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shotfit.errors import ConfigError

log = logging.getLogger(__name__)

BLEND_MODES = ("hann", "linear")
# Share of each seam discarded on either side; the middle eighth is feathered. A depth-4 U-Net's
# output still moves by up to 6e-4 (on [-1, 1]) when padding comes within 96 pixels, but by at
# most 4e-6 at 112 (measured on four nets, widths 8 and 32, trained 30 to 200 steps).
_DISCARD = 7 / 16
# Overlap for a module that declares none (a plain conv, a test double); every shotfit network
# declares its own (shotfit.archs.base.DeclaresTiling).
FALLBACK_OVERLAP = 64
# The tile a render uses when none is set (render.tile = 0). On CUDA, 4096: tiling a 4K frame at 1920
# ran at a quarter of the whole frame's speed (an H200). Elsewhere a frame of up to WHOLE_FRAME_PIXELS
# (1080p, 2K) renders whole, since tiles recompute their overlap (1.6x naive at 1080p whole, 1.45x in
# two tiles), and a larger one in CPU_TILE tiles, which keeps a 4K float render under 2 GB of memory
# (six 1920 tiles of the default network peaked at 2.0 GB, eight 1216 tiles at 1.7 GB).
CUDA_TILE = 4096
CPU_TILE = 1216
WHOLE_FRAME_PIXELS = 2048 * 1152

Span = tuple[int, int]


def default_tile(tile: int, device_type: str = "cpu", height: int = 0, width: int = 0) -> int:
    """``tile``, or for 0 ("auto") the tile for a ``height`` x ``width`` frame on ``device_type``:
    :data:`CUDA_TILE` on CUDA; elsewhere the whole frame up to :data:`WHOLE_FRAME_PIXELS`, else :data:`CPU_TILE`.
    """
    if tile:
        return tile
    if device_type == "cuda":
        return CUDA_TILE
    return max(height, width, CPU_TILE) if height * width <= WHOLE_FRAME_PIXELS else CPU_TILE


def resolve_tiling(tile: int, overlap: int | None, blend: str, multiple: int = 1, max_tile: int | None = None,
                   default_overlap: int = FALLBACK_OVERLAP, frame: tuple[int, int] | None = None) -> tuple[int, int]:
    """Check a tiling request and fill in its defaults: the tile (capped at ``max_tile``) and the overlap.

    ``frame`` (height, width), when given, is the frame to be rendered: one that fits in the tile has no
    seam, so a network whose reach is wider than half the tile (a depth-8 U-Net) still renders it whole
    instead of being refused; its overlap is then 0.

    Raises:
        ConfigError: ``tile``, ``overlap`` or ``blend`` out of range, in one line.
    """
    if blend not in BLEND_MODES:
        raise ConfigError(f"unknown tile blend {blend!r} (known: {', '.join(BLEND_MODES)})")
    if max_tile is not None and tile > int(max_tile):
        log.debug("tile %d capped at the network's max_tile %d", tile, max_tile)
        tile = int(max_tile)
    if overlap is None and frame is not None and max(frame) <= tile:
        return tile, 0
    if overlap is None:
        overlap = default_overlap
        if 2 * overlap > tile:
            raise ConfigError(
                f"tile size {tile} is too small for this network's default tile overlap of {overlap} pixels: "
                f"use a tile of at least {2 * overlap}"
            )
    if overlap < 0 or 2 * overlap > tile or tile - overlap < multiple:
        raise ConfigError(
            f"tile size {tile} with tile overlap {overlap}: the overlap must be from 0 to half the tile, "
            f"and the tile at least {multiple} pixels larger than the overlap"
        )
    return tile, overlap


@dataclass(frozen=True)
class TilePlan:
    """The tiles of one frame size and their blend weights (float64, separable: row weight x column weight).

    ``row_total`` and ``col_total`` are the per-position sums of the weights along each axis, by which
    the blended sum is divided (ones up to rounding).
    """

    height: int
    width: int
    rows: list[Span]
    cols: list[Span]
    row_weights: list[np.ndarray]
    col_weights: list[np.ndarray]
    row_total: np.ndarray
    col_total: np.ndarray

    def tiles(self) -> list[tuple[Span, Span, np.ndarray]]:
        """Every tile as ((top, bottom), (left, right), its 2-D weight (h, w) in float64), row by row."""
        return [(rows, cols, row_weight[:, None] * col_weight[None, :])
                for rows, row_weight in zip(self.rows, self.row_weights)
                for cols, col_weight in zip(self.cols, self.col_weights)]

    def total(self) -> np.ndarray:
        """(H, W) float64: the summed weight at every pixel."""
        return self.row_total[:, None] * self.col_total[None, :]


def plan_tiles(height: int, width: int, tile: int, overlap: int, multiple: int = 1, blend: str = "hann") -> TilePlan:
    """The tiles covering a ``height`` x ``width`` frame (see :func:`resolve_tiling` for the arguments)."""
    rows = _tile_spans(height, tile, overlap, multiple)
    cols = _tile_spans(width, tile, overlap, multiple)
    row_weights = _span_weights(rows, blend)
    col_weights = _span_weights(cols, blend)
    return TilePlan(height, width, rows, cols, row_weights, col_weights,
                    _summed(rows, row_weights, height), _summed(cols, col_weights, width))


def tiled_apply(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, tile: int, overlap: int | None = None,
                blend: str = "hann", multiple: int = 1, max_tile: int | None = None,
                default_overlap: int = FALLBACK_OVERLAP) -> np.ndarray:
    """The numpy twin of :func:`shotfit.infer.tiling.tiled_forward`: ``run`` tile by tile, blended.

    Args:
        run: maps (B, C, h, w) float32 -> (B, C_out, h, w) for any h, w (an onnxruntime session, say).
        x: (B, C, H, W) float32 frames in the range ``run`` expects.
        tile, overlap, blend: as for ``tiled_forward``; ``multiple``, ``max_tile`` and
            ``default_overlap`` are what a network object would declare (an exported file carries them).

    Returns:
        (B, C_out, H, W) float32: ``run(x)`` for a frame no larger than ``tile``, else the blended tiles.
    """
    if x.ndim != 4:
        raise ValueError(f"tiled_apply expects frames of shape (B, C, H, W), got {list(x.shape)}")
    height, width = x.shape[-2:]
    tile, overlap = resolve_tiling(tile, overlap, blend, multiple, max_tile, default_overlap, (height, width))
    if height <= tile and width <= tile:
        return run(x)
    plan = plan_tiles(height, width, tile, overlap, multiple, blend)
    log.debug("tiled_apply: %dx%d frame in %dx%d tiles, overlap %d", width, height, len(plan.cols), len(plan.rows),
              overlap)
    out: np.ndarray | None = None
    for (top, bottom), (left, right), weight in plan.tiles():
        result = run(np.ascontiguousarray(x[:, :, top:bottom, left:right]))
        if out is None:
            out = np.zeros((result.shape[0], result.shape[1], height, width), np.float32)
        out[:, :, top:bottom, left:right] += result * weight.astype(np.float32)
    assert out is not None  # at least one tile always runs
    return out / plan.total().astype(np.float32)


def _tile_spans(length: int, tile: int, overlap: int, multiple: int) -> list[Span]:
    """(start, end) of each tile along one axis.

    Uses as few tiles as ``tile`` allows, then shrinks them to the smallest multiple of ``multiple``
    that the same count still covers, and spreads them evenly: a 1080-pixel axis in 1024-pixel tiles
    becomes two 672-pixel tiles rather than two 1024s that nearly coincide. Starts are multiples of
    ``multiple``, neighbours overlap by at least ``overlap``, and the last tile ends at ``length``.
    """
    if length <= tile:
        return [(0, length)]

    def plan(size: int) -> tuple[int, int]:
        """The largest allowed step between starts, and where the last tile must start."""
        step = (size - overlap) // multiple * multiple
        # round the last start up, not down, so the last tile stays within ``size`` and ends at ``length``
        return step, math.ceil((length - size) / multiple) * multiple

    step, last = plan(tile)
    count = math.ceil(last / step) + 1
    size = tile
    for candidate in range(tile // multiple * multiple, overlap, -multiple):
        step_c, last_c = plan(candidate)
        if step_c <= 0 or last_c > (count - 1) * step_c:
            break
        size, step, last = candidate, step_c, last_c
    units = last // multiple
    starts = [(i * units) // (count - 1) * multiple for i in range(count)]
    return [(start, min(start + size, length)) for start in starts]


def _ramp(positions: np.ndarray, start: float, width: float, blend: str) -> np.ndarray:
    """Rises from 0 before ``start`` to 1 after ``start + width`` (pixel centres at ``positions + 0.5``)."""
    t = np.clip((positions + 0.5 - start) / width, 0.0, 1.0)
    if blend == "hann":
        return 0.5 - 0.5 * np.cos(math.pi * t)
    return t


def _span_weights(spans: list[Span], blend: str) -> list[np.ndarray]:
    """One 1-D blend weight per tile (float64), summing to one over the tiles at every position.

    At each seam the overlap ``[next_start, prev_end)`` is split into a discarded 7/16 on either
    side and a feathered middle eighth; with complementary ramps the two tiles' weights sum to one.
    """
    weights = [np.ones(end - start, dtype=np.float64) for start, end in spans]
    for i in range(len(spans) - 1):
        (prev_start, prev_end), (next_start, next_end) = spans[i], spans[i + 1]
        seam = prev_end - next_start
        feather_start = next_start + seam * _DISCARD
        feather_width = max(seam * (1.0 - 2.0 * _DISCARD), 1.0)
        prev_pos = np.arange(prev_start, prev_end, dtype=np.float64)
        next_pos = np.arange(next_start, next_end, dtype=np.float64)
        weights[i] = weights[i] * (1.0 - _ramp(prev_pos, feather_start, feather_width, blend))
        weights[i + 1] = weights[i + 1] * _ramp(next_pos, feather_start, feather_width, blend)
    return weights


def _summed(spans: list[Span], weights: list[np.ndarray], length: int) -> np.ndarray:
    """The per-position sum of the tiles' 1-D weights along one axis (ones, up to rounding, unless seams meet)."""
    total = np.zeros(length, dtype=np.float64)
    for (start, end), weight in zip(spans, weights):
        total[start:end] += weight
    if not bool((total > 0).all()):
        raise RuntimeError(f"tile weights vanish somewhere along an axis of {length} pixels with tiles {spans}")
    return total
