"""Every input a user can get wrong ends in one line on stderr naming the file or option, exit 1, and
nothing already written lost.

``shots.fails`` checks the line, the exit status and that no traceback escaped; each test then checks
that the files which existed before the command are unchanged and that it wrote nothing new.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import shots
import torch
from shots import FRAMES, KEYFRAMES, assert_unchanged, edit, fails, plate, snapshot, succeeds, train_args

from shotfit.cli.app import error_text
from shotfit.errors import ShotfitError


@pytest.fixture(autouse=True)
def _process_state():
    yield from shots.isolated_process_state()


@pytest.fixture
def shot(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """src/, keys/, truth/ and a trained run/ in the test's folder (the current directory)."""
    return shots.copy_trained(tmp_path_factory, tmp_path)


@pytest.fixture
def plates(tmp_path: Path) -> Path:
    """src/ and keys/ only, for training from scratch."""
    shots.write_shot(tmp_path / "src")
    shots.write_shot(tmp_path / "keys", KEYFRAMES, make=lambda f: edit(plate(f)))
    return tmp_path


def render_args(run: str = "run", source: str = "src", out: str = "render", *extra: str) -> list[str]:
    return ["render", "--run", run, "--source", source, "--out", out, "--device", "cpu", *extra]


def assert_names(line: str, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"


# --- the shot ----------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["train", "render"])
def test_missing_source_folder(shot: Path, command: str):
    before = snapshot(shot)
    args = train_args("nothere", "keys", "new_run") if command == "train" else render_args(source="nothere")
    assert fails(*args) == "shotfit: 'nothere' does not exist"
    assert_unchanged(before, shot)


def test_missing_keyframe_folder(plates: Path):
    before = snapshot(plates)
    assert fails(*train_args("src", "kf", "run")) == "shotfit: 'kf' does not exist"
    assert_unchanged(before, plates)


def test_empty_source_folder(plates: Path):
    Path("empty").mkdir()
    Path("empty/readme.txt").write_text("frames to come")
    before = snapshot(plates)
    line = fails(*train_args("empty", "keys", "run"))
    assert_names(line, "'empty/'", "holds no frames", ".exr")
    assert_unchanged(before, plates)


def test_pattern_that_matches_nothing(plates: Path):
    before = snapshot(plates)
    assert fails(*train_args("src/plate.#####.png", "keys", "run")) == \
        "shotfit: 'src/plate.#####.png' matches no frames"
    assert_unchanged(before, plates)


def test_unreadable_source_frame_stops_training(plates: Path):
    Path("src/plate.1004.png").write_bytes(np.random.default_rng(0).bytes(3000))
    before = snapshot(plates)
    line = fails(*train_args("src", "keys", "run"))
    assert line == "shotfit: 'src/plate.1004.png' is not a readable PNG image (corrupt or truncated)"
    assert_unchanged(before, plates)


def test_unreadable_frame_stops_the_render_and_keeps_the_frames_before(shot: Path):
    Path("src/plate.1003.png").write_bytes(np.random.default_rng(0).bytes(3000))
    before = snapshot(shot)
    line = fails(*render_args())
    assert line == "shotfit: 'src/plate.1003.png' is not a readable PNG image (corrupt or truncated)"
    # The frames before it are whole and kept, so rendering again after a fix resumes there.
    assert_unchanged(before, shot, allowed_new=["render/plate.1001.png", "render/plate.1002.png"])
    assert sorted(p.name for p in Path("render").iterdir()) == ["plate.1001.png", "plate.1002.png"]


def test_empty_frame_stops_the_render_naming_it(shot: Path):
    Path("src/plate.1003.png").write_bytes(b"")  # a copy that died before its first byte
    before = snapshot(shot)
    assert fails(*render_args()) == "shotfit: 'src/plate.1003.png' is empty (0 bytes)"
    assert_unchanged(before, shot, allowed_new=["render/plate.1001.png", "render/plate.1002.png"])


@pytest.mark.parametrize(("ext", "kind"), [(".png", "PNG"), (".jpg", "JPEG")])
def test_truncated_keyframe(plates: Path, ext: str, kind: str):
    for frame in KEYFRAMES:
        Path(f"keys/plate.{frame}.png").unlink()
        pixels = np.rint(edit(plate(frame))[..., ::-1] * 255).astype(np.uint8)
        assert cv2.imwrite(f"keys/plate.{frame}{ext}", pixels)
    whole = Path(f"keys/plate.1004{ext}").read_bytes()
    Path(f"keys/plate.1004{ext}").write_bytes(whole[: len(whole) * 2 // 3])
    before = snapshot(plates)
    line = fails(*train_args("src", "keys", "run"))
    assert_names(line, f"'keys/plate.1004{ext}'", f"not a readable {kind} image", "truncated")
    assert_unchanged(before, plates)


def test_keyframe_without_a_source_frame(plates: Path):
    shots.write_png(Path("keys/plate.1010.png"), edit(plate(1006)))
    before = snapshot(plates)
    line = fails(*train_args("src", "keys", "run"))
    assert line == "shotfit: keyframe 'keys/plate.1010.png' has no source frame 1010 in 'src'"
    assert_unchanged(before, plates)


def test_keyframe_of_another_size(plates: Path):
    for frame in KEYFRAMES:  # exported at another resolution
        shots.write_png(Path(f"keys/plate.{frame}.png"), edit(plate(frame))[:32, :40])
    before = snapshot(plates)
    line = fails(*train_args("src", "keys", "run"))
    assert line == ("shotfit: keyframe 'keys/plate.1001.png' is 40x32 but source frame "
                    "'src/plate.1001.png' is 48x40")
    assert_unchanged(before, plates)


def test_keyframe_with_another_channel_count(plates: Path):
    for frame in KEYFRAMES:  # exported as grey
        shots.write_png(Path(f"keys/plate.{frame}.png"), plate(frame, channels=1))
    before = snapshot(plates)
    line = fails(*train_args("src", "keys", "run"))
    assert line == ("shotfit: keyframe 'keys/plate.1001.png' has 1 channels but source frame "
                    "'src/plate.1001.png' has 3")
    assert_unchanged(before, plates)


@pytest.mark.parametrize(("size", "channels", "layout"), [((32, 40), 3, "40x32 RGB"), ((40, 48), 1, "48x40 grey")])
def test_one_keyframe_unlike_the_others(plates: Path, size: tuple[int, int], channels: int, layout: str):
    shots.write_png(Path("keys/plate.1004.png"), plate(1004, channels)[: size[0], : size[1]])
    before = snapshot(plates)
    line = fails(*train_args("src", "keys", "run"))
    assert line == (f"shotfit: 'keys/plate.1004.png' is {layout} integer but the shot's first frame "
                    "'keys/plate.1001.png' is 48x40 RGB integer")
    assert_unchanged(before, plates)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_an_exr(tmp_path: Path, bad: float):
    for frame in FRAMES:
        pixels = plate(frame) * 2.0
        if frame == 1004:
            pixels[5, 7, 1] = bad
        shots.write_exr(Path(f"src/plate.{frame}.exr"), pixels)
    for frame in KEYFRAMES:
        shots.write_exr(Path(f"keys/plate.{frame}.exr"), plate(frame))
    before = snapshot(tmp_path)
    line = fails(*train_args("src", "keys", "run"))
    assert line == "shotfit: 'src/plate.1004.exr' has NaN/Inf values in channel G"
    assert_unchanged(before, tmp_path)


# --- the config --------------------------------------------------------------------------------

@pytest.mark.parametrize(("override", "fragments"), [
    ("train.learning_rate=1e-3", ["'train.learning_rate'", "unknown config key", "--set", "lr"]),
    ("training.lr=1e-3", ["'training'", "unknown config section", "train"]),
    ("model.widht=8", ["'widht'", "unknown option", "unet_attn", "width"]),
    ("train.lr=5", ["train.lr = 5", "out of range", "<= 1.0", "--set"]),
    ("augment.patch_size=8", ["augment.patch_size = 8", "out of range", ">= 16", "--set"]),
    ("model.width=0", ["width", "integer from 1 to 1024", "0"]),
    ("model.width=100000", ["width", "integer from 1 to 1024", "100000"]),
    ("data.batch_size=1e12", ["data.batch_size = 1000000000000", "out of range", "<= 1024", "--set"]),
    ("train.seed=1e30", ["train.seed = 1000000000000000019884624838656", "out of range",
                         "<= 18446744073709551615", "--set"]),
    ("train.weight_decay=.inf", ["train.weight_decay = inf", "must be a finite number", "--set"]),
    ("train.grad_clip=.nan", ["train.grad_clip = nan", "must be a finite number", "--set"]),
    ("train.steps", ["'train.steps'", "section.key=value"]),
])
def test_bad_override(plates: Path, override: str, fragments: list[str]):
    before = snapshot(plates)
    assert_names(fails(*train_args("src", "keys", "run", "--set", override)), *fragments)
    assert_unchanged(before, plates)


@pytest.mark.parametrize(("overrides", "line"), [
    (["model.arch=nafnet", "model.width=100000"], "architecture 'nafnet': width must be an integer from 1 to 1024, "
     "got 100000"),
    (["model.arch=convnext_unet", "model.width=100000"], "architecture 'convnext_unet': width must be an integer "
     "from 1 to 1024, got 100000"),
    (["model.arch=mambair", "model.embed_dim=100000"], "architecture 'mambair': embed_dim must be an integer from 1 "
     "to 1024, got 100000"),
    (["model.arch=swinir", "model.embed_dim=100000"], "architecture 'swinir': embed_dim must be an integer from 1 "
     "to 1024, got 100000"),
])
def test_a_network_that_would_exhaust_the_machine(plates: Path, overrides: list[str], line: str):
    before = snapshot(plates)
    sets = [arg for override in overrides for arg in ("--set", override)]  # not the tiny U-Net's options
    assert fails("train", "--source", "src", "--target", "keys", "--out", "run", "--steps", "1", "--device", "cpu",
                 "--no-track", *sets) == f"shotfit: {line}"
    assert_unchanged(before, plates)


@pytest.mark.parametrize(("yaml_text", "fragments"), [
    ("train:\n  learning_rate: 0.001\n", ["'train.learning_rate'", "unknown config key", "'shot.yaml'"]),
    ("train:\n  lr: -1\n", ["train.lr = -1", "out of range", "'shot.yaml'"]),
    ("render:\n  blend: cubic\n", ["render.blend = 'cubic'", "hann", "'shot.yaml'"]),
    ("train: [1, 2\n", ["'shot.yaml'", "not valid YAML", "line"]),
])
def test_bad_config_file(plates: Path, yaml_text: str, fragments: list[str]):
    Path("shot.yaml").write_text(yaml_text)
    before = snapshot(plates)
    assert_names(fails(*train_args("src", "keys", "run", "--config", "shot.yaml")), *fragments)
    assert_unchanged(before, plates)


def test_config_file_of_random_bytes(plates: Path):
    Path("shot.yaml").write_bytes(np.random.default_rng(0).bytes(300))
    before = snapshot(plates)
    assert fails(*train_args("src", "keys", "run", "--config", "shot.yaml")) == \
        "shotfit: config 'shot.yaml' is not a YAML text file (not UTF-8 at byte 1)"
    assert_unchanged(before, plates)


def test_missing_config_file(plates: Path):
    before = snapshot(plates)
    assert fails(*train_args("src", "keys", "run", "--config", "shot.yml")) == \
        "shotfit: config 'shot.yml' does not exist"
    assert_unchanged(before, plates)


def test_bad_frame_range(shot: Path):
    before = snapshot(shot)
    assert_names(fails(*render_args("run", "src", "render", "--frames", "1006-1001")),
                 "'1006-1001'", "ends before it starts")
    assert_unchanged(before, shot)


def test_unknown_render_precision(shot: Path):
    before = snapshot(shot)
    assert fails(*render_args("run", "src", "render", "--precision", "fp8")) == \
        "shotfit: render.precision = 'fp8' is not one of auto, fp32, tf32, bf16, fp16"
    assert_unchanged(before, shot)


def test_frame_range_outside_the_shot(shot: Path):
    before = snapshot(shot)
    assert fails(*render_args("run", "src", "render", "--frames", "101-106")) == \
        "shotfit: frames '101-106' select no frame of 'src' (it holds frames 1001-1006)"
    assert_unchanged(before, shot)


@pytest.mark.parametrize(("frames", "rendered"), [
    ("1-2000000000", ["plate.1001.png", "plate.1002.png", "plate.1003.png", "plate.1004.png", "plate.1005.png",
                      "plate.1006.png"]),
    ("1-2000000000x2", ["plate.1001.png", "plate.1003.png", "plate.1005.png"]),
])
def test_a_frame_range_far_past_the_shot_renders_the_shots_frames_at_once(shot: Path, frames: str,
                                                                           rendered: list[str]):
    # the range was once listed frame by frame: a MemoryError after half a minute
    started = time.monotonic()
    succeeds(*render_args("run", "src", "render", "--frames", frames))
    assert sorted(p.name for p in Path("render").iterdir()) == rendered
    assert time.monotonic() - started < 60


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_this_machine_lacks(plates: Path):
    before = snapshot(plates)
    assert fails(*train_args("src", "keys", "run", "--device", "cuda")) == \
        "shotfit: train.device = 'cuda' but this machine has no CUDA device"
    assert_unchanged(before, plates)


def test_render_of_frames_unlike_the_training_frames(shot: Path):
    for frame in FRAMES:
        shots.write_exr(Path(f"linear/plate.{frame}.exr"), plate(frame))
        shots.write_png(Path(f"grey/plate.{frame}.png"), plate(frame, channels=1))
    before = snapshot(shot)
    assert fails(*render_args("run", "linear")) == \
        "shotfit: source 'linear' holds half frames but run 'run' was trained on uint8 frames"
    assert fails(*render_args("run", "grey")) == \
        "shotfit: source 'grey' has 1 channels but run 'run' was trained on 3"
    assert_unchanged(before, shot)


def test_eval_of_frames_without_a_ground_truth(shot: Path):
    before = snapshot(shot)
    line = fails("eval", "--pred", "src", "--truth", "keys", "--json", "eval.json")
    assert line == ("shotfit: prediction frame 1002 ('src/plate.1002.png') has no ground truth frame "
                    "(the ground truth 'keys/' has 3 frames, 1001-1006)")
    assert_unchanged(before, shot)


# --- frames and patches smaller than LPIPS needs (21 pixels a side) -------------------------------

def write_small_shot(size: int) -> None:
    shots.write_shot(Path("src"), make=lambda f: cv2.resize(plate(f), (size, size), interpolation=cv2.INTER_AREA))
    shots.write_shot(Path("keys"), KEYFRAMES,
                     make=lambda f: edit(cv2.resize(plate(f), (size, size), interpolation=cv2.INTER_AREA)))


def test_keyframes_smaller_than_the_lpips_loss_needs(tmp_path: Path):
    write_small_shot(16)
    before = snapshot(tmp_path)
    assert fails(*train_args("src", "keys", "run", "--set", "loss.lpips=0.1")) == (
        "shotfit: keyframe 'keys/plate.1001.png' is 16x16, smaller than the 21x21 pixels the LPIPS loss needs: "
        "set loss.lpips to 0 to train on frames this small")
    assert_unchanged(before, tmp_path)


def test_frames_too_small_for_lpips_train_validate_and_evaluate_without_it(tmp_path: Path):
    write_small_shot(16)
    trained = succeeds(*train_args("src", "keys", "run", "--set", "data.validation_frames=[1004]",
                                   "--set", "train.validate_every=1"))
    note = "the frames are 16x16, smaller than the 21x21 pixels LPIPS needs"
    assert trained.stderr.count("val/lpips is left out") == 1 and note in " ".join(trained.stderr.split())
    validations = json.loads(Path("run/metrics.json").read_text())["validations"]
    assert [sorted(v) for v in validations] == [["step", "val/psnr", "val/ssim"]] * 3
    scored = succeeds("eval", "--pred", "src", "--truth", "src", "--json", "eval.json")
    assert f"LPIPS is not scored: {note}" in " ".join(scored.stderr.split())
    report = json.loads(Path("eval.json").read_text())
    assert report["summary"]["lpips"] is None and report["summary"]["ssim"] == 1.0
    assert report["notes"] == [f"LPIPS is not scored: {note}"]


@pytest.mark.parametrize("patch", [16, 20])
def test_patches_smaller_than_the_lpips_loss_needs(plates: Path, patch: int):
    before = snapshot(plates)
    assert fails(*train_args("src", "keys", "run", "--set", "loss.lpips=0.1", "--set",
                             f"augment.patch_size={patch}")) == (
        f"shotfit: augment.patch_size = {patch} is smaller than the 21x21 pixels the LPIPS loss needs: raise it to "
        "at least 21, or set loss.lpips to 0")
    assert_unchanged(before, plates)


def test_the_smallest_patch_lpips_takes_trains(plates: Path):
    succeeds(*train_args("src", "keys", "run", "--set", "loss.lpips=0.1", "--set", "augment.patch_size=21",
                         steps=1))
    assert json.loads(Path("run/metrics.json").read_text())["final"]["lpips"] > 0


# --- run folders -------------------------------------------------------------------------------

def test_resume_with_another_architecture(shot: Path):
    before = snapshot(shot)
    line = fails("train", "--no-track", "--source", "src", "--target", "keys", "--out", "run", "--resume",
                 "--set", "model.width=8", "--steps", "5", "--device", "cpu")
    assert_names(line, "run folder 'run'", "was made for a 'unet_attn' network", "width=4", "width=8")
    assert_unchanged(before, shot)


@pytest.mark.parametrize("damage", ["arch", "arch_args"])
def test_model_file_made_for_another_network(shot: Path, damage: str):
    state = torch.load("run/model.pt", weights_only=True)
    if damage == "arch":
        state["arch"] = "swin_ir"
    else:
        state["arch_args"]["width"] = 8  # the weights are still those of a width-4 network
    torch.save(state, "run/model.pt")
    before = snapshot(shot)
    line = fails(*render_args())
    if damage == "arch":
        assert line == "shotfit: 'run/model.pt' holds a 'swin_ir' network but 'run/config.yaml' names 'unet_attn'"
    else:
        assert_names(line, "'run/model.pt'", "does not fit a 'unet_attn' network")
    assert_unchanged(before, shot)


def test_render_of_a_run_without_weights(shot: Path):
    Path("run/model.pt").unlink()
    for checkpoint in Path("run/checkpoints").iterdir():
        checkpoint.unlink()
    before = snapshot(shot)
    assert_names(fails(*render_args()), "run folder 'run'", "no model.pt and no checkpoints")
    assert_unchanged(before, shot)


def test_render_of_a_damaged_model_file(shot: Path):
    whole = Path("run/model.pt").read_bytes()
    Path("run/model.pt").write_bytes(whole[: len(whole) // 2])
    before = snapshot(shot)
    assert_names(fails(*render_args()), "'run/model.pt' is not a shotfit model file")
    assert_unchanged(before, shot)


def test_resume_from_a_damaged_checkpoint(shot: Path):
    checkpoint = Path("run/checkpoints/step_000003.pt")
    checkpoint.write_bytes(b"PK\x03\x04 not the rest of a torch checkpoint")
    before = snapshot(shot)
    line = fails("train", "--no-track", "--source", "src", "--target", "keys", "--out", "run", "--resume", "--steps", "5")
    assert_names(line, "'run/checkpoints/step_000003.pt' is not a shotfit checkpoint")
    assert_unchanged(before, shot)


@pytest.mark.parametrize(("run", "message"), [
    ("src", "shotfit: 'src' is not a shotfit run folder (no config.yaml)"),
    ("nothere", "shotfit: run folder 'nothere' does not exist"),
])
def test_render_with_a_folder_that_is_not_a_run(shot: Path, run: str, message: str):
    before = snapshot(shot)
    assert fails(*render_args(run=run)) == message
    assert_unchanged(before, shot)


def test_resume_where_there_is_no_run(plates: Path):
    before = snapshot(plates)
    line = fails("train", "--no-track", "--source", "src", "--target", "keys", "--out", "elsewhere", "--resume")
    assert line == "shotfit: run folder 'elsewhere' does not exist"
    assert_unchanged(before, plates)


def test_train_into_an_existing_run_without_resume(shot: Path):
    before = snapshot(shot)
    line = fails(*train_args("src", "keys", "run"))
    assert_names(line, "run folder 'run' already holds a run", "--resume")
    assert_unchanged(before, shot)


def test_train_into_a_folder_of_other_files(plates: Path):
    Path("work").mkdir()
    Path("work/notes.txt").write_text("the artist's notes")
    before = snapshot(plates)
    assert_names(fails(*train_args("src", "keys", "work")), "output folder 'work'", "not empty", "not a shotfit run",
                 "(--out)")
    assert_unchanged(before, plates)


# --- where outputs go --------------------------------------------------------------------------

@pytest.mark.parametrize(("source", "out"), [
    ("src", "src"),
    ("src", "src/render"),
    ("src/plate.####.png", "src/"),
    ("src/plate.%04d.png", "./src/v2/render"),
])
def test_render_never_writes_among_the_plates(shot: Path, source: str, out: str):
    before = snapshot(shot)
    line = fails(*render_args("run", source, out))
    assert_names(line, f"output folder '{Path(out)}'", "inside the source folder 'src/'", "never writes among the plates",
                 "(--out)")
    assert_unchanged(before, shot)
    assert not Path("src/render").exists() and not Path("src/v2").exists()


@pytest.mark.parametrize(("out", "what"), [("src/run", "source"), ("keys/run", "keyframes")])
def test_train_never_writes_among_the_plates(plates: Path, out: str, what: str):
    before = snapshot(plates)
    line = fails(*train_args("src", "keys", out))
    assert_names(line, f"output folder '{out}'", f"inside the {what} folder", "(--out)")
    assert_unchanged(before, plates)
    assert not Path(out).exists()


def test_render_out_that_is_a_file(shot: Path):
    Path("render").write_text("an artist's notes, where the render was to go")
    before = snapshot(shot)
    assert fails(*render_args()) == "shotfit: output folder 'render' is a file, not a folder (--out)"
    assert_unchanged(before, shot)


@pytest.fixture
def unwritable(tmp_path: Path) -> Path:
    """A folder path that cannot be created: under /sys for root (chmod does not stop root), else
    inside a read-only folder."""
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        yield locked / "out"
        locked.chmod(0o755)
        return
    target = Path("/sys/shotfit-test-out")
    if not Path("/sys").is_dir():
        pytest.skip("no /sys here to stand for a folder that root cannot write")
    try:
        target.mkdir()
    except OSError:
        yield target
        return
    target.rmdir()
    pytest.skip("/sys is writable here, so it cannot stand for an unwritable folder")


@pytest.mark.parametrize("command", ["train", "render"])
def test_unwritable_output_folder(shot: Path, unwritable: Path, command: str):
    before = snapshot(shot)
    if command == "train":
        line = fails(*train_args("src", "keys", unwritable))
    else:
        line = fails(*render_args("run", "src", str(unwritable)))
    assert_names(line, f"'{unwritable}/'", "cannot create folder")
    assert_unchanged(before, shot)


# --- a real process: what a shell sees -----------------------------------------------------------

def shotfit_process(*args: str | Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("shotfit")
    command = [str(script)] if script.is_file() else [sys.executable, "-c", "from shotfit.cli import main; main()"]
    env = {**os.environ, "COLUMNS": "60"}  # a narrow terminal must not wrap the message
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize(("ext", "message"), [
    (".png", "'keys/plate.1004.png' is not a readable PNG image (corrupt or truncated)"),
    (".exr", "'keys/plate.1004.exr' is not a readable EXR (corrupt or truncated: "),
], ids=["png", "exr"])
def test_a_real_process_prints_one_line_and_exits_1(tmp_path: Path, ext: str, message: str):
    # The C decoders print their own complaints about such files (libpng on stderr, OpenEXR on stdout).
    for frame in FRAMES:
        if ext == ".png":
            shots.write_png(Path(f"src/plate.{frame}.png"), plate(frame))
        else:
            shots.write_exr(Path(f"src/plate.{frame}.exr"), plate(frame))
    for frame in KEYFRAMES:
        if ext == ".png":
            shots.write_png(Path(f"keys/plate.{frame}.png"), edit(plate(frame)))
        else:
            shots.write_exr(Path(f"keys/plate.{frame}.exr"), edit(plate(frame)))
    whole = Path(f"keys/plate.1004{ext}").read_bytes()
    Path(f"keys/plate.1004{ext}").write_bytes(whole[: len(whole) * 49 // 50])
    before = snapshot(tmp_path)

    done = shotfit_process(*train_args("src", "keys", "runs/sh010/v001"))
    assert done.returncode == 1
    assert done.stderr.startswith(f"shotfit: {message}") and done.stderr.count("\n") == 1, done.stderr
    assert done.stdout == ""
    assert_unchanged(before, tmp_path)
    assert not Path("runs").exists()


@pytest.mark.parametrize(("args", "message"), [
    (("train", "--source", "src", "--target", "keys", "--out", "run", "--steps", "0"),
     "shotfit: Invalid value for '--steps'"),
    (("render", "--run", "run"), "shotfit: Missing option '--source'"),
    (("frobnicate",), "shotfit: No such command 'frobnicate'"),
], ids=["out-of-range", "missing-option", "unknown-command"])
def test_usage_mistakes_are_one_line_with_status_2(tmp_path: Path, args: tuple[str, ...], message: str):
    done = shotfit_process(*args)
    assert done.returncode == 2
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr
    assert "--help" in done.stderr and done.stdout == ""


@pytest.mark.parametrize("parameter, shown", [
    (None, "shotfit: x is wrong"), ("resume", "shotfit: x is wrong (--resume)"),
    ("tile_overlap", "shotfit: x is wrong (--tile-overlap)"), ("overrides", "shotfit: x is wrong (--set)"),
    ("keyframes", "shotfit: x is wrong (--target)"),
])
def test_a_library_error_about_a_parameter_names_its_flag(parameter, shown):
    assert "shotfit: " + error_text(ShotfitError("x is wrong", parameter=parameter)) == shown
    assert error_text(ShotfitError("--set x is wrong", parameter="overrides")) == "--set x is wrong"  # said once
