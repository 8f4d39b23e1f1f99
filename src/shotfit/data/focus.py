"""Where the artist's edit is: the pixels a keyframe changed, so that training looks there.

A paint-out (tracking markers, a rig wire, a blemish) changes a few hundred pixels of a frame. Patches
drawn uniformly over the frame show them to the network in few steps, and a loss averaged over a patch
counts them by their tiny area, so the network learns to pass the plate through well and leaves faint
smudges where the markers were: the first thing an artist sees at 1:1. ``data.edit_focus`` centres a
share of the training patches on edited pixels (:class:`EditFocus`, used by
:class:`~shotfit.data.augment.PairedAugment`); ``data.edit_weight`` counts edited pixels more in the loss
(:func:`edit_weights`). A global edit (a grade, a stylisation) changes nearly every pixel: both then stay
off (:data:`LOCAL_EDIT_LIMIT`, :func:`is_local_edit`), so they cannot change such a run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

log = logging.getLogger(__name__)

# A pixel is edited when the keyframe differs from its plate by more than EDIT_THRESHOLD of the display
# range ([0, 1]) in any channel: about 8 codes of 255, above the grain and compression noise of a clean
# plate. The region grows by EDIT_GROW pixels so the soft, anti-aliased edges of a paint stroke count too.
# The one definition: the evaluation's edited region (shotfit.evaluate.metrics.edited_region) uses these.
EDIT_THRESHOLD = 0.03
EDIT_GROW = 2
# Edited pixels are kept as the CELL x CELL cells that hold any: a 4K keyframe edited everywhere is
# 130 thousand cells, not 8 million positions.
CELL = 8
# An edit over more than this share of the keyframes' pixels is global (a grade, a stylisation, a clean-up
# of compression): uniform patches already hold it, and centring patches on it would only crowd them
# against the frame's edges. No focus then, so such runs train exactly as without the setting.
LOCAL_EDIT_LIMIT = 0.5


def edited_pixels(sources: Tensor, targets: Tensor, masks: Tensor | None = None) -> Tensor:
    """Where the keyframes changed their plates.

    Args:
        sources, targets: (N, C, H, W) in [-1, 1] (whole keyframes or patches cut from both alike).
        masks: optional (N, 1, H, W) artist's masks in [0, 1]; only pixels inside them (> 0) count.

    Returns:
        (N, 1, H, W) bool: differs by more than :data:`EDIT_THRESHOLD` of the range in any channel, grown by
        :data:`EDIT_GROW` pixels.
    """
    changed = (targets - sources).abs().amax(dim=1, keepdim=True) > 2 * EDIT_THRESHOLD  # [-1, 1] spans 2
    if masks is not None:
        changed &= masks > 0
    size = 2 * EDIT_GROW + 1
    return F.max_pool2d(changed.float(), size, stride=1, padding=EDIT_GROW) > 0


def edited_share(sources: Tensor, targets: Tensor, masks: Tensor | None = None) -> float:
    """The share (0..1) of the keyframes' pixels that :func:`edited_pixels` calls edited.

    Shape:
        sources, targets: (N, C, H, W) in [-1, 1]; masks: (N, 1, H, W) or None.
    """
    return float(edited_pixels(sources, targets, masks).float().mean())


def is_local_edit(share: float) -> bool:
    """Whether an edit over ``share`` of the pixels is local (a paint-out): something changed, and no
    more than :data:`LOCAL_EDIT_LIMIT` of the pixels. Only then do the edit focus and weight act."""
    return 0.0 < share <= LOCAL_EDIT_LIMIT


def local_edit_weight(sources: Tensor, targets: Tensor, masks: Tensor | None, weight: float) -> float:
    """The ``data.edit_weight`` a run trains with: ``weight`` for a local edit, 1 (all pixels alike) for a
    global one, where nearly every pixel would carry the weight and the loss would only tilt towards
    wherever the grade happened to change a pixel by more than :data:`EDIT_THRESHOLD`.

    Shape:
        sources, targets: (N, C, H, W) in [-1, 1], the whole keyframes; masks: (N, 1, H, W) or None.
    """
    if weight == 1.0:
        return 1.0
    share = edited_share(sources, targets, masks)
    if not is_local_edit(share):
        log.info("edit weight off: the keyframes change %.0f%% of their pixels, a global edit", 100 * share)
        return 1.0
    log.info("edit weight %g on the %.1f%% of pixels the keyframes change", weight, 100 * share)
    return weight


def edit_weights(sources: Tensor, targets: Tensor, masks: Tensor | None, weight: float) -> Tensor:
    """A loss weight map counting edited pixels ``weight`` times the others.

    Source and target patches go through the same geometric and colour transforms, so a pixel the
    artist left alone is equal in both patches and this can be computed on the patches themselves.

    Shape:
        sources, targets: (B, C, P, P) in [-1, 1]; masks: (B, 1, P, P) or None. Returns (B, 1, P, P)
        holding 1 and ``weight``.
    """
    return 1.0 + (weight - 1.0) * edited_pixels(sources, targets, masks).to(sources.dtype)


@dataclass(frozen=True)
class EditFocus:
    """The edited cells of every keyframe and the share of patches centred on them.

    Attributes:
        share: the probability, per patch, of being centred on an edited pixel (0..1).
        keyframe, top, left: (M,) int64, CPU: the keyframe and the top-left pixel of each of the M
            :data:`CELL` x :data:`CELL` cells that hold an edited pixel (M >= 1).
        frame_shape: (N, H, W) of the keyframes the cells were found in.
    """

    share: float
    keyframe: Tensor
    top: Tensor
    left: Tensor
    frame_shape: tuple[int, int, int]

    @classmethod
    def from_keyframes(cls, sources: Tensor, targets: Tensor, masks: Tensor | None, share: float
                       ) -> EditFocus | None:
        """The focus on what the keyframes changed; None when ``share`` is 0, or when nothing or more
        than :data:`LOCAL_EDIT_LIMIT` of the pixels was changed (patches are then drawn uniformly, as
        without a focus)."""
        if share <= 0:
            return None
        edited = edited_pixels(sources, targets, masks)
        changed = float(edited.float().mean())
        if not is_local_edit(changed):
            if changed > 0:
                log.info("edit focus off: the keyframes change %.0f%% of their pixels, a global edit", 100 * changed)
            return None
        cells = F.max_pool2d(edited.float(), CELL, stride=CELL, ceil_mode=True)[:, 0] > 0
        keyframe, row, col = cells.nonzero(as_tuple=True)
        if not len(keyframe):
            return None
        count, _, height, width = sources.shape
        return cls(share, keyframe.cpu(), (row * CELL).cpu(), (col * CELL).cpu(), (count, height, width))

    @property
    def cells(self) -> int:
        return len(self.keyframe)

    def centres(self, cell: Tensor, offset: Tensor) -> tuple[Tensor, Tensor]:
        """Keyframes and centre pixels of focused patches.

        Args:
            cell: (B,) int64 cell indices in [0, :attr:`cells`).
            offset: (B, 2) float64 in [0, 1): where in the cell, as x, y.

        Returns:
            ``(keyframe, centre)``: (B,) int64 and (B, 2) float64 pixel positions x, y inside the frame.
        """
        _, height, width = self.frame_shape
        corner = torch.stack([self.left[cell], self.top[cell]], dim=1).double()
        room = torch.minimum(torch.full_like(corner, CELL), torch.tensor([width, height]) - corner)
        return self.keyframe[cell], torch.floor(corner + offset * room)
