"""Edit focus and edit weights: patches find a small paint-out, and its pixels count in the loss."""

from __future__ import annotations

import pytest
import torch

from shotfit.config import AugmentConfig, DataConfig
from shotfit.data import PairedAugment
from shotfit.data.focus import CELL, EditFocus, edit_weights, edited_pixels, edited_share, local_edit_weight
from shotfit.errors import ConfigError

HEIGHT, WIDTH, PATCH = 160, 240, 32
MARKER = (slice(118, 122), slice(201, 205))  # 4x4 pixels: 0.08% of a keyframe


def marked_keyframes(count: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Plates of smooth noise in [-1, 1], and keyframes equal to them but for one dark marker painted
    out of the second: (count, 3, HEIGHT, WIDTH) each."""
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(count, 3, HEIGHT // 8, WIDTH // 8, generator=generator)
    sources = torch.nn.functional.interpolate(noise, size=(HEIGHT, WIDTH), mode="bilinear") * 1.6 - 0.8
    targets = sources.clone()
    sources[1, :, MARKER[0], MARKER[1]] = -1.0  # the marker is on the plate; the keyframe is clean
    return sources, targets


def share_with_marker(focus_share: float, batch: int = 400, **augment: float) -> float:
    """The share of a batch's patches that hold at least one pixel of the painted-out marker."""
    sources, targets = marked_keyframes()
    focus = EditFocus.from_keyframes(sources, targets, None, focus_share)
    sampler = PairedAugment(AugmentConfig(patch_size=PATCH, **augment), focus)
    src, tgt, _ = sampler.sample(sources, targets, None, batch, torch.Generator().manual_seed(1))
    return float(edited_pixels(src, tgt).flatten(1).any(dim=1).float().mean())


@pytest.mark.parametrize("augment", [dict(affine_p=0.0, colour_p=0.0), dict(affine_p=1.0, colour_p=1.0,
                                                                              rotation=30.0, scale=0.3)])
def test_with_edit_focus_the_share_of_patches_on_the_paint_out_follows_the_setting(augment):
    uniform = share_with_marker(0.0, **augment)
    assert uniform < 0.05  # a 32-pixel patch of 3 keyframes 160x240 rarely holds the marker
    for share in (0.25, 0.5, 0.9):
        assert share_with_marker(share, **augment) == pytest.approx(share + (1 - share) * uniform, abs=0.07)


def test_focused_patches_hold_the_marker_near_their_centre():
    sources, targets = marked_keyframes()
    focus = EditFocus.from_keyframes(sources, targets, None, 1.0)
    sampler = PairedAugment(AugmentConfig(patch_size=PATCH, affine_p=0.0, colour_p=0.0, flip_p=0.0), focus)
    src, tgt, _ = sampler.sample(sources, targets, None, 50, torch.Generator().manual_seed(2))
    edited = edited_pixels(src, tgt)[:, 0]
    rows, cols = torch.meshgrid(torch.arange(PATCH), torch.arange(PATCH), indexing="ij")
    distance = torch.maximum((rows - PATCH // 2).abs(), (cols - PATCH // 2).abs())  # from the patch centre
    nearest = torch.where(edited, distance, PATCH).flatten(1).amin(dim=1)
    assert nearest.max() <= CELL  # every patch is centred within a cell of an edited pixel


def test_patches_not_focused_are_those_drawn_without_a_focus():
    sources, targets = marked_keyframes()
    plain = PairedAugment(AugmentConfig(patch_size=PATCH))
    focus = EditFocus.from_keyframes(sources, targets, None, 0.5)
    focused = PairedAugment(AugmentConfig(patch_size=PATCH), focus)
    a, _, _ = plain.sample(sources, targets, None, 64, torch.Generator().manual_seed(3))
    b, _, _ = focused.sample(sources, targets, None, 64, torch.Generator().manual_seed(3))
    same = (a == b).flatten(1).all(dim=1)
    assert 0.3 < float(same.float().mean()) < 0.7  # about half moved onto the marker, the rest untouched


def test_no_focus_without_an_edit_without_a_share_or_on_a_global_edit():
    sources, targets = marked_keyframes()
    assert EditFocus.from_keyframes(sources, sources.clone(), None, 0.5) is None
    assert EditFocus.from_keyframes(sources, targets, None, 0.0) is None
    # a change below the threshold (compression noise) is no edit
    assert EditFocus.from_keyframes(sources, sources + 0.05, None, 0.5) is None
    # a grade changes every pixel: a global edit, which uniform patches already hold
    assert EditFocus.from_keyframes(sources, (sources + 1) * 0.8 - 1, None, 0.5) is None


def test_the_edit_outside_an_artists_mask_is_not_focused_on():
    sources, targets = marked_keyframes()
    masks = torch.ones(3, 1, HEIGHT, WIDTH)
    masks[1, :, 100:140, 180:220] = 0.0  # the artist masked the marker's area out
    assert EditFocus.from_keyframes(sources, targets, masks, 0.5) is None


def test_a_focus_from_other_keyframes_is_refused_with_the_shapes():
    sources, targets = marked_keyframes()
    focus = EditFocus.from_keyframes(sources, targets, None, 0.5)
    with pytest.raises(ValueError, match=r"\(3, 160, 240\).*\(2, 3, 160, 240\)"):
        PairedAugment(AugmentConfig(patch_size=PATCH), focus).sample(sources[:2], targets[:2], None, 4,
                                                                    torch.Generator())


def test_edit_weights_weigh_the_painted_pixels_through_colour_jitter():
    sources, targets = marked_keyframes()
    focus = EditFocus.from_keyframes(sources, targets, None, 1.0)
    sampler = PairedAugment(AugmentConfig(patch_size=PATCH, affine_p=0.0, colour_p=1.0, exposure=0.5,
                                           gamma=0.3), focus)
    src, tgt, _ = sampler.sample(sources, targets, None, 8, torch.Generator().manual_seed(4))
    weight = edit_weights(src, tgt, None, 10.0)
    assert weight.shape == (8, 1, PATCH, PATCH) and set(weight.unique().tolist()) == {1.0, 10.0}
    # the 4x4 marker grown by 2 pixels on every side, 8x8, in every patch: the jitter hides none of it
    assert ((weight == 10.0).flatten(1).sum(dim=1) == 64).all()


def test_the_edit_weight_acts_on_a_paint_out_and_not_on_a_grade():
    sources, targets = marked_keyframes()
    # the 4x4 marker grown by 2 pixels: 8x8 of the three 160x240 keyframes
    assert edited_share(sources, targets) == pytest.approx(64 / (3 * HEIGHT * WIDTH))
    assert local_edit_weight(sources, targets, None, 30.0) == 30.0
    graded = (sources + 1) * 0.8 - 1  # every pixel darker by a fifth: a global edit
    assert edited_share(sources, graded) > 0.9
    assert local_edit_weight(sources, graded, None, 30.0) == 1.0
    assert local_edit_weight(sources, sources.clone(), None, 30.0) == 1.0  # nothing edited
    masks = torch.ones(3, 1, HEIGHT, WIDTH)
    masks[:, :, :, : WIDTH // 4] = 0.0  # the grade masked to the right three quarters is still global
    assert local_edit_weight(sources, graded, masks, 30.0) == 1.0
    masks[:, :, :, : WIDTH * 3 // 4] = 0.0  # to the right quarter, it is local
    assert local_edit_weight(sources, graded, masks, 30.0) == 30.0


@pytest.mark.parametrize("key, value", [("edit_focus", 1.5), ("edit_focus", -0.1), ("edit_weight", 0.5)])
def test_edit_settings_out_of_range_are_refused_by_name(key, value):
    with pytest.raises(ConfigError, match=f"data.{key} = {value}"):
        DataConfig(**{key: value})
