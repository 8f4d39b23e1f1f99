"""Colour management end to end: ``shotfit colorspaces``, train's colour options saved in the run,
renders that use them with no flags, runs made before colour management, and one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import shots
import torch
import yaml
from shots import FRAMES, KEYFRAMES, edit, fails, plate, succeeds, train_args
from studio_config import write_studio_config

from shotfit.infer.predictor import Predictor, load_network
from shotfit.io import ColourPipeline, ColourSettings, PixelFormat, open_shot, read_image, resolve_colour, write_image
from shotfit.runs.folder import RunFolder

SRGB = "sRGB Encoded Rec.709 (sRGB)"
BUILT_IN = resolve_colour(PixelFormat(".exr", "half", 3)).config  # the pinned built-in studio config


@pytest.fixture(autouse=True)
def _process_state():
    yield from shots.isolated_process_state()


def render_args(run: str, source: str, out: str, *extra: str) -> list[str]:
    return ["render", "--run", run, "--source", source, "--out", out, "--device", "cpu", *extra]


def frames_of(folder: str) -> dict[str, np.ndarray]:
    return {p.name: read_image(p)[0] for p in sorted(Path(folder).iterdir())}


def write_exr_shot() -> None:
    """src/ and keys/ as half EXR, scene-linear with highlights up to about 4."""
    for frame in FRAMES:
        shots.write_exr(Path(f"src/plate.{frame}.exr"), plate(frame) * 4.0)
    for frame in KEYFRAMES:
        shots.write_exr(Path(f"keys/plate.{frame}.exr"), edit(plate(frame)) * 4.0)


def make_legacy(run: str, transfer: str) -> None:
    """Rewrite run.json as shotfit wrote it before colour management."""
    path = Path(run) / "run.json"
    info = json.loads(path.read_text())
    del info["colour"]
    path.write_text(json.dumps({**info, "transfer": transfer}))


# --- shotfit colorspaces -------------------------------------------------------------------------

def test_colorspaces_lists_spaces_roles_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    listing = " ".join(succeeds("colorspaces").stdout.split())
    assert "ACEScct" in listing and "color_timing" in listing and "lin_ap1" in listing
    assert f"defaults: float frames (EXR) 'ACEScg' -> working 'ACEScct'; 8/16-bit frames '{SRGB}', as they are" \
        in listing
    config = write_studio_config(tmp_path / "show.ocio")
    for args in (["--ocio-config", str(config)], []):
        if not args:
            monkeypatch.setenv("OCIO", str(config))
        listing = " ".join(succeeds("colorspaces", *args).stdout.split())
        assert "show_log" in listing and "ACEScct" not in listing
        assert "'show_linear' -> working 'show_log'" in listing


def test_colour_mistakes_are_one_line_and_write_nothing(tmp_path: Path):
    shots.write_shot(Path("src"))
    shots.write_shot(Path("keys"), KEYFRAMES, make=lambda f: edit(plate(f)))
    before = shots.snapshot(tmp_path)
    assert fails(*train_args("src", "keys", "run", "--colorspace", "sRGB texture")) == (
        f"shotfit: source colour space 'sRGB texture' is not in OCIO config '{BUILT_IN}' (closest: sRGB - Texture, "
        "srgb_texture, Utility - sRGB - Texture); 'shotfit colorspaces' lists them")
    assert fails(*train_args("src", "keys", "run", "--working-space", "ACEScct2")).startswith(
        "shotfit: working colour space 'ACEScct2' is not in OCIO config")
    assert fails(*train_args("src", "keys", "run", "--set", "colour.working=logc")).startswith(
        "shotfit: working colour space 'logc' is not in OCIO config")
    missing = tmp_path / "show.ocio"
    assert fails(*train_args("src", "keys", "run", "--ocio-config", "show.ocio")) == (
        f"shotfit: OCIO config '{missing}' does not exist")
    Path("broken.ocio").write_text("ocio_profile_version: 2\nroles: {scene_linear: nowhere}\n")
    assert fails("colorspaces", "--ocio-config", "broken.ocio").startswith(
        f"shotfit: OCIO config '{tmp_path / 'broken.ocio'}' cannot be read (")
    shots.assert_unchanged(before, tmp_path, allowed_new=["broken.ocio"])


# --- runs keep their colour settings, and renders use them ------------------------------------------

def test_an_exr_run_trains_in_acescct_and_renders_with_no_flags(tmp_path: Path):
    write_exr_shot()
    succeeds(*train_args("src", "keys", "run", steps=2))
    info = json.loads(Path("run/run.json").read_text())
    assert info["colour"] == {"config": BUILT_IN, "source": "ACEScg", "working": "ACEScct"}
    assert yaml.safe_load(Path("run/config.yaml").read_text())["colour"] == {
        "source": "auto", "working": "auto", "config": "auto"}
    succeeds(*render_args("run", "src", "render"))
    rendered = frames_of("render")
    assert max(float(f.max()) for f in rendered.values()) > 2.0  # highlights above 1.0 survive

    # The same plates declared ACES2065-1 (AP0) reach the network through another matrix: the network,
    # near its identity start after 2 steps, then shifts some pixels by more than a half's step at 4.
    succeeds(*render_args("run", "src", "render_ap0", "--colorspace", "aces"))
    assert max(np.abs(frames_of("render_ap0")[n] - rendered[n]).max() for n in rendered) > 0.004

    # A run made before colour management ("transfer": "acescct") renders the same half floats (that
    # OCIO's ACEScct is the specification's curve, which such runs used, is tested in tests/io).
    make_legacy("run", "acescct")
    succeeds(*render_args("run", "src", "render_legacy"))
    for name, frame in frames_of("render_legacy").items():
        np.testing.assert_array_equal(frame, rendered[name])


def test_a_studio_config_and_working_space_given_to_train_are_used_by_render(tmp_path: Path):
    shots.write_shot(Path("src"), bits=16)
    shots.write_shot(Path("keys"), KEYFRAMES, make=lambda f: edit(plate(f)), bits=16)
    write_studio_config(Path("show.ocio"))
    succeeds(*train_args("src", "keys", "run", "--ocio-config", "show.ocio", "--working-space", "show_log"))
    settings = ColourSettings(str(tmp_path / "show.ocio"), "show_srgb", "show_log")
    assert json.loads(Path("run/run.json").read_text())["colour"] == settings.to_dict()
    assert yaml.safe_load(Path("run/config.yaml").read_text())["colour"] == {
        "source": "auto", "working": "show_log", "config": "show.ocio"}
    succeeds(*render_args("run", "src", "render"))

    # What render wrote is the network run through the run's own colour pipeline, not the default one.
    network, _ = load_network(RunFolder("run"))
    shot = open_shot("src")
    pipelines = {"expected": ColourPipeline(settings), "default": ColourPipeline(resolve_colour(shot.format))}
    for name, pipeline in pipelines.items():
        predictor = Predictor(network, pipeline, torch.device("cpu"))
        write_image(Path(name) / "plate.1002.png", predictor(shot.read(1002)), shot.format)
    rendered = read_image(Path("render/plate.1002.png"))[0]
    np.testing.assert_array_equal(rendered, read_image(Path("expected/plate.1002.png"))[0])
    assert np.abs(rendered - read_image(Path("default/plate.1002.png"))[0]).max() > 1e-3

    # The config moved (another machine): render says so, and --ocio-config finds it again.
    shutil.move("show.ocio", "moved.ocio")
    assert fails(*render_args("run", "src", "render2")) == (
        f"shotfit: OCIO config '{tmp_path / 'show.ocio'}' does not exist; the colour settings of run 'run' "
        "name it: give the render another OCIO config (--ocio-config)")
    assert not Path("render2").exists()
    succeeds(*render_args("run", "src", "render2", "--ocio-config", "moved.ocio"))
    assert shots.snapshot(Path("render2")) == shots.snapshot(Path("render"))


def test_a_run_made_before_colour_management_renders_the_same(tmp_path_factory: pytest.TempPathFactory,
                                                              tmp_path: Path):
    shots.copy_trained(tmp_path_factory, tmp_path)  # 8-bit PNG
    succeeds(*render_args("run", "src", "render"))
    make_legacy("run", "none")
    succeeds(*render_args("run", "src", "render_legacy"))
    assert shots.snapshot(Path("render_legacy")) == shots.snapshot(Path("render"))
    before = shots.snapshot(tmp_path)
    assert fails(*render_args("run", "src", "render3", "--colorspace", "lin_ap9")).startswith(
        "shotfit: source colour space 'lin_ap9' is not in OCIO config")
    shots.assert_unchanged(before, tmp_path)


def test_resuming_with_other_colour_settings_is_refused(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path):
    shots.copy_trained(tmp_path_factory, tmp_path)
    before = shots.snapshot(tmp_path)
    assert fails(*train_args("src", "keys", "run", "--resume", "--working-space", "ACEScct", steps=4)) == (
        f"shotfit: run folder 'run' was trained with colour '{SRGB}' -> '{SRGB}' ({BUILT_IN}) but this resume "
        f"resolves to '{SRGB}' -> 'ACEScct' ({BUILT_IN}); give the run's own colour settings")
    shots.assert_unchanged(before, tmp_path)
