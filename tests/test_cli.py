"""The ``shotfit`` command end to end: train, render and eval on tiny shots the tests write.

One 3-step run is trained once per session (``shots.trained_run``) and copied by the tests that
render; tests that must train their own run use 1-3 steps of a width-4 network.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import numpy as np
import pytest
import shots
import torch
import yaml
from shots import FRAMES, HEIGHT, KEYFRAMES, WIDTH, edit, plate, succeeds, train_args

from shotfit.engine import preview


@pytest.fixture(autouse=True)
def _process_state():
    yield from shots.isolated_process_state()


@pytest.fixture
def shot(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """src/, keys/, truth/ and a trained run/ in the test's folder (the current directory)."""
    return shots.copy_trained(tmp_path_factory, tmp_path)


def rendered_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- train -------------------------------------------------------------------------------------

def test_train_writes_a_complete_run_folder(tmp_path_factory: pytest.TempPathFactory):
    root, result = shots.trained_run(tmp_path_factory)
    run = root / "run"
    assert "trained 3 steps in" in result.stdout and "(done)" in result.stdout
    assert str(run) in result.stdout.replace("\n", "")

    config = yaml.safe_load((run / "config.yaml").read_text())
    # The model's full constructor arguments, the --set values among them, and every section resolved.
    assert config["model"] == {"arch": "unet_attn", "in_channels": 3, "out_channels": 3, "width": 4, "depth": 2,
                               "max_width": 256, "residual": True, "upsample": "bilinear", "downsample": "max"}
    assert config["augment"]["patch_size"] == 32 and config["data"]["batch_size"] == 2
    assert config["loss"]["lpips"] == 0 and config["train"]["steps"] == 3
    assert {"loss", "augment", "data", "train", "render"} <= set(config)

    info = json.loads((run / "run.json").read_text())
    assert info["keyframe_frames"] == list(KEYFRAMES)
    assert info["frame_size"] == [HEIGHT, WIDTH] and info["channels"] == 3

    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_000003.pt"]
    sheet = shots.read_png(run / "previews" / "final.png")
    # Three columns (source, prediction, target) of full-size frames; a row per keyframe and per frame
    # nobody fixed (3 of them by default), each under its label.
    assert sheet.dtype == np.uint8 and sheet.shape[1] == 3 * WIDTH + 4 * preview.GAP
    row = HEIGHT + preview.LABEL_HEIGHT + preview.GAP
    assert (sheet.shape[0] - preview.LABEL_HEIGHT - preview.GAP) / row == len(KEYFRAMES) + 3

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps_done"] == 3 and metrics["stopped_by"] == "steps"
    assert metrics["history"][-1]["step"] == 3 and math.isfinite(metrics["history"][-1]["total"])
    assert metrics["previews"][-1]["step"] == 3 and math.isfinite(metrics["previews"][-1]["train/keyframe_psnr"])

    model = torch.load(run / "model.pt", weights_only=True)
    assert model["arch"] == "unet_attn" and model["step"] == 3
    assert {"arch": model["arch"], **model["arch_args"]} == config["model"]
    assert not list(run.glob("**/.*partial*")), "temporary files left behind"


def test_config_file_and_set_overrides(tmp_path: Path):
    shots.write_shot(tmp_path / "src")
    shots.write_shot(tmp_path / "keys", KEYFRAMES, make=lambda f: edit(plate(f)))
    Path("shot.yaml").write_text(yaml.safe_dump({
        "model": {"width": 4, "depth": 2},
        "augment": {"patch_size": 32},
        "data": {"batch_size": 2, "preview_frames": 1},
        "loss": {"lpips": 0},
        "train": {"lr": 0.01, "seed": 7, "threads": 1},
    }))
    # The pattern source is the folder's frames too; --set wins over the file.
    result = succeeds("train", "--no-track", "--source", "src/plate.####.png", "--target", "keys", "--out", "run",
                      "--config", "shot.yaml", "--set", "train.lr=1e-3", "--set", "augment.flip_p=0",
                      "--steps", "1", "--device", "cpu")
    assert "trained 1 steps" in result.stdout

    config = yaml.safe_load(Path("run/config.yaml").read_text())
    assert config["train"]["lr"] == 0.001 and config["train"]["seed"] == 7  # --set, then the file
    assert config["augment"]["flip_p"] == 0 and config["augment"]["patch_size"] == 32
    assert config["model"]["width"] == 4 and config["model"]["depth"] == 2
    assert config["data"]["preview_frames"] == 1 and config["loss"]["lpips"] == 0
    assert config["loss"]["l1"] == 1.0  # untouched defaults written out
    assert json.loads(Path("run/run.json").read_text())["source"] == "src/plate.####.png"


def test_resume_continues_the_run_to_more_steps(shot: Path):
    before = torch.load("run/model.pt", weights_only=True)
    # No --set: a resumed run trains with its own config.yaml.
    result = succeeds("train", "--no-track", "--source", "src", "--target", "keys", "--out", "run", "--resume",
                      "--steps", "5", "--device", "cpu")
    assert "trained 5 steps" in result.stdout

    metrics = json.loads(Path("run/metrics.json").read_text())
    assert metrics["steps_done"] == 5
    assert [row["step"] for row in metrics["history"]] == [3, 5]  # the first 3 steps' history is kept
    assert {p.name for p in Path("run/checkpoints").iterdir()} == {"step_000003.pt", "step_000005.pt"}
    after = torch.load("run/model.pt", weights_only=True)
    assert after["step"] == 5
    assert any(not torch.equal(before["network"][k], after["network"][k]) for k in before["network"])
    assert yaml.safe_load(Path("run/config.yaml").read_text())["model"]["width"] == 4


def test_resuming_a_finished_run_changes_nothing(shot: Path):
    before = {p: p.stat().st_mtime_ns for p in Path("run").rglob("*") if p.is_file()}
    result = succeeds("train", "--no-track", "--source", "src", "--target", "keys", "--out", "run", "--resume",
                      "--steps", "2", "--device", "cpu")
    assert "already trained to step 3" in result.stdout
    after = {p: p.stat().st_mtime_ns for p in Path("run").rglob("*") if p.is_file()}
    assert {p: t for p, t in after.items() if p.suffix != ".yaml" and p.name != "run.json"} == {
        p: t for p, t in before.items() if p.suffix != ".yaml" and p.name != "run.json"}


def test_minutes_stops_cleanly_with_a_usable_run(tmp_path: Path):
    shots.write_shot(tmp_path / "src")
    shots.write_shot(tmp_path / "keys", KEYFRAMES, make=lambda f: edit(plate(f)))
    result = succeeds(*train_args("src", "keys", "run", "--minutes", "0.01", steps=None))
    assert "(time budget reached)" in result.stdout

    metrics = json.loads(Path("run/metrics.json").read_text())
    assert metrics["stopped_by"] == "time" and metrics["steps_done"] >= 1
    step = metrics["steps_done"]
    assert Path(f"run/checkpoints/step_{step:06d}.pt").is_file()
    assert torch.load("run/model.pt", weights_only=True)["step"] == step
    assert Path("run/previews/final.png").is_file()
    succeeds("render", "--run", "run", "--source", "src", "--out", "render", "--device", "cpu")
    assert rendered_names(Path("render")) == [f"plate.{f}.png" for f in FRAMES]


# --- render ------------------------------------------------------------------------------------

def test_render_keeps_names_frame_numbers_and_depth(shot: Path):
    Path("src/notes.txt").write_text("not a frame")
    result = succeeds("render", "--run", "run", "--source", "src", "--out", "render", "--device", "cpu")
    assert "rendered 6 frames into render" in result.stdout
    assert rendered_names(Path("render")) == [f"plate.{f}.png" for f in FRAMES]
    for frame in FRAMES:
        codes = shots.read_png(Path(f"render/plate.{frame}.png"))
        assert codes.dtype == np.uint8 and codes.shape == (HEIGHT, WIDTH, 3)
        # Three steps leave the residual network close to its identity start.
        source = shots.read_png(Path(f"src/plate.{frame}.png")).astype(int)
        assert np.abs(codes.astype(int) - source).mean() < 8

    # A second render finds every frame there and writes nothing.
    stamps = {p.name: p.stat().st_mtime_ns for p in Path("render").iterdir()}
    again = succeeds("render", "--run", "run", "--source", "src", "--out", "render", "--device", "cpu")
    assert "rendered 0 frames, 6 already there" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in Path("render").iterdir()} == stamps


@pytest.mark.parametrize(("name", "spec"), [
    ("plate.{:04d}.png", "plate.####.png"),
    ("plate.{:04d}.png", "plate.%04d.png"),
    ("sh010_comp_v2.{:06d}.png", "sh010_comp_v2.######.png"),
    ("sh010_comp_v2.{:06d}.png", None),  # the folder
])
def test_render_from_a_pattern_keeps_its_padding(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                                                  name: str, spec: str | None):
    run = shots.trained_run(tmp_path_factory)[0] / "run"
    shots.write_shot(tmp_path / "plates", name=name)
    Path("plates/other.0001.png").write_bytes(Path("plates").joinpath(name.format(1001)).read_bytes())
    source = "plates" if spec is None else f"plates/{spec}"
    succeeds("render", "--run", run, "--source", source, "--out", "render", "--device", "cpu")
    expected = [name.format(f) for f in FRAMES]
    if spec is None:  # a folder renders every frame in it, each under its own name
        expected = sorted([*expected, "other.0001.png"])
    assert rendered_names(Path("render")) == expected


@pytest.mark.parametrize(("frames", "expected"), [
    ("1002-1003", [1002, 1003]),
    ("1001-1005x2", [1001, 1003, 1005]),
    ("1005-1100", [1005, 1006]),  # a range past the shot's end renders what there is
    ("1004", [1004]),
])
def test_render_only_the_frames_asked_for(shot: Path, frames: str, expected: list[int]):
    result = succeeds("render", "--run", "run", "--source", "src/plate.%04d.png", "--out", "render",
                      "--frames", frames, "--device", "cpu")
    assert f"rendered {len(expected)} frames" in result.stdout
    assert rendered_names(Path("render")) == [f"plate.{f}.png" for f in expected]


def test_train_and_render_from_a_video(tmp_path: Path):
    shots.write_video(Path("clip.mp4"))
    # Keyframes of a video are numbered like its frames: 0, 1, 2, ...
    for frame in (0, 3, 5):
        shots.write_png(Path(f"keys/clip_fix.{frame:04d}.png"), edit(plate(FRAMES[frame])))
    result = succeeds(*train_args("clip.mp4", "keys", "run", steps=2))
    assert "trained 2 steps" in result.stdout
    assert json.loads(Path("run/run.json").read_text())["keyframe_frames"] == [0, 3, 5]

    succeeds("render", "--run", "run", "--source", "clip.mp4", "--out", "render", "--device", "cpu")
    assert rendered_names(Path("render")) == [f"clip.{f:04d}.png" for f in range(len(FRAMES))]


def test_render_a_video_source(shot: Path):
    shots.write_video(Path("clip.mp4"))
    succeeds("render", "--run", "run", "--source", "clip.mp4", "--out", "render", "--device", "cpu")
    assert rendered_names(Path("render")) == [f"clip.{f:04d}.png" for f in range(len(FRAMES))]
    codes = shots.read_png(Path("render/clip.0002.png"))
    assert codes.dtype == np.uint8 and codes.shape == (HEIGHT, WIDTH, 3)
    assert np.abs(codes / 255 - plate(FRAMES[2])).mean() < 0.05


def test_16_bit_frames_render_as_16_bit(shot: Path):
    shots.write_shot(Path("deep"), bits=16)
    succeeds("render", "--run", "run", "--source", "deep", "--out", "render", "--device", "cpu")
    codes = shots.read_png(Path("render/plate.1003.png"))
    assert codes.dtype == np.uint16 and codes.shape == (HEIGHT, WIDTH, 3)
    # Real 16-bit precision, not 8-bit codes widened: most codes fall between two 8-bit steps.
    assert np.mean(codes % 257 != 0) > 0.9
    assert np.abs(codes / 65535 - plate(1003)).mean() < 0.03


def test_half_exr_trains_and_renders_as_half_exr_keeping_highlights(tmp_path: Path):
    def linear(frame: int) -> np.ndarray:
        return plate(frame) * 4.0  # highlights up to about 4: scene-linear data above 1.0

    for frame in FRAMES:
        shots.write_exr(Path(f"src/plate.{frame}.exr"), linear(frame))
    for frame in KEYFRAMES:
        shots.write_exr(Path(f"keys/plate.{frame}.exr"), linear(frame) * 0.8)
    succeeds(*train_args("src", "keys", "run", steps=1))
    succeeds("render", "--run", "run", "--source", "src", "--out", "render", "--device", "cpu")

    assert rendered_names(Path("render")) == [f"plate.{f}.exr" for f in FRAMES]
    out = shots.read_exr(Path("render/plate.1002.exr"))
    source = shots.read_exr(Path("src/plate.1002.exr")).astype(np.float32)
    assert out.dtype == np.float16 and out.shape == (HEIGHT, WIDTH, 3)
    bright = source > 1.5
    assert bright.sum() > 100
    # One step keeps the network near its identity start, and nothing clips the highlights at 1.0.
    assert out[bright].min() > 1.2
    np.testing.assert_allclose(out.astype(np.float32), source, rtol=0.2, atol=0.02)


def one_spaced(text: str) -> str:
    """Terminal output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_render_warns_of_holes_in_the_source_and_sums_them_up(shot: Path):
    Path("src/plate.1003.png").unlink()
    result = succeeds("render", "--run", "run", "--source", "src/plate.####.png", "--out", "render", "--device", "cpu")
    assert "'src/plate.####.png': frame 1003 missing" in one_spaced(result.stderr)
    assert "rendered 5 frames into render; frame 1003 missing from the source" in one_spaced(result.stdout)
    assert rendered_names(Path("render")) == [f"plate.{f}.png" for f in FRAMES if f != 1003]


def test_render_first_last_and_a_review_movie(shot: Path):
    result = succeeds("render", "--run", "run", "--source", "src/plate.$F4.png", "--out", "render",
                      "--first", "1002", "--last", "1004", "--review", "review/sh010.mp4", "--device", "cpu")
    assert "rendered 3 frames into render; review movie review/sh010.mp4" in one_spaced(result.stdout)
    assert rendered_names(Path("render")) == ["plate.1002.png", "plate.1003.png", "plate.1004.png"]
    with av.open("review/sh010.mp4") as container:
        assert sum(1 for _ in container.decode(video=0)) == 3


def test_render_first_after_last_is_one_line(shot: Path):
    line = shots.fails("render", "--run", "run", "--source", "src", "--out", "render", "--first", "1005",
                       "--last", "1002", "--device", "cpu")
    assert line == "shotfit: the last frame 1002 is before the first frame 1005 (--last)"
    assert not Path("render").exists()


def test_train_first_last_leave_out_keyframes_outside_and_warn_of_holes(tmp_path: Path):
    shots.write_shot(Path("src"), [f for f in FRAMES if f != 1002])
    shots.write_shot(Path("keys"), KEYFRAMES, make=lambda f: edit(plate(f)))
    result = succeeds(*train_args("src", "keys", "run", "--first", "1001", "--last", "1004", steps=1))
    stderr = one_spaced(result.stderr)
    assert "'src/' (frames 1001-1004): frame 1002 missing" in stderr
    assert "keyframes 1006 in 'keys' are outside 'src/' (frames 1001-1004) and are left out" in stderr
    assert json.loads(Path("run/run.json").read_text())["keyframe_frames"] == [1001, 1004]


# --- eval --------------------------------------------------------------------------------------

def test_eval_prints_a_table_and_writes_every_number(shot: Path):
    succeeds("render", "--run", "run", "--source", "src", "--out", "render", "--device", "cpu")
    result = succeeds("eval", "--pred", "render", "--truth", "truth", "--source", "src", "--json", "eval.json")
    report = json.loads(Path("eval.json").read_text())

    frames = report["frames"]
    assert [row["frame"] for row in frames] == list(FRAMES)
    for row in frames:
        pred = shots.read_png(Path(f"render/plate.{row['frame']}.png")) / 255.0
        truth = shots.read_png(Path(f"truth/plate.{row['frame']}.png")) / 255.0
        assert row["psnr"] == pytest.approx(10 * math.log10(1 / np.mean((pred - truth) ** 2)), abs=1e-4)
        assert -1 <= row["ssim"] < 1 and row["lpips"] > 0
    summary = report["summary"]
    assert summary["frames"] == 6 and summary["flow_from"] == "source"
    assert summary["psnr"] == pytest.approx(np.mean([row["psnr"] for row in frames]))

    pairs = report["pairs"]
    assert [(p["frame"], p["next_frame"]) for p in pairs] == list(zip(FRAMES, FRAMES[1:]))
    for pair in pairs:
        assert 0 <= pair["prediction"] < 1 and 0 <= pair["truth"] < 1 and 0 < pair["coverage"] <= 1
    assert summary["warping_error"] == pytest.approx(np.mean([p["prediction"] for p in pairs]))

    # The table shows the same means, rounded.
    assert "6 frames" in result.stdout
    for value in (f"{summary['psnr']:.2f}", f"{summary['ssim']:.4f}", f"{summary['lpips']:.4f}"):
        assert value in result.stdout


def test_eval_per_frame_rows(shot: Path):
    # The truth scored against itself: every frame identical, so PSNR is infinite and SSIM is 1.
    result = succeeds("eval", "--pred", "truth", "--truth", "truth", "--per-frame", "--json", "eval.json")
    assert all(str(frame) in result.stdout for frame in FRAMES)
    assert "inf" in result.stdout
    report = json.loads(Path("eval.json").read_text())
    assert {row["psnr"] for row in report["frames"]} == {"inf"}
    assert report["summary"]["ssim"] == pytest.approx(1.0) and report["summary"]["flow_from"] == "truth"
