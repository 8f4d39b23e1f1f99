"""Colour management through OpenColorIO: defaults from the data, exact round trips through real files,
the ACEScct of the specification, a studio's own config, legacy runs, and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from studio_config import write_studio_config

import shotfit
from shotfit.errors import ConfigError, RunError
from shotfit.io import (
    ColourPipeline,
    ColourSettings,
    PixelFormat,
    colour_of_run,
    override_colour,
    read_image,
    resolve_colour,
    write_image,
)

SRGB = "sRGB Encoded Rec.709 (sRGB)"
EXR_HALF = PixelFormat(".exr", "half", 3)
EXR_FLOAT = PixelFormat(".exr", "float", 3)
PNG16 = PixelFormat(".png", "uint16", 3)
LINEAR = np.concatenate([np.linspace(-0.005, 0.02, 101), np.geomspace(0.02, 200.0, 400), [0.0078125, 1.0]])


def acescct(linear: np.ndarray) -> np.ndarray:
    """ACEScct as Academy S-2016-001 writes it (float64): the reference OCIO must match."""
    x = np.asarray(linear, np.float64)
    return np.where(x <= 0.0078125, 10.5402377416545 * x + 0.0729055341958355,
                    (np.log2(np.maximum(x, 0.0078125)) + 9.72) / 17.52)


def scene_linear_plate(height: int = 24, width: int = 32) -> np.ndarray:
    """(H, W, 3) float32 from just below 0 to 200: shadows, mid grey and highlights far above 1.0."""
    values = np.geomspace(1e-4, 200.0, height * width).reshape(height, width)
    values[0, :4] = [-0.003, 0.0, 0.0078125, 0.18]
    return np.stack([values, values[::-1], np.roll(values, 7)], axis=-1).astype(np.float32)


def identity_network(values: np.ndarray) -> np.ndarray:
    return values.copy()


# --- the round trip: source -> working -> identity network -> output, through real files ----

@pytest.mark.parametrize("fmt", [EXR_HALF, EXR_FLOAT], ids=["half", "float"])
def test_scene_linear_exr_survives_the_round_trip_highlights_included(tmp_path: Path, fmt: PixelFormat):
    write_image(tmp_path / "plate.exr", scene_linear_plate(), fmt)
    pixels, read_fmt = read_image(tmp_path / "plate.exr")
    colour = ColourPipeline(resolve_colour(read_fmt))
    network = colour.to_network(pixels)
    assert network.min() > -1.0 and network.max() <= 1.0  # 200 still inside the network's range
    write_image(tmp_path / "render.exr", colour.from_network(identity_network(network)), read_fmt)

    rendered, _ = read_image(tmp_path / "render.exr")
    assert pixels.max() > 150.0
    if fmt.dtype == "half":
        np.testing.assert_array_equal(rendered, pixels)  # every half value comes back exactly
    else:
        np.testing.assert_allclose(rendered, pixels, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("working", [None, "ACEScct", "lin_rec709"])
def test_16_bit_srgb_comes_back_as_the_same_codes(tmp_path: Path, working: str | None):
    codes = np.arange(0, 65536, 64, dtype=np.float32).reshape(32, 32, 1) / 65535
    plate = np.concatenate([codes, codes[::-1], codes.transpose(1, 0, 2)], axis=2)
    plate[0, 0], plate[0, 1] = 1.0, 0.0  # white and black
    write_image(tmp_path / "plate.png", plate, PNG16)
    pixels, fmt = read_image(tmp_path / "plate.png")
    colour = ColourPipeline(resolve_colour(fmt, working=working))
    network = colour.to_network(pixels)
    write_image(tmp_path / "render.png", colour.from_network(identity_network(network)), fmt)

    rendered, _ = read_image(tmp_path / "render.png")
    np.testing.assert_array_equal(rendered, pixels)
    if working is None:  # 8/16-bit data trains as it is: 2x - 1, as before colour management
        np.testing.assert_array_equal(network, pixels * np.float32(2) - np.float32(1))
    elif working == "ACEScct":  # sRGB white is linear 1.0, ACEScct 0.5548: the range a default would waste
        assert network.max() == pytest.approx(2 * 0.5547945 - 1, abs=1e-5)


# --- defaults and names -------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "source", "working"), [
    (EXR_HALF, "ACEScg", "ACEScct"),
    (PixelFormat(".tif", "float", 4), "ACEScg", "ACEScct"),
    (PixelFormat(".png", "uint8", 3), SRGB, SRGB),
    (PNG16, SRGB, SRGB),
    (PixelFormat(".jpg", "uint8", 1), SRGB, SRGB),
])
def test_defaults_follow_the_data(fmt: PixelFormat, source: str, working: str):
    settings = resolve_colour(fmt)
    assert (settings.source, settings.working) == (source, working)
    # the built-in config is pinned to its version, so a later OpenColorIO renders the run the same
    assert settings.config.startswith("ocio://studio-config-v") and "latest" not in settings.config


def test_names_aliases_and_roles_are_saved_as_canonical_names():
    settings = resolve_colour(EXR_HALF, "lin_ap1", "color_timing", "ocio://studio-config-latest")
    assert (settings.source, settings.working) == ("ACEScg", "ACEScct")
    assert resolve_colour(PNG16, "srgb_tx", "acescct").to_dict() == {
        "config": settings.config, "source": SRGB, "working": "ACEScct"}
    assert ColourSettings.from_dict(settings.to_dict()) == settings
    assert override_colour(settings, colorspace="aces").source == "ACES2065-1"


def test_unknown_colour_spaces_are_one_line_with_the_closest_names():
    config = resolve_colour(EXR_HALF).config
    with pytest.raises(ConfigError) as error:
        resolve_colour(EXR_HALF, colorspace="ACEScgg")
    assert str(error.value) == (f"source colour space 'ACEScgg' is not in OCIO config '{config}' "
                                "(closest: ACEScg, ACEScc, aces); 'shotfit colorspaces' lists them")
    with pytest.raises(ConfigError, match=r"^working colour space 'Log C' is not in OCIO config .*; 'shotfit"):
        resolve_colour(EXR_HALF, working="Log C")


def test_unreadable_configs_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    missing = tmp_path / "missing.ocio"
    with pytest.raises(ConfigError, match=f"^OCIO config '{missing}' does not exist$"):
        resolve_colour(EXR_HALF, ocio_config=missing)
    garbage = tmp_path / "garbage.ocio"
    garbage.write_text("colorspaces: [\n")
    with pytest.raises(ConfigError) as error:
        resolve_colour(EXR_HALF, ocio_config=garbage)
    assert str(error.value).startswith(f"OCIO config '{garbage}' cannot be read (") and "\n" not in str(error.value)
    monkeypatch.setenv("OCIO", str(missing))
    with pytest.raises(ConfigError, match=rf"^OCIO config '{missing}' \(from \$OCIO\) does not exist$"):
        resolve_colour(EXR_HALF)
    with pytest.raises(ConfigError, match="^OCIO config 'ocio://studio-config-v9' is not one of OpenColorIO's"):
        resolve_colour(EXR_HALF, ocio_config="ocio://studio-config-v9")


# --- OCIO's ACEScct is the specification's, so runs made before OCIO render the same ----------------

@pytest.mark.parametrize(("linear", "code"), [
    (0.0, 0.0729055341958355),  # S-2016-001: the toe's offset
    (0.0078125, 0.155251141552511),  # the break point, reached by both segments
    (0.18, 0.4135884),  # mid grey
    (1.0, 0.5547945),  # 9.72 / 17.52
    (2**7.8, 1.0),  # ~222.86: the top of the network's range
])
def test_acescg_to_acescct_matches_the_specification(linear: float, code: float):
    colour = ColourPipeline(resolve_colour(EXR_HALF))
    assert colour.to_working(np.full((1, 1, 3), linear, np.float32))[0, 0] == pytest.approx([code] * 3, abs=2e-7)


def test_acescct_agrees_with_the_specification_everywhere_and_inverts_exactly():
    colour = ColourPipeline(resolve_colour(EXR_FLOAT))
    rgb = np.stack([LINEAR, LINEAR[::-1], np.roll(LINEAR, 9)], axis=-1)[None].astype(np.float32)
    working = colour.to_working(rgb)
    np.testing.assert_allclose(working, acescct(rgb), rtol=0, atol=2e-7)
    np.testing.assert_allclose(colour.from_working(working), rgb, rtol=2e-6, atol=1e-8)


def test_runs_made_before_colour_management_keep_their_encoding():
    legacy_log = colour_of_run({"transfer": "acescct"})
    assert (legacy_log.source, legacy_log.working) == ("ACEScg", "ACEScct")
    legacy_display = ColourPipeline(colour_of_run({"transfer": "none"}))
    pixels = np.random.default_rng(0).random((4, 5, 3), dtype=np.float32)
    assert legacy_display.is_identity
    np.testing.assert_array_equal(legacy_display.to_network(pixels), pixels * np.float32(2) - np.float32(1))
    saved = {"colour": {"config": legacy_log.config, "source": "ACES2065-1", "working": "ACEScct"}}
    assert colour_of_run(saved).source == "ACES2065-1"  # saved settings win over any default
    with pytest.raises(RunError, match="^'run.json' says neither how colour was handled"):
        colour_of_run({}, "'run.json'")


# --- channels, display ------------------------------------------------------------------------------

def test_alpha_passes_untouched_and_grey_is_converted_as_neutral():
    colour = ColourPipeline(resolve_colour(EXR_HALF))
    rgba = np.concatenate([scene_linear_plate(), np.linspace(0, 1, 24 * 32, dtype=np.float32).reshape(24, 32, 1)], 2)
    batch = np.stack([rgba, rgba * 2])
    round_trip = colour.from_network(colour.to_network(batch))
    for converted in (colour.to_network(batch), round_trip, colour.to_display(batch)):
        np.testing.assert_array_equal(converted[..., 3], batch[..., 3])
    assert colour.to_network(batch).shape == batch.shape
    grey = scene_linear_plate()[..., :1]
    np.testing.assert_allclose(colour.to_working(grey)[..., 0], acescct(grey[..., 0]), atol=2e-7)
    np.testing.assert_allclose(colour.from_network(colour.to_network(grey)), grey, rtol=2e-6, atol=1e-8)


def test_display_shows_scene_linear_through_the_view_and_srgb_as_it_is():
    linear = np.array([[[0.18] * 3, [200.0, 0.0, 0.0], [0.0] * 3]], np.float32)
    shown = ColourPipeline(resolve_colour(EXR_HALF)).to_display(linear)
    assert 0.3 < shown[0, 0, 0] < 0.4  # mid grey through the ACES SDR view, not 0.18 and not clipped
    assert shown.max() <= 1.0 and shown[0, 1, 0] > 0.95 and shown[0, 2].max() == 0.0
    pixels = np.random.default_rng(1).random((6, 7, 3), dtype=np.float32)
    np.testing.assert_allclose(ColourPipeline(resolve_colour(PNG16)).to_display(pixels), pixels, atol=1e-6)


def test_shotfit_io_converts_colour_without_torch():
    code = ("import sys, numpy as np; from shotfit.io import ColourPipeline, PixelFormat, resolve_colour; "
            "c = ColourPipeline(resolve_colour(PixelFormat('.exr', 'half', 3))); "
            "grey = c.to_working(np.full((1, 1, 3), 0.18, np.float32))[0, 0, 0]; "
            "print(round(float(grey), 4), 'torch' in sys.modules)")
    src = Path(shotfit.__file__).parents[1]  # this checkout, wherever the test runs from
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                          env=env)
    assert done.stdout.split() == ["0.4136", "False"]


# --- a studio's own config ------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["$OCIO", "argument"])
def test_a_studio_config_gives_its_roles_and_transforms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str):
    path = write_studio_config(tmp_path / "show.ocio")
    if how == "$OCIO":
        monkeypatch.setenv("OCIO", str(path))
        settings = resolve_colour(EXR_HALF)
    else:
        settings = resolve_colour(EXR_HALF, ocio_config=path)
    assert settings == ColourSettings(str(path), "show_linear", "show_log")
    assert resolve_colour(PNG16, ocio_config=path).source == "show_srgb"
    colour = ColourPipeline(settings)
    # the show's log: log2(x) / 16 + 0.6 above 1/128, so linear 1.0 -> 0.6 -> network 0.2
    assert colour.to_network(np.ones((1, 1, 3), np.float32))[0, 0] == pytest.approx([0.2] * 3, abs=1e-6)
    plate = scene_linear_plate()
    np.testing.assert_allclose(colour.from_network(colour.to_network(plate)), plate, rtol=2e-6, atol=1e-8)
    # its only display shows the sRGB encoding: 0.18 -> 0.4614
    assert colour.to_display(np.full((1, 1, 3), 0.18, np.float32))[0, 0, 0] == pytest.approx(0.4614, abs=1e-4)


def test_a_studio_config_without_the_roles_asks_for_names(tmp_path: Path):
    path = write_studio_config(tmp_path / "bare.ocio", roles=("scene_linear",))
    with pytest.raises(ConfigError) as error:
        resolve_colour(EXR_HALF, ocio_config=path)
    assert str(error.value) == (f"OCIO config '{path}' has no 'color_timing' role to choose the working colour "
                                "space from; name one")
    assert resolve_colour(EXR_HALF, working="show_log", ocio_config=path).working == "show_log"
    closest = r"\(closest: show_log, show_srgb, show_linear\)"
    with pytest.raises(ConfigError, match=rf"colour space 'show_lg' is not in .* {closest}"):
        resolve_colour(EXR_HALF, working="show_lg", ocio_config=path)
