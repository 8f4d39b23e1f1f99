"""MambaIR (Guo et al., ECCV 2024): residual state-space groups that scan the whole frame in four directions."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from mambapy.pscan import pscan
from torch import Tensor, nn

from shotfit.archs.base import Network
from shotfit.archs.blocks import MAX_WIDTH, check_float, check_int
from shotfit.archs.registry import ARCHS
from shotfit.errors import ConfigError

ARCH = "mambair"
MAX_GROUPS = 16  # residual groups, and blocks in each: as SwinIR's bounds
MAX_BLOCKS = 64
# row-major, column-major, and both reversed: every pixel hears from the whole frame on every side
SCAN_DIRECTIONS = 4
# Longest stretch of the scan whose (B, T, d_state, 4 * d_inner) state is materialised at once, so
# memory stays linear in the pixel count whatever the frame size.
SCAN_CHUNK = 1 << 14
# chunk of the TorchScript / ONNX scan: log2 of it doubling passes over the whole state, against
# log2 of the chunk count over the chunks' end states
EXPORT_CHUNK = 16


def _scan_pieces(length: int, cap: int) -> list[int]:
    """``length`` as a sum of powers of two, each at most ``cap``, largest first.

    mambapy's pscan pads every sequence to the next power of two (96 x 96 = 9216 pixels would cost
    as much as 16384); scanning power-of-two pieces one after another and carrying the state across
    wastes nothing.
    """
    pieces: list[int] = []
    while length > 0:
        piece = cap
        while piece > length:
            piece //= 2
        pieces.append(piece)
        length -= piece
    return pieces


@torch.jit.unused
def _selective_scan_pscan(
    u: Tensor, delta: Tensor, A: Tensor, Bm: Tensor, Cm: Tensor, D: Tensor, chunk: int
) -> Tensor:
    """Mamba's S6 scan on mambapy's pscan: ``h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t``, and
    ``y_t = C_t . h_t + D u_t``. Used in training and eager inference; an ONNX export hands over to
    the plain-op scan.

    The state is laid out (B, T, N, K * D), channels innermost: the broadcasts over the state size
    then run over contiguous channels, which was 1.7x faster than Mamba's (..., D, N) at N = 2.

    Shape: u, delta (B, L, K, D); A (N, K, D); Bm, Cm (B, L, K, N); D (K, D) -> y (B, L, K, D).
    """
    if torch.onnx.is_in_onnx_export():
        return _scripted_export_scan()(u, delta, A, Bm, Cm, D, EXPORT_CHUNK)
    ys: list[Tensor] = []
    state: Tensor | None = None
    pieces = _scan_pieces(u.shape[1], chunk)
    # split rather than sliced: a slice's backward fills a zero tensor of the whole sequence per piece
    for v, d, b, c in zip(u.split(pieces, 1), delta.split(pieces, 1), Bm.split(pieces, 1), Cm.split(pieces, 1)):
        # built per piece from the small (B, T, K, *) inputs: the N-times-larger products never exist whole
        a = torch.exp(d.unsqueeze(2) * A).flatten(3)
        x = ((d * v).unsqueeze(2) * b.transpose(2, 3).unsqueeze(-1)).flatten(3)
        if state is not None:
            x[:, :1] += a[:, :1] * state
        states = pscan(a, x)
        state = states[:, -1:]
        ys.append((states.unflatten(3, A.shape[1:]) * c.transpose(2, 3).unsqueeze(-1)).sum(2) + v * D)
    return torch.cat(ys, dim=1) if len(ys) > 1 else ys[0]


def _selective_scan_export(
    u: Tensor, delta: Tensor, A: Tensor, Bm: Tensor, Cm: Tensor, D: Tensor, chunk: int
) -> Tensor:
    """The same scan in plain tensor ops for TorchScript and ONNX (mambapy's autograd Function is neither).

    Two levels of Hillis-Steele doubling: within chunks of ``chunk`` steps, all chunks at once, then
    across the chunks' end states; a last pass adds each chunk's incoming state. Its loops carry
    fixed-shape tensors only: an ONNX loop that appends a chunk per step ran in time quadratic in
    the frame size under onnxruntime. It holds the whole (B, L, N, K * D) state: a 640x640 frame
    took 1.4 times the eager path's memory.
    """
    batch, length, directions, channels = u.shape
    # padded at the end: steps after every real one change nothing before them
    pad = [0, 0, 0, 0, 0, (chunk - length % chunk) % chunk]
    u_p, delta_p = F.pad(u, pad), F.pad(delta, pad)
    count = u_p.shape[1] // chunk
    shape = [batch, count, chunk, A.shape[0], directions * channels]
    a = torch.exp(delta_p.unsqueeze(2) * A).reshape(shape)
    x = ((delta_p * u_p).unsqueeze(2) * F.pad(Bm, pad).transpose(2, 3).unsqueeze(-1)).reshape(shape)
    shift = 1
    while shift < chunk:
        x = x + a * F.pad(x, [0, 0, 0, 0, shift, 0])[:, :, :chunk]
        a = a * F.pad(a, [0, 0, 0, 0, shift, 0], value=1.0)[:, :, :chunk]
        shift *= 2
    # x now holds each chunk's states from a zero start, a the decay since the chunk began
    ends, decay = x[:, :, -1], a[:, :, -1]
    shift = 1
    while shift < count:
        ends = ends + decay * F.pad(ends, [0, 0, 0, 0, shift, 0])[:, :count]
        decay = decay * F.pad(decay, [0, 0, 0, 0, shift, 0], value=1.0)[:, :count]
        shift *= 2
    incoming = F.pad(ends, [0, 0, 0, 0, 1, 0])[:, :count]
    states = (x + a * incoming.unsqueeze(2)).reshape(batch, count * chunk, shape[3], directions, channels)
    return (states[:, :length] * Cm.transpose(2, 3).unsqueeze(-1)).sum(2) + u * D


@functools.cache
def _scripted_export_scan() -> Callable[..., Tensor]:
    """``_selective_scan_export`` compiled, so an ONNX trace records its loops rather than unrolling
    them for the example's size. Compiled on first export, not on import: torch.jit warns that it is
    deprecated, and scripting the whole network compiles the function anyway."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated")
        return torch.jit.script(_selective_scan_export)


class SS2D(nn.Module):
    """2D selective scan: Mamba's S6 run along four flattenings of the frame, summed back into 2D.

    Each direction has its own input-dependent ``delta``, ``B``, ``C`` projections, ``A`` and ``D``
    (as in MambaIR's ``SS2D``); the result is normalised and gated by SiLU of a second branch.

    Shape: (B, H, W, dim) -> (B, H, W, dim).
    """

    def __init__(self, dim: int, d_state: int, expand: float, chunk: int = SCAN_CHUNK) -> None:
        super().__init__()
        inner = max(1, int(expand * dim))
        rank = math.ceil(dim / 16)
        k = SCAN_DIRECTIONS
        self.inner, self.rank, self.d_state, self.chunk = inner, rank, d_state, chunk
        self.export_chunk = EXPORT_CHUNK
        self.in_proj = nn.Linear(dim, 2 * inner, bias=False)
        self.conv = nn.Conv2d(inner, inner, 3, padding=1, groups=inner)
        self.x_proj_weight = nn.Parameter(torch.empty(k, rank + 2 * d_state, inner))
        nn.init.uniform_(self.x_proj_weight, -(inner**-0.5), inner**-0.5)  # nn.Linear's default range
        # Mamba's initialisation: dt spread log-uniformly over [1e-3, 1e-1] through softplus, A = -(1..N)
        std = rank**-0.5
        self.dt_proj_weight = nn.Parameter(torch.empty(k, inner, rank).uniform_(-std, std))
        dt = torch.exp(torch.rand(k, inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)).clamp(min=1e-4)
        self.dt_proj_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        A = torch.arange(1, d_state + 1, dtype=torch.float32).view(-1, 1, 1).repeat(1, k, inner)
        self.A_log = nn.Parameter(torch.log(A))  # (N, K, D): state size outermost, see _selective_scan_pscan
        self.D = nn.Parameter(torch.ones(k, inner))
        self.out_norm = nn.LayerNorm(inner)
        self.out_proj = nn.Linear(inner, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        batch, height, width, _ = x.shape
        u, z = self.in_proj(x).chunk(2, dim=-1)
        u = F.silu(self.conv(u.permute(0, 3, 1, 2)))  # (B, D, H, W)
        rows = u.flatten(2).transpose(1, 2)
        cols = u.transpose(2, 3).flatten(2).transpose(1, 2)
        seqs = torch.stack([rows, cols], dim=2)
        seqs = torch.cat([seqs, seqs.flip(1)], dim=2)  # (B, L, 4, D)
        proj = torch.einsum("blkd,kcd->blkc", seqs, self.x_proj_weight)
        dt, Bm, Cm = torch.split(proj, [self.rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(torch.einsum("blkr,kdr->blkd", dt, self.dt_proj_weight) + self.dt_proj_bias)
        # the scan in float32 whatever the dtype: 9216 steps of a bfloat16 recurrence would drift
        u32, delta32, Bm, Cm = seqs.float(), delta.float(), Bm.float(), Cm.float()
        A, D = -torch.exp(self.A_log.float()), self.D.float()
        if torch.jit.is_scripting():
            y = _selective_scan_export(u32, delta32, A, Bm, Cm, D, self.export_chunk)
        else:
            y = _selective_scan_pscan(u32, delta32, A, Bm, Cm, D, self.chunk)
        y = y.to(seqs.dtype)
        y = y[:, :, :2] + y[:, :, 2:].flip(1)  # the reversed scans, back in forward order
        by_rows = y[:, :, 0].reshape(batch, height, width, -1)
        y = by_rows + y[:, :, 1].reshape(batch, width, height, -1).transpose(1, 2)
        return self.out_proj(self.out_norm(y) * F.silu(z))


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): per-channel gains from the frame's mean activations.

    Shape: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, squeeze_factor: int) -> None:
        super().__init__()
        hidden = max(1, channels // squeeze_factor)
        self.gain = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gain(x)


class RSSB(nn.Module):
    """Residual state-space block: LayerNorm, SS2D and a scaled skip; LayerNorm, conv block with
    channel attention and a scaled skip (MambaIR's ``VSSBlock``, without DropPath).

    Shape: (B, H, W, dim) -> (B, H, W, dim).
    """

    def __init__(self, dim: int, d_state: int, expand: float, compress_ratio: int, squeeze_factor: int) -> None:
        super().__init__()
        hidden = max(1, dim // compress_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.ss2d = SS2D(dim, d_state, expand)
        self.skip_scale = nn.Parameter(torch.ones(dim))
        self.norm2 = nn.LayerNorm(dim)
        self.conv_block = nn.Sequential(
            nn.Conv2d(dim, hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden, dim, 3, padding=1),
            ChannelAttention(dim, squeeze_factor),
        )
        self.skip_scale2 = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x * self.skip_scale + self.ss2d(self.norm1(x))
        conv = self.conv_block(self.norm2(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x * self.skip_scale2 + conv


class RSSG(nn.Module):
    """Residual state-space group: RSSBs, a 3x3 conv, and a skip around them all.

    Shape: (B, H, W, dim) -> (B, H, W, dim).
    """

    def __init__(
        self, dim: int, depth: int, d_state: int, expand: float, compress_ratio: int, squeeze_factor: int
    ) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *(RSSB(dim, d_state, expand, compress_ratio, squeeze_factor) for _ in range(depth))
        )
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(self.blocks(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


@ARCHS.register(ARCH)
class MambaIR(Network):
    """MambaIR (Guo et al., "MambaIR: A Simple Baseline for Image Restoration with State-Space Model",
    ECCV 2024), the same-size (denoising / artefact removal) variant, sized for a 2-core CPU.

    A 3x3 conv lifts the frame to ``embed_dim`` channels; residual state-space groups (RSSG) follow,
    each a run of residual state-space blocks (RSSB) and a 3x3 conv around a skip; a conv and the
    shallow features' skip close the body, and a 3x3 conv gives the edit. An RSSB is LayerNorm ->
    vision state-space module (linear to two branches; one through a depthwise 3x3 conv, SiLU and
    the 2D selective scan, then LayerNorm; times SiLU of the other; linear back) with a learned skip
    scale, then LayerNorm -> conv block with channel attention, again with a learned skip scale.
    The 2D selective scan runs Mamba's S6 (input-dependent delta, B and C; ``A = -exp(A_log)``; a
    ``D`` skip) along the frame read row by row, column by column, and both reversed, and sums the
    four back into 2D. It runs on mambapy's parallel scan, in pure PyTorch. LayerNorm as in the
    paper, no BatchNorm; no dropout or DropPath (random per frame, it would flicker).

    Every output pixel depends on the whole frame (the scans, and the channel attention's mean), so
    no overlap makes tiles match the whole frame. ``tile_overlap`` = 64 discards 28 pixels either
    side of a seam, more than the convolutions' 17-pixel reach at the defaults, so what remains is
    only the scans' different context: a 96x300 frame in 128-pixel tiles differed from the whole
    frame by at most 1e-3 (mean 1e-4) with every weight perturbed by 0.05, and by up to 1.6 (mean
    1e-2, at any overlap from 16 to 64) with the test suite's 0.2, which drives the untrained edit
    to a std of 6 before the tanh. Frames up to ``max_tile`` = 640 pixels a side render whole.

    The scan's state, (batch, pixels, d_state, 4 * d_inner), is what costs. It is built 16384
    pixels at a time, so memory stays linear in the frame size: about 3.8 KB a pixel at the
    defaults, 1.5 GB for a 640x640 tile. At the defaults a training step on 8 96x96 patches took
    3 to 4 times the default ``unet_attn``'s on a shared 2-core CPU, and an 800x448 frame 4 times.

    Args:
        in_channels: channels of the input frame.
        out_channels: channels of the output frame.
        embed_dim: feature channels throughout, 1 to 1024; the scan sees ``int(expand * embed_dim)``.
        depths: blocks per residual group, one group per entry (1 to 16 groups of 1 to 64 blocks);
            MambaIR uses six 6s.
        d_state: size of each scanned channel's state, 1 to 64 (MambaIR: 16). The scan's time and
            memory grow with it (a step at 4 took 1.6 times as long as at 2); 2 keeps two decay
            rates per channel, and a few keyframes constrain few parameters anyway.
        expand: scanned channels per feature channel, 0.25 to 4 (Mamba 2, MambaIR 1.2 to 2). The
            scan's cost grows with ``embed_dim * expand * d_state``.
        compress_ratio: the conv block's bottleneck, ``embed_dim // compress_ratio`` channels (>= 1).
        squeeze_factor: channel attention's bottleneck, ``embed_dim // squeeze_factor`` (>= 1).
        residual: predict the change to the input: ``out = tanh(atanh(x) + f(x))`` with the last
            conv zero-initialised, so the untrained network returns its input. Needs
            ``in_channels == out_channels``.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H, W) for any H, W >= 1; values in [-1, 1] in
        and out. No downsampling: ``size_multiple`` is 1.

    TorchScript and ONNX (opset 17, dynamic height and width) run the same scan in plain tensor ops
    (two levels of Hillis-Steele doubling), since mambapy's autograd Function can be neither
    scripted nor traced for a varying length; it matches the eager scan to float rounding, and
    holds about 1.5 times the eager path's memory.

    Example:
        >>> from shotfit.archs import build_network
        >>> net = build_network("mambair", embed_dim=8, depths=[1])
        >>> net(torch.zeros(1, 3, 37, 53)).shape
        torch.Size([1, 3, 37, 53])
    """

    arch_name = ARCH
    tiny_options: ClassVar[dict[str, Any]] = {
        "embed_dim": 8, "depths": [1, 1], "d_state": 2, "expand": 1.0, "squeeze_factor": 4,
    }
    max_tile: ClassVar[int | None] = 640  # a larger frame is split (see the memory note above)

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        embed_dim: int = 48,
        depths: list[int] | tuple[int, ...] = (2, 2),
        d_state: int = 2,
        expand: float = 0.5,
        compress_ratio: int = 3,
        squeeze_factor: int = 16,
        residual: bool = True,
    ) -> None:
        arch = ARCH
        check_int(arch, "embed_dim", embed_dim, high=MAX_WIDTH)
        if not isinstance(depths, (list, tuple)) or not 1 <= len(depths) <= MAX_GROUPS:
            raise ConfigError(
                f"architecture {arch!r}: depths must be a list of 1 to {MAX_GROUPS} block counts, got {depths!r}"
            )
        for i, count in enumerate(depths):
            check_int(arch, f"depths[{i}]", count, high=MAX_BLOCKS)
        check_int(arch, "d_state", d_state, high=64)
        check_float(arch, "expand", expand, 0.25, 4.0)
        check_int(arch, "compress_ratio", compress_ratio)
        check_int(arch, "squeeze_factor", squeeze_factor)
        # no overlap makes tiles exact (the scans see the whole frame); 64 hides the convolutions' reach
        super().__init__(
            in_channels=in_channels, out_channels=out_channels, residual=residual, size_multiple=1, tile_overlap=64
        )
        self.conv_first = nn.Conv2d(in_channels, embed_dim, 3, padding=1)
        self.embed_norm = nn.LayerNorm(embed_dim)
        self.groups = nn.Sequential(
            *(RSSG(embed_dim, depth, d_state, expand, compress_ratio, squeeze_factor) for depth in depths)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, padding=1)
        self.conv_last = self.residual_head(nn.Conv2d(embed_dim, out_channels, 3, padding=1))

    def body(self, x: Tensor) -> Tensor:
        shallow = self.conv_first(x)
        features = self.groups(self.embed_norm(shallow.permute(0, 2, 3, 1)))
        body = self.conv_after_body(self.norm(features).permute(0, 3, 1, 2)) + shallow
        return self.conv_last(body)
