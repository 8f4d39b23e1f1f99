"""Paired patch sampling with augmentation for training on a shot's keyframes.

A training sample is a square patch cut from one keyframe pair, moved by the same geometric
transform on source, target and mask, and jittered by the same colour change on source and target.
Without the affine draw a patch is an exact crop (flips and 90° turns are exact too), because any
resampling would blur the target and the network would learn that blur. With it, the patch is one
bilinear warp from the frame, so the target is resampled only once.

Patch corners are drawn uniformly over the frame by default (``augment.placement="uniform"``). That puts
a border row in ``1 / (H - P + 1)`` of the patches and the middle row in ``P`` times as many
(rows 0-2 of a 412-row frame in about 20 of 2,160 patches of 128, its middle row in about 950), and the
border would learn some 40 times slower than the middle: a pale line along a render's top rows. Drawn
from up to ``P - 1`` pixels beyond each edge and moved inside, each corner at the frame's edge stands
for all the patches that would have hung over it, so a border row is in as many patches as the middle
row, and none in fewer (rows just inside the border, up to twice as many): ``"even"``. The middle pays: it is in
about half as many patches as with uniform corners, and on a paint-out ``even`` lost 5.8 dB
over the frame on two seeds of three (docs/quality.md), so it is not the default.

With an :class:`~shotfit.data.focus.EditFocus`, a share of the patches is centred on pixels the
artist changed (``data.edit_focus``), so a small paint-out is in most batches.

Every random number comes from the caller's ``torch.Generator``, so one seed gives bit-identical
batches and a resumed run sees the batches it would have seen.
"""

from __future__ import annotations

import logging
import math

import torch
from kornia.enhance import adjust_gamma, adjust_hue, adjust_saturation
from kornia.geometry.transform import warp_affine
from torch import Tensor

from shotfit.config import AugmentConfig
from shotfit.data.focus import CELL, EditFocus

log = logging.getLogger(__name__)

# Extra pixels around a warp's footprint: one for bilinear's second neighbour, one for rounding.
_WARP_MARGIN = 2


class PairedAugment:
    """Draws augmented training patches from keyframe pairs.

    Args:
        cfg: The augmentation settings (``shotfit.config.AugmentConfig``; its fields document the
            ranges). A frame smaller than ``patch_size`` on one side gives patches as large as the
            frame on that side, and such non-square patches are only turned by 180°. ``translate``
            acts only along an axis where the frame is too small to place the warped patch at random
            (random placement already translates). Saturation and hue act on RGB only.
        focus: where the keyframes were edited, and the share of patches centred there (None: every
            patch placed uniformly). Built from the same keyframes that :meth:`sample` is given.

    Example:
        >>> augment = PairedAugment(AugmentConfig(patch_size=64))
        >>> frames = torch.rand(2, 3, 90, 120) * 2 - 1
        >>> src, tgt, mask = augment.sample(frames, -frames, None, 4, torch.Generator().manual_seed(0))
        >>> src.shape, mask
        (torch.Size([4, 3, 64, 64]), None)
    """

    def __init__(self, cfg: AugmentConfig, focus: EditFocus | None = None) -> None:
        self.cfg = cfg  # ranges are checked by the config itself
        self.focus = focus
        log.debug("augmentation: %r", cfg)
        if focus is not None:
            log.info("edit focus: %.0f%% of patches centred on the %d edited %dx%d cells", 100 * focus.share,
                     focus.cells, CELL, CELL)

    def patch_shape(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) of the patches drawn from frames of ``height`` x ``width``."""
        return min(self.cfg.patch_size, height), min(self.cfg.patch_size, width)

    def sample(
        self,
        sources: Tensor,
        targets: Tensor,
        masks: Tensor | None,
        batch_size: int,
        generator: torch.Generator,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Draw one batch of augmented patch pairs.

        Each sample picks a keyframe uniformly and a patch position uniformly over the frame, or,
        with a focus and with its probability, an edited pixel to centre the patch on (the patch is
        moved inside the frame where that pixel is near an edge).

        Args:
            sources: keyframe sources, float (N, C, H, W) in [-1, 1], C = 1 or 3; not checked per
                call (a full-frame min/max would cost more than the sampling).
            targets: the artist's edits, same shape, device and range as ``sources``.
            masks: optional loss weights, (N, 1, H, W) in [0, 1]; never colour-jittered.
            batch_size: number of patches B, >= 1.
            generator: source of every random draw, on the CPU or on the frames' device.

        Returns:
            ``(source, target, mask)`` patches: (B, C, P, P), (B, C, P, P) in [-1, 1] and
            (B, 1, P, P) in [0, 1] or None, with P per side as given by :meth:`patch_shape`,
            contiguous, on the frames' device.
        """
        _check_inputs(sources, targets, masks, batch_size)
        count, _, height, width = sources.shape
        if self.focus is not None and self.focus.frame_shape != (count, height, width):
            raise ValueError(f"the edit focus was found in keyframes of shape {self.focus.frame_shape} (N, H, W), "
                             f"but sources are {tuple(sources.shape)}")
        patch_h, patch_w = self.patch_shape(height, width)
        draws = self._draw(batch_size, count, height, width, patch_h, patch_w, generator)
        frames = [sources, targets] + ([masks] if masks is not None else [])

        patches = [frame.new_empty(batch_size, frame.shape[1], patch_h, patch_w) for frame in frames]
        exact = (~draws["affine"]).nonzero().flatten()
        if len(exact):
            corners = zip(*(draws[name][exact].tolist() for name in ("keyframe", "top", "left")))
            windows = [(k, slice(y, y + patch_h), slice(x, x + patch_w)) for k, y, x in corners]
            for patch, frame in zip(patches, frames):
                patch[exact] = torch.stack([frame[k, :, rows, cols] for k, rows, cols in windows])
        warp = draws["affine"].nonzero().flatten()
        if len(warp):
            warps = _warp_patches(frames, draws, warp, patch_h, patch_w, self.cfg.placement)
            for patch, warped in zip(patches, warps):
                patch[warp] = warped

        patches = [_flip_and_turn(patch, draws["flip"], draws["turns"]) for patch in patches]
        chosen = draws["colour"]
        if chosen.any():
            # The same parameters on source and target, so the edit between them is unchanged.
            params = [draws[name][chosen].to(sources.device, sources.dtype) for name in _COLOUR_PARAMS]
            # A zero range skips its step: the HSV round trip costs most of the jitter's time.
            params[2] = params[2] if self.cfg.saturation > 0 else None
            params[3] = params[3] if self.cfg.hue > 0 else None
            for i in (0, 1):
                patches[i][chosen] = _adjust_colour(patches[i][chosen], *params)
        return patches[0], patches[1], patches[2] if masks is not None else None

    def _draw(
        self,
        batch: int,
        count: int,
        height: int,
        width: int,
        patch_h: int,
        patch_w: int,
        generator: torch.Generator,
    ) -> dict[str, Tensor]:
        """Every random parameter of one batch, drawn in a fixed order whatever the probabilities.

        The fixed order means changing one probability leaves every other draw of a seed unchanged.
        Returns CPU tensors of first dimension ``batch`` (float64 for continuous values), so slicing
        needs no device round trip per sample.
        """
        device = generator.device

        def uniform(*shape: int) -> Tensor:
            return torch.rand(shape, generator=generator, device=device, dtype=torch.float64)

        def spread(amount: float) -> Tensor:
            return amount * (2 * uniform(batch) - 1)

        def integers(high: int) -> Tensor:
            return torch.randint(high, (batch,), generator=generator, device=device)

        placement = self.cfg.placement
        draws = {
            "keyframe": integers(count),
            "top": patch_corners(height, patch_h, batch, generator, placement),
            "left": patch_corners(width, patch_w, batch, generator, placement),
            "flip": uniform(batch) < self.cfg.flip_p,
            "turn": uniform(batch) < self.cfg.rot90_p,
            "quarter_turns": integers(3) + 1,
            "affine": uniform(batch) < self.cfg.affine_p,
            "zoom": 1 + spread(self.cfg.scale),
            "angle": spread(math.radians(self.cfg.rotation)),
            "shift": self.cfg.translate * (2 * uniform(batch, 2) - 1),
            "place": uniform(batch, 2),
            "colour": uniform(batch) < self.cfg.colour_p,
            "gain": torch.exp2(spread(self.cfg.exposure)),
            "gamma": 1 + spread(self.cfg.gamma),
            "saturation": 1 + spread(self.cfg.saturation),
            "hue": spread(self.cfg.hue * 2 * math.pi),  # kornia's adjust_hue takes radians
        }
        if self.focus is not None:  # after every other draw, so that those stay what they are without it
            draws["focused"] = uniform(batch) < self.focus.share
            draws["cell"] = torch.randint(self.focus.cells, (batch,), generator=generator, device=device)
            draws["offset"] = uniform(batch, 2)
        draws = {name: value.cpu() for name, value in draws.items()}
        if self.focus is not None:
            _aim(draws, self.focus, height, width, patch_h, patch_w)
        # Quarter and three-quarter turns would swap the sides of a non-square patch.
        quarter_turns = draws["quarter_turns"] if patch_h == patch_w else torch.full((batch,), 2)
        draws["turns"] = torch.where(draws["turn"], quarter_turns, 0)
        return draws


def patch_corners(size: int, patch: int, batch: int, generator: torch.Generator, placement: str) -> Tensor:
    """``batch`` first rows (or columns) of patches ``patch`` long on a frame side ``size`` long.

    ``placement``: ``"uniform"``, each of the ``size - patch + 1`` positions alike; ``"even"``, drawn
    from ``patch - 1`` beyond either end and moved inside, so that every pixel of the side is in a
    patch at least as often as a pixel of its middle (see the module's docstring). Either way one
    ``randint`` call on ``generator``, so the draws after it are the same.

    Returns:
        (batch,) int64 in [0, size - patch], on the generator's device.
    """
    device = generator.device
    if placement == "uniform":
        return torch.randint(size - patch + 1, (batch,), generator=generator, device=device)
    beyond = patch - 1
    drawn = torch.randint(size + beyond, (batch,), generator=generator, device=device) - beyond
    return drawn.clamp(0, size - patch)


def _aim(draws: dict[str, Tensor], focus: EditFocus, height: int, width: int, patch_h: int, patch_w: int) -> None:
    """Move the focused samples of ``draws`` onto edited pixels: their keyframe, the corner of an exact
    crop around the pixel, and the ``centre`` a warped patch is centred on."""
    focused = draws["focused"]
    keyframe, centre = focus.centres(draws["cell"], draws["offset"])
    x, y = centre.long().unbind(dim=1)
    draws["keyframe"] = torch.where(focused, keyframe, draws["keyframe"])
    draws["top"] = torch.where(focused, (y - patch_h // 2).clamp(0, height - patch_h), draws["top"])
    draws["left"] = torch.where(focused, (x - patch_w // 2).clamp(0, width - patch_w), draws["left"])
    draws["centre"] = centre


_COLOUR_PARAMS = ("gain", "gamma", "saturation", "hue")


def _check_inputs(sources: Tensor, targets: Tensor, masks: Tensor | None, batch_size: int) -> None:
    """Raise ValueError, printing the shapes received, if the keyframe tensors do not fit together."""
    if sources.ndim != 4 or sources.shape[0] < 1 or sources.shape[1] not in (1, 3):
        raise ValueError(f"sources must be (N, C, H, W) with N >= 1 and C = 1 or 3, got {tuple(sources.shape)}")
    if targets.shape != sources.shape:
        raise ValueError(f"targets {tuple(targets.shape)} must match sources {tuple(sources.shape)}")
    if not sources.is_floating_point() or targets.dtype != sources.dtype or targets.device != sources.device:
        raise ValueError(
            f"sources and targets must be floating point with one dtype and device, got {sources.dtype} on "
            f"{sources.device} and {targets.dtype} on {targets.device}"
        )
    if masks is not None:
        expected = (sources.shape[0], 1, *sources.shape[2:])
        if tuple(masks.shape) != expected or masks.dtype != sources.dtype or masks.device != sources.device:
            raise ValueError(
                f"masks must be {expected} {sources.dtype} on {sources.device}, "
                f"got {tuple(masks.shape)} {masks.dtype} on {masks.device}"
            )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")


def _warp_patches(
    frames: list[Tensor], draws: dict[str, Tensor], chosen: Tensor, patch_h: int, patch_w: int, placement: str
) -> list[Tensor]:
    """Warp the ``chosen`` samples' patches out of their frames in one bilinear pass.

    Each sample first takes an exact crop of the region its rotated, zoomed patch covers (a few
    pixels more than the patch, never a whole 4K frame), then one ``warp_affine`` call maps all
    regions of all tensors to patches. Where the patch fits in the frame the region contains it;
    where it does not, the region is the frame on that axis, so reflection happens at the frame's
    real edges. The centre is placed as :func:`patch_corners` places a corner: with ``"even"``, from
    up to the footprint's width beyond either edge, moved inside.

    Returns:
        one (A, C_i, patch_h, patch_w) tensor per entry of ``frames``, A = len(chosen).
    """
    height, width = frames[0].shape[-2:]
    zoom, angle = draws["zoom"][chosen], draws["angle"][chosen]
    cos, sin = torch.cos(angle), torch.sin(angle)
    half_w, half_h = (patch_w - 1) / 2, (patch_h - 1) / 2
    # Half extents, in frame pixels, of the rotated and zoomed patch's bounding box.
    reach = torch.stack(
        [(cos.abs() * half_w + sin.abs() * half_h) / zoom, (sin.abs() * half_w + cos.abs() * half_h) / zoom], dim=1
    )
    size = torch.tensor([width, height], dtype=torch.float64)
    sides = torch.tensor([patch_w, patch_h], dtype=torch.float64)
    room = (size - 1) - 2 * reach
    fits = room >= 0
    place = draws["place"][chosen]
    if placement == "uniform":
        inside = reach + place * room.clamp(min=0)
    else:  # the footprint spans 2 * reach: drawn up to that beyond each edge, then moved inside
        inside = torch.minimum(torch.maximum(place * (room.clamp(min=0) + 4 * reach) - reach, reach),
                               (size - 1) - reach)
    centre = torch.where(fits, inside, (size - 1) / 2 + draws["shift"][chosen] * sides)
    if "focused" in draws:  # centred on an edited pixel, moved inward just enough for the patch to fit
        aimed = torch.minimum(torch.maximum(draws["centre"][chosen], reach), (size - 1) - reach)
        centre = torch.where(draws["focused"][chosen, None] & fits, aimed, centre)
    needed = torch.ceil(2 * reach).long() + 2 * _WARP_MARGIN
    region = torch.minimum(needed.amax(dim=0), size.long())  # (width, height), shared by the batch
    origin = torch.minimum(
        (torch.floor(centre - reach).long() - _WARP_MARGIN).clamp(min=0), size.long() - region
    )  # (A, 2) as x, y

    region_w, region_h = region.tolist()
    keyframes = draws["keyframe"][chosen].tolist()
    crops = torch.stack(
        [
            torch.cat([frame[k, :, y : y + region_h, x : x + region_w] for frame in frames])
            for k, (x, y) in zip(keyframes, origin.tolist())
        ]
    )

    # Region pixel -> patch pixel: patch = patch_centre + zoom * R(-angle) @ (region + origin - centre).
    linear = torch.stack([torch.stack([cos, sin], dim=1), torch.stack([-sin, cos], dim=1)], dim=1)
    linear = linear * zoom[:, None, None]
    offset = torch.tensor([half_w, half_h], dtype=torch.float64) - (
        linear @ (centre - origin.double()).unsqueeze(-1)
    ).squeeze(-1)
    matrix = torch.cat([linear, offset.unsqueeze(-1)], dim=2).to(crops.device, crops.dtype)
    warped = warp_affine(crops, matrix, (patch_h, patch_w), mode="bilinear", padding_mode="reflection")
    return list(warped.split([frame.shape[1] for frame in frames], dim=1))


def _flip_and_turn(patches: Tensor, flip: Tensor, turns: Tensor) -> Tensor:
    """Flip patches horizontally where ``flip`` (B,) is set, then turn them by ``turns`` (B,) x 90°.

    Both are exact permutations of pixels.
    """
    if flip.any():
        patches[flip] = patches[flip].flip(-1)
    for quarter in (1, 2, 3):
        chosen = turns == quarter
        if chosen.any():
            patches[chosen] = torch.rot90(patches[chosen], quarter, dims=(-2, -1))
    return patches


def _adjust_colour(
    patches: Tensor, gain: Tensor, gamma: Tensor, saturation: Tensor | None, hue: Tensor | None
) -> Tensor:
    """Jitter exposure, gamma, saturation and hue of (B, C, h, w) patches in [-1, 1].

    Works on display values in [0, 1]: ``gain * x ** gamma``, then saturation (factor) and hue
    (radians) for RGB; None skips a step. Each parameter is (B,). Returns (B, C, h, w) in [-1, 1].
    """
    display = (patches * 0.5 + 0.5).clamp(0, 1)
    display = adjust_gamma(display, gamma, gain)
    if patches.shape[1] == 3 and saturation is not None:
        display = adjust_saturation(display, saturation)
    if patches.shape[1] == 3 and hue is not None:
        display = adjust_hue(display, hue)
    return display.clamp(0, 1) * 2 - 1
