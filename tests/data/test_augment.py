"""PairedAugment: patch shapes, reproducibility, exact crops and one transform for source, target and mask."""

from __future__ import annotations

import math

import pytest
import torch

from shotfit.config import AugmentConfig
from shotfit.data import PairedAugment
from shotfit.data.augment import _adjust_colour
from shotfit.errors import ConfigError

NO_AUGMENT = dict(flip_p=0.0, rot90_p=0.0, affine_p=0.0, colour_p=0.0)
EVERYTHING = dict(flip_p=0.5, rot90_p=0.5, affine_p=0.5, scale=0.3, rotation=30.0, translate=0.3, colour_p=0.5)


def augmenter(**settings) -> PairedAugment:
    return PairedAugment(AugmentConfig(**settings))


def smooth_frames(count: int, channels: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """(count, channels, height, width) in [-1, 1]: upsampled noise, so every window is distinct."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(count, channels, height // 4 + 2, width // 4 + 2, generator=generator)
    frames = torch.nn.functional.interpolate(noise, size=(height, width), mode="bilinear", align_corners=False)
    return frames * 2 - 1


def draw(augment: PairedAugment, sources, targets, masks, batch: int = 6, seed: int = 0):
    return augment.sample(sources, targets, masks, batch, torch.Generator().manual_seed(seed))


def find_crop(patch: torch.Tensor, frames: torch.Tensor) -> tuple[int, int, int] | None:
    """(keyframe, top, left) of the window of ``frames`` equal to ``patch`` (C, h, w), or None."""
    height, width = patch.shape[-2:]
    for k, frame in enumerate(frames):
        for top in range(frame.shape[-2] - height + 1):
            for left in range(frame.shape[-1] - width + 1):
                if torch.equal(frame[:, top : top + height, left : left + width], patch):
                    return k, top, left
    return None


@pytest.mark.parametrize("settings", [{}, EVERYTHING, dict(EVERYTHING, affine_p=1.0, colour_p=1.0)])
def test_shapes_and_ranges(settings):
    sources = smooth_frames(3, 3, 40, 56)
    masks = torch.rand(3, 1, 40, 56)
    source, target, mask = draw(augmenter(patch_size=16, **settings), sources, -sources, masks, batch=5)
    assert source.shape == target.shape == (5, 3, 16, 16)
    assert mask.shape == (5, 1, 16, 16)
    assert source.dtype == target.dtype == mask.dtype == torch.float32
    assert source.is_contiguous() and target.is_contiguous() and mask.is_contiguous()
    assert source.abs().max() <= 1 and target.abs().max() <= 1
    assert 0 <= mask.min() and mask.max() <= 1


def test_without_masks_returns_none():
    sources = smooth_frames(1, 1, 24, 24)
    source, target, mask = draw(augmenter(patch_size=16), sources, sources, None)
    assert source.shape == (6, 1, 16, 16) and mask is None


def test_same_seed_gives_identical_batches_and_another_seed_does_not():
    augment = augmenter(patch_size=16, **dict(EVERYTHING, affine_p=0.5, colour_p=0.5))
    sources, masks = smooth_frames(2, 3, 48, 48), torch.rand(2, 1, 48, 48)
    first = draw(augment, sources, sources.flip(1), masks, seed=7)
    again = draw(augment, sources, sources.flip(1), masks, seed=7)
    other = draw(augment, sources, sources.flip(1), masks, seed=8)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])


def test_the_global_rng_is_neither_used_nor_consumed():
    augment = augmenter(patch_size=16, **dict(EVERYTHING, affine_p=0.5, colour_p=0.5))
    sources = smooth_frames(2, 3, 32, 32)
    torch.manual_seed(0)
    first = draw(augment, sources, sources, None)
    after = torch.rand(1)
    torch.manual_seed(123)
    again = draw(augment, sources, sources, None)
    assert torch.equal(first[0], again[0])
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), after)


def test_without_augmentation_every_patch_is_an_exact_crop():
    sources = smooth_frames(3, 3, 24, 30)
    source, target, _ = draw(augmenter(patch_size=16, **NO_AUGMENT), sources, sources * 0.5, None, batch=8)
    for patch in source:
        assert find_crop(patch, sources) is not None
    assert torch.equal(target, source * 0.5)


def test_each_keyframe_is_picked():
    # Keyframe k is filled with k / 10, so a patch's value names its keyframe.
    sources = (torch.arange(4, dtype=torch.float32) / 10).view(4, 1, 1, 1).expand(4, 3, 20, 20).contiguous()
    source, _, _ = draw(augmenter(patch_size=16, **NO_AUGMENT), sources, sources, None, batch=64)
    picked = {round(value * 10) for value in source[:, 0, 0, 0].tolist()}
    assert picked == {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("settings", "exact"),
    [
        (dict(NO_AUGMENT, flip_p=0.5, rot90_p=0.5), True),
        (dict(EVERYTHING, affine_p=1.0, colour_p=0.0), False),
        (dict(EVERYTHING, colour_p=0.0), False),
    ],
)
def test_source_target_and_mask_get_the_same_geometry(settings, exact):
    sources = smooth_frames(3, 3, 36, 44)
    targets = -sources
    masks = sources[:, :1] * 0.5 + 0.5
    source, target, mask = draw(augmenter(patch_size=16, **settings), sources, targets, masks, batch=12)
    if exact:
        assert torch.equal(target, -source)
        assert torch.equal(mask, source[:, :1] * 0.5 + 0.5)
    else:
        # Bilinear sampling is linear, so a pixelwise linear relation survives up to rounding.
        torch.testing.assert_close(target, -source, atol=1e-5, rtol=0)
        torch.testing.assert_close(mask, source[:, :1] * 0.5 + 0.5, atol=1e-5, rtol=0)


@pytest.mark.parametrize("placement", ["even", "uniform"])
def test_an_affine_patch_stays_inside_a_frame_it_fits_in(placement):
    # On a linear ramp, any warp that samples only inside the frame gives a linear patch;
    # reflection at an edge would fold the ramp and break that.
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    ramp = (0.02 * xs + 0.01 * ys - 0.95).expand(2, 1, 64, 64).contiguous()
    augment = augmenter(patch_size=16, flip_p=0, affine_p=1, scale=0.5, rotation=45, colour_p=0, placement=placement)
    source, _, _ = draw(augment, ramp, ramp, None, batch=32)
    second_x = source[..., 2:] - 2 * source[..., 1:-1] + source[..., :-2]
    second_y = source[..., 2:, :] - 2 * source[..., 1:-1, :] + source[..., :-2, :]
    assert second_x.abs().max() < 1e-5 and second_y.abs().max() < 1e-5
    # A warp without zoom or rotation keeps the ramp's slope: the matrix maps pixels, not corners.
    plain = augmenter(patch_size=16, flip_p=0, affine_p=1, scale=0, rotation=0, colour_p=0)
    source, _, _ = draw(plain, ramp, ramp, None, batch=4)
    slope = source[..., 1:] - source[..., :-1]
    torch.testing.assert_close(slope, torch.full((4, 1, 16, 15), 0.02), atol=1e-5, rtol=0)


def test_colour_jitter_is_identical_on_source_and_target_and_spares_the_mask():
    sources = smooth_frames(2, 3, 32, 32)
    masks = sources[:, 1:2] * 0.5 + 0.5
    # Draws come in a fixed order, so the same seed gives the same geometry with and without colour.
    plain = draw(augmenter(patch_size=16, **dict(EVERYTHING, colour_p=0.0)), sources, sources, masks)
    jittered = draw(augmenter(patch_size=16, **dict(EVERYTHING, colour_p=1.0)), sources, sources, masks)
    assert torch.equal(jittered[0], jittered[1])
    assert torch.equal(jittered[2], plain[2])
    assert not torch.equal(jittered[0], plain[0])
    assert (jittered[0] - plain[0]).abs().max() < 0.2  # a small jitter, not a new image


def test_colour_jitter_on_greyscale_shots():
    sources = smooth_frames(2, 1, 24, 24)
    augment = augmenter(patch_size=16, colour_p=1.0, hue=0.5, saturation=1.0)
    source, target, _ = draw(augment, sources, sources, None)
    assert source.shape == (6, 1, 16, 16) and torch.equal(source, target)


def test_colour_conventions():
    """Exposure is in stops on display values, hue in fractions of a turn (kornia takes radians)."""
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    one = torch.ones(1)
    third_turn = _adjust_colour(red, one, one, one, torch.full((1,), 2 * math.pi / 3))
    torch.testing.assert_close(third_turn, torch.tensor([-1.0, 1.0, -1.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2))
    quarter = torch.full((1, 1, 2, 2), -0.5)  # display value 0.25
    brighter = _adjust_colour(quarter, torch.full((1,), 2.0), one, None, None)
    torch.testing.assert_close(brighter, torch.zeros(1, 1, 2, 2))  # display 0.5


@pytest.mark.parametrize("settings", [NO_AUGMENT, dict(EVERYTHING, affine_p=1.0, rot90_p=1.0, colour_p=1.0)])
def test_frames_smaller_than_the_patch(settings):
    sources = smooth_frames(2, 3, 20, 24)
    masks = torch.rand(2, 1, 20, 24)
    source, target, mask = draw(augmenter(patch_size=32, **settings), sources, -sources, masks)
    assert source.shape == target.shape == (6, 3, 20, 24) and mask.shape == (6, 1, 20, 24)
    if settings is NO_AUGMENT:
        for patch in source:
            assert any(torch.equal(patch, frame) for frame in sources)


def test_frames_smaller_than_the_patch_on_one_side_turn_only_by_half_turns():
    sources = smooth_frames(1, 3, 20, 40)
    augment = augmenter(patch_size=32, **dict(NO_AUGMENT, rot90_p=1.0))
    source, _, _ = draw(augment, sources, sources, None)
    assert source.shape == (6, 3, 20, 32)
    for patch in source:
        assert find_crop(patch.flip(-1, -2), sources) is not None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("patch_size", 8, "augment.patch_size = 8 is out of range (must be >= 16)"),
        ("patch_size", 64.0, "augment.patch_size = 64.0 must be an integer"),
        ("flip_p", 1.5, "augment.flip_p = 1.5 is out of range (must be <= 1.0)"),
        ("rot90_p", -0.1, "augment.rot90_p = -0.1 is out of range (must be >= 0.0)"),
        ("affine_p", float("nan"), "augment.affine_p = nan must be a finite number"),
        ("colour_p", "0.5", "augment.colour_p = '0.5' must be a number"),
        ("scale", 1.0, "augment.scale = 1.0 is out of range (must be <= 0.9)"),
        ("rotation", 200, "augment.rotation = 200 is out of range (must be <= 180.0)"),
        ("gamma", 1, "augment.gamma = 1 is out of range (must be <= 0.9)"),
        ("saturation", 2.0, "augment.saturation = 2.0 is out of range (must be <= 1.0)"),
        ("hue", 0.6, "augment.hue = 0.6 is out of range (must be <= 0.5)"),
        ("placement", "edges", "augment.placement = 'edges' is not one of uniform, even"),
    ],
)
def test_out_of_range_settings_are_one_line_errors(field, value, message):
    with pytest.raises(ConfigError) as caught:
        AugmentConfig(**{field: value})
    assert str(caught.value) == message


def test_mismatched_keyframes_are_rejected_with_their_shapes():
    sources = smooth_frames(2, 3, 24, 24)
    with pytest.raises(ValueError, match=r"targets \(2, 3, 24, 20\)"):
        draw(augmenter(patch_size=16), sources, sources[..., :20], None)
    with pytest.raises(ValueError, match=r"masks must be \(2, 1, 24, 24\)"):
        draw(augmenter(patch_size=16), sources, sources, sources)


def test_an_unmoved_warp_of_a_frame_smaller_than_the_patch_is_the_frame():
    sources = smooth_frames(1, 3, 20, 24)
    augment = augmenter(patch_size=32, flip_p=0, affine_p=1, scale=0, rotation=0, translate=0, colour_p=0)
    source, _, _ = draw(augment, sources, sources, None, batch=2)
    torch.testing.assert_close(source, sources.expand(2, -1, -1, -1), atol=1e-5, rtol=0)


def border_and_middle(settings: dict, height: int = 100, steps: int = 40) -> tuple[int, int, int, int]:
    """Patches (of ``steps`` batches of 16, 32 pixels a side, from a ``height`` x ``height`` frame) holding
    rows 0-2, the middle row, columns 0-2 and the middle column: the index rides in the mask."""
    sources = smooth_frames(1, 1, height, height)
    index = torch.arange(height, dtype=torch.float32) / (height - 1)
    counts = []
    for mask in (index.view(1, 1, -1, 1), index.view(1, 1, 1, -1)):
        mask = mask.expand(1, 1, height, height).contiguous()
        border = middle = 0
        for step in range(steps):
            _, _, patches = draw(augmenter(patch_size=32, **settings), sources, sources, mask, batch=16, seed=step)
            held = patches.flatten(1) * (height - 1)
            border += int((held.amin(dim=1) < 2.5).sum())
            middle += int(((held - (height - 1) / 2).abs() <= 0.5).any(dim=1).sum())
        counts += [border, middle]
    return tuple(counts)


@pytest.mark.parametrize("settings", [dict(placement="even"), dict(placement="even", affine_p=1.0, rot90_p=0.5),
                                      dict(NO_AUGMENT, placement="even")])
def test_patches_cover_the_border_rows_and_columns_as_often_as_the_middle(settings):
    """With even placement a frame's border is trained about as much as its middle: with corners drawn uniformly,
    rows 0-2 of this frame would be in 3 / 69 of the patches that the middle row is in (a pale top row)."""
    rows, middle_row, columns, middle_column = border_and_middle(settings)
    assert middle_row > 100 and middle_column > 100  # of 640 patches: the middle is still trained
    assert 0.75 < rows / middle_row < 1.5
    assert 0.75 < columns / middle_column < 1.5


def test_uniform_placement_trains_the_border_far_less_and_changes_no_other_draw():
    rows, middle_row, columns, middle_column = border_and_middle(dict(placement="uniform"))
    assert rows / middle_row < 0.2 and columns / middle_column < 0.2
    generator = torch.Generator()
    draws = {placement: augmenter(patch_size=32, **dict(EVERYTHING, placement=placement))._draw(
        64, 2, 100, 90, 32, 32, generator.manual_seed(3)) for placement in ("even", "uniform")}
    assert set(draws["even"]) == set(draws["uniform"])
    for name, value in draws["even"].items():
        assert torch.equal(value, draws["uniform"][name]) == (name not in ("top", "left")), name
    for name, side in (("top", 100), ("left", 90)):
        assert 0 <= int(draws["even"][name].min()) and int(draws["even"][name].max()) <= side - 32
        assert (draws["even"][name] == 0).sum() > 10  # corners beyond the frame, moved to its edge
