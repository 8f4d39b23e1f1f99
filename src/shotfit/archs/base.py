"""The contract every architecture keeps: frame check, padding and cropping, tanh output, residual head, tiling.

A network subclasses :class:`Network`, writes only its :meth:`Network.body`, and declares what
tiled rendering and the tests need to know of it (see :class:`DeclaresTiling`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from torch import Tensor, nn

from shotfit.archs.blocks import (
    check_int,
    check_residual,
    crop_to,
    pad_to_multiple,
    tanh_output,
)


@runtime_checkable
class DeclaresTiling(Protocol):
    """What :func:`shotfit.infer.tiling.tiled_forward` needs to know of a network to render it in tiles.

    Every :class:`Network` declares it; so does a wrapper that passes a network's declaration on.

    Attributes:
        size_multiple: the internal downsampling factor (>= 1): tiles start on multiples of it.
        tile_overlap: the overlap (pixels) at which tiles match the whole frame: the network's reach,
            of which tiling trusts 7/16 on either side of a seam.
        max_tile: the largest tile side the network should see (memory that grows faster than the
            pixel count), or None.
    """

    size_multiple: int
    tile_overlap: int
    max_tile: int | None


class Network(nn.Module):
    """Base of every architecture: ``forward`` checks the frame, pads, runs :meth:`body`, crops, and ends in tanh.

    Values are in [-1, 1] in and out. :meth:`body` sees the frame padded (bottom and right, see
    :func:`~shotfit.archs.blocks.pad_to_multiple`) to a multiple of ``size_multiple`` and returns the
    pre-tanh edit at that size; ``forward`` crops it back and applies
    :func:`~shotfit.archs.blocks.tanh_output`. In residual mode the edit is added to ``atanh(x)``
    and the last layer, wrapped in :meth:`residual_head`, starts at zero, so the untrained network
    returns its input exactly.

    A subclass sets ``arch_name`` (its registered name) and ``tiny_options`` (the smallest options
    that still exercise all of it, which the tests build), may set ``max_tile``, and passes its
    ``size_multiple`` and ``tile_overlap`` to ``__init__`` once its own options are checked. It
    builds its layers in the same order as before so the same seed gives the same weights.

    Args:
        in_channels: channels of the input frame (>= 1).
        out_channels: channels of the output frame (>= 1).
        residual: predict the change to the input; needs ``in_channels == out_channels``.
        size_multiple: internal downsampling factor (>= 1); inputs are padded to a multiple of it.
        tile_overlap: the overlap (pixels, >= 0) at which tiled output matches the whole frame.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H, W) for any H, W >= 1.

    Raises:
        ConfigError: a channel count or ``residual`` is out of range (at construction).
        ValueError: the input is not (B, in_channels, H, W) (in ``forward``; the message prints the shape).
    """

    arch_name: ClassVar[str] = "network"
    tiny_options: ClassVar[dict[str, Any]] = {}
    max_tile: ClassVar[int | None] = None

    def __init__(
        self, *, in_channels: int, out_channels: int, residual: bool, size_multiple: int, tile_overlap: int
    ) -> None:
        super().__init__()
        arch = self.arch_name
        check_int(arch, "in_channels", in_channels)
        check_int(arch, "out_channels", out_channels)
        check_residual(arch, residual, in_channels, out_channels)
        self.arch: str = arch  # an instance attribute, so TorchScript sees it in forward
        self.in_channels: int = in_channels
        self.residual: bool = residual
        self.size_multiple: int = check_int(arch, "size_multiple", size_multiple)
        self.tile_overlap: int = check_int(arch, "tile_overlap", tile_overlap, low=0)

    def residual_head(self, conv: nn.Conv2d) -> nn.Conv2d:
        """``conv``, the network's last layer, zeroed in residual mode: the untrained net is then exactly
        the identity, so training starts from "no edit"."""
        if self.residual:
            nn.init.zeros_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        return conv

    def forward(self, x: Tensor) -> Tensor:
        """Shape: (B, in_channels, H, W) in [-1, 1] -> (B, out_channels, H, W) in [-1, 1]."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self.arch} expects input of shape (B, {self.in_channels}, H, W), got {list(x.shape)}"
            )
        height, width = x.shape[-2], x.shape[-1]
        edit = self.body(pad_to_multiple(x, self.size_multiple))
        return tanh_output(x, crop_to(edit, height, width), self.residual)

    def body(self, x: Tensor) -> Tensor:
        """The network proper: (B, in_channels, H, W) with H and W multiples of ``size_multiple``
        -> (B, out_channels, H, W), the edit before the tanh (unbounded)."""
        raise NotImplementedError(f"{type(self).__name__} does not define body()")
