"""Training through ``api.train``: the loss falls, the run folder fills as documented, resumes are exact.

Every run here is a 4-wide, 2-level U-Net learning a colour grade from 2 keyframes (1 and 4) of a
6-frame, 48x40 shot, on one CPU thread.
"""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from shots import HEIGHT, TINY, WIDTH, same_weights, train_tiny, weights
from shots import write_graded_shot as write_shot
from torch import nn

from shotfit import api
from shotfit.archs import ARCHS
from shotfit.engine import trainer as trainer_module
from shotfit.engine.preview import GAP, LABEL_HEIGHT
from shotfit.engine.stopping import stop_on_signals
from shotfit.errors import ConfigError, RunError, ShotfitError
from shotfit.io import PixelFormat, read_image

# Checkpoints and previews only at the end; runs compared bit for bit with it may set other cadences.
REFERENCE = ("train.checkpoint_every=1000", "train.preview_every=1000")
REFERENCE_STEPS = 8


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` with its bytes and modification time."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.fixture(scope="module")
def shot(module_dir: Path) -> tuple[Path, Path]:
    return write_shot(module_dir)


@pytest.fixture(scope="module")
def reference_run(module_dir, shot) -> Path:
    """8 steps in one go, seed 0, no checkpoints or previews before the end."""
    out = module_dir / "reference"
    train_tiny(*shot, out, *REFERENCE, steps=REFERENCE_STEPS)
    return out


@pytest.fixture(scope="module")
def watched_run(module_dir, shot):
    """24 steps with a checkpoint every 5 (keeping 2) and a preview every 10, watched step by step."""
    out = module_dir / "watched"
    seen: list[dict] = []

    def on_step(report):
        seen.append({"step": report.step, "total": report.losses["total"],
                     "checkpoints": names(out / "checkpoints") if (out / "checkpoints").is_dir() else []})

    summary = train_tiny(*shot, out, "train.checkpoint_every=5", "train.keep_checkpoints=2",
                         "train.preview_every=10", "loss.l1=1", "loss.laplacian=0.5", "loss.ssim=0.25",
                         steps=24, on_step=on_step)
    return out, summary, seen


# --- learning -----------------------------------------------------------------------------------

def test_the_loss_goes_down_on_a_learnable_edit(watched_run):
    out, summary, seen = watched_run
    totals = [s["total"] for s in seen]
    assert len(totals) == 24
    assert np.mean(totals[-5:]) < 0.85 * np.mean(totals[:5])
    previews = json.loads((out / "metrics.json").read_text())["previews"]
    assert previews[-1]["train/keyframe_psnr"] > previews[0]["train/keyframe_psnr"] + 0.5  # dB on the keyframes


def test_the_final_network_moves_keyframes_towards_the_edit(watched_run):
    out, _, _ = watched_run
    sheet = cv2.cvtColor(cv2.imread(str(out / "previews" / "final.png")), cv2.COLOR_BGR2RGB).astype(float)
    top = 2 * LABEL_HEIGHT
    source, prediction, target = (sheet[top:top + HEIGHT, GAP + c * (WIDTH + GAP):GAP + c * (WIDTH + GAP) + WIDTH]
                                  for c in range(3))
    assert np.abs(prediction - target).mean() < 0.8 * np.abs(source - target).mean()


# --- checkpoints --------------------------------------------------------------------------------

def test_checkpoints_every_n_steps_and_only_the_last_k_kept(watched_run):
    out, _, seen = watched_run
    # what the folder held when each step began (the checkpoint of step s is written after its report)
    held = {s["step"]: s["checkpoints"] for s in seen}
    assert held[5] == []
    assert held[6] == ["step_000005.pt"]
    assert held[11] == ["step_000005.pt", "step_000010.pt"]
    assert held[16] == ["step_000010.pt", "step_000015.pt"]
    assert held[21] == ["step_000015.pt", "step_000020.pt"]
    # the end of the run always leaves a checkpoint of its last step
    assert names(out / "checkpoints") == ["step_000020.pt", "step_000024.pt"]
    state = torch.load(out / "checkpoints" / "step_000024.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 24 and state["optimizer"]["state"]  # enough to resume, optimiser included
    assert same_weights(state["network"], weights(out / "model.pt"))


def test_the_run_folder_holds_the_documented_files(watched_run):
    out, summary, _ = watched_run
    assert names(out) == ["checkpoints", "config.yaml", "metrics.json", "model.pt", "previews", "run.json"]
    info = json.loads((out / "run.json").read_text())
    assert info["keyframe_frames"] == [1, 4]
    assert info["frame_size"] == [HEIGHT, WIDTH] and info["channels"] == 3
    srgb = "sRGB Encoded Rec.709 (sRGB)"  # 8-bit frames: sRGB, trained as they are
    assert info["colour"]["source"] == info["colour"]["working"] == srgb
    model = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    assert model["kind"] == "model" and model["step"] == 24 and "optimizer" not in model
    assert summary.result.steps_done == 24 and summary.result.stopped_by == "steps"


def test_model_options_reach_the_network_and_every_default_is_saved(reference_run):
    saved = yaml.safe_load((reference_run / "config.yaml").read_text())
    model = torch.load(reference_run / "model.pt", map_location="cpu", weights_only=True)
    args = {"in_channels": 3, "out_channels": 3, "width": 4, "depth": 2, "max_width": 256, "residual": True,
            "upsample": "bilinear", "downsample": "max"}
    assert saved["model"] == {"arch": "unet_attn", **args}
    assert model["arch"] == "unet_attn" and model["arch_args"] == args
    assert model["network"]["stem.0.0.weight"].shape[0] == 4  # width 4 really was built
    assert saved["train"]["steps"] == REFERENCE_STEPS and saved["loss"]["lpips"] == 0.0


def test_an_unknown_model_option_is_refused_before_anything_is_written(shot):
    with pytest.raises(ConfigError) as excinfo:
        train_tiny(*shot, Path("run"), "model.wdith=8", steps=2)
    message = str(excinfo.value)
    assert "'wdith'" in message and "'unet_attn'" in message and "width" in message and "\n" not in message
    assert not Path("run").exists()


# --- metrics ------------------------------------------------------------------------------------

def test_metrics_hold_every_loss_term_by_step_and_the_final_numbers(watched_run):
    out, summary, seen = watched_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps_done"] == 24 and metrics["horizon"] == 24 and metrics["stopped_by"] == "steps"
    assert metrics["elapsed_s"] > 0
    history = metrics["history"]
    assert [h["step"] for h in history] == [10, 20, 24]
    for entry in history:
        assert set(entry) == {"step", "lr", "steps_per_s", "l1", "laplacian", "ssim", "total"}  # no lpips: weight 0
        # the total is the weighted sum of the terms the user set
        assert entry["total"] == pytest.approx(entry["l1"] + 0.5 * entry["laplacian"] + 0.25 * entry["ssim"],
                                               rel=1e-5)
    # each entry is the mean over its window of steps
    assert history[0]["total"] == pytest.approx(np.mean([s["total"] for s in seen[:10]]), rel=1e-6)
    assert history[2]["total"] == pytest.approx(np.mean([s["total"] for s in seen[20:]]), rel=1e-6)
    assert metrics["final"] == {k: v for k, v in history[-1].items() if k != "step"}
    assert history[0]["lr"] > history[1]["lr"] > history[2]["lr"] > 0  # the cosine decays
    assert [p["step"] for p in metrics["previews"]] == [10, 20, 24]
    assert all(math.isfinite(p["train/keyframe_psnr"]) for p in metrics["previews"])


# --- previews -----------------------------------------------------------------------------------

def test_previews_appear_at_preview_steps_and_at_the_end(watched_run):
    out, _, _ = watched_run
    assert names(out / "previews") == ["final.png", "step_000010.png", "step_000020.png"]


def test_preview_layout_rows_are_keyframes_then_unfixed_frames(watched_run, shot):
    out, _, _ = watched_run
    sheet = cv2.cvtColor(cv2.imread(str(out / "previews" / "step_000010.png"), cv2.IMREAD_UNCHANGED),
                         cv2.COLOR_BGR2RGB)
    rows = 2 + 3  # keyframes 1 and 4, then data.preview_frames = 3 of the frames nobody fixed
    assert sheet.dtype == np.uint8
    assert sheet.shape == (LABEL_HEIGHT + rows * (HEIGHT + LABEL_HEIGHT + GAP) + GAP, 3 * WIDTH + 4 * GAP, 3)
    source_dir, keys_dir = shot

    def cell(row: int, col: int) -> np.ndarray:
        top = LABEL_HEIGHT + row * (HEIGHT + LABEL_HEIGHT + GAP) + LABEL_HEIGHT
        left = GAP + col * (WIDTH + GAP)
        return sheet[top:top + HEIGHT, left:left + WIDTH]

    def codes(path: Path) -> np.ndarray:
        return np.rint(read_image(path)[0] * 255).astype(np.uint8)

    for row, frame in enumerate([1, 4]):
        np.testing.assert_array_equal(cell(row, 0), codes(source_dir / f"plate.{frame:04d}.png"))
        np.testing.assert_array_equal(cell(row, 2), codes(keys_dir / f"plate.{frame:04d}.png"))
    for row, frame in enumerate([2, 5, 6], start=2):  # spread over the unfixed frames 2, 3, 5, 6
        np.testing.assert_array_equal(cell(row, 0), codes(source_dir / f"plate.{frame:04d}.png"))
        assert (cell(row, 2) == 48).all()  # nobody fixed it: no target


# --- BatchNorm ----------------------------------------------------------------------------------

def batchnorm_counts(path: Path) -> dict[str, int]:
    return {k: int(v) for k, v in weights(path).items() if k.endswith("num_batches_tracked")}


def test_batchnorm_statistics_move_only_with_training_steps(module_dir, shot, reference_run):
    out = module_dir / "previews_every_step"
    train_tiny(*shot, out, "train.checkpoint_every=1000", "train.preview_every=1", steps=REFERENCE_STEPS)
    counts = batchnorm_counts(out / "model.pt")
    assert counts and set(counts.values()) == {REFERENCE_STEPS}  # 8 previews of 5 frames added nothing
    # previews at every step leave the weights and running statistics exactly as without them
    assert same_weights(weights(out / "model.pt"), weights(reference_run / "model.pt"))
    running_vars = [v for k, v in weights(out / "model.pt").items() if k.endswith("running_var")]
    assert any(not torch.allclose(v, torch.ones_like(v)) for v in running_vars)  # the steps did update them


# --- determinism and the resume promise ---------------------------------------------------------

def test_two_fresh_runs_with_one_seed_give_identical_weights(module_dir, shot, reference_run):
    again, other_seed = module_dir / "again", module_dir / "seed1"
    train_tiny(*shot, again, *REFERENCE, steps=REFERENCE_STEPS)
    train_tiny(*shot, other_seed, *REFERENCE, "train.seed=1", steps=REFERENCE_STEPS)
    assert same_weights(weights(again / "model.pt"), weights(reference_run / "model.pt"))
    assert not same_weights(weights(other_seed / "model.pt"), weights(reference_run / "model.pt"))


def test_batches_drawn_ahead_in_a_thread_train_the_same_weights(module_dir, shot, reference_run, monkeypatch):
    # what CUDA does (the next batch drawn while a step runs), here on the CPU
    monkeypatch.setattr(trainer_module, "PREFETCH_DEVICES", ("cpu",))
    out = module_dir / "prefetched"
    train_tiny(*shot, out, *REFERENCE, steps=REFERENCE_STEPS)
    assert same_weights(weights(out / "model.pt"), weights(reference_run / "model.pt"))


def test_a_run_interrupted_and_resumed_ends_bit_identical_to_one_in_one_go(module_dir, shot, reference_run):
    out = module_dir / "interrupted"

    def ctrl_c_at_step_5(report):
        if report.step == 5:
            raise KeyboardInterrupt  # steps 4 and 5 are lost: the newest checkpoint is step 3

    with pytest.raises(KeyboardInterrupt):
        train_tiny(*shot, out, "train.checkpoint_every=3", "train.preview_every=1000", steps=REFERENCE_STEPS,
                   on_step=ctrl_c_at_step_5)
    assert names(out / "checkpoints") == ["step_000003.pt"] and not (out / "model.pt").exists()

    summary = train_tiny(*shot, out, "train.checkpoint_every=3", "train.preview_every=1000",
                         steps=REFERENCE_STEPS, resume=True)
    assert summary.result.steps_done == REFERENCE_STEPS
    assert same_weights(weights(out / "model.pt"), weights(reference_run / "model.pt"))
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert [h["step"] for h in history] == [REFERENCE_STEPS]


def test_sigterm_stops_after_the_step_with_a_checkpoint_and_resumes_bit_identical(module_dir, shot, reference_run):
    out = module_dir / "sigterm"

    def sigterm_at_step_5(report):
        if report.step == 5:
            os.kill(os.getpid(), signal.SIGTERM)  # a spot interruption notice, a farm's kill

    with stop_on_signals() as stop:
        stopped = train_tiny(*shot, out, "train.checkpoint_every=1000", "train.preview_every=1000",
                             steps=REFERENCE_STEPS, on_step=sigterm_at_step_5, should_stop=stop)
    assert stop.signal == "SIGTERM" and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert stopped.result.stopped_by == "stop" and stopped.result.steps_done == 5
    # nothing of step 5 is lost, and nothing says the run is finished
    assert names(out / "checkpoints") == ["step_000005.pt"] and not (out / "model.pt").exists()
    assert not (out / "metrics.json").exists()

    summary = train_tiny(*shot, out, "train.checkpoint_every=1000", "train.preview_every=1000",
                         steps=REFERENCE_STEPS, resume=True)
    assert summary.result.steps_done == REFERENCE_STEPS
    assert same_weights(weights(out / "model.pt"), weights(reference_run / "model.pt"))


class FakeClock:
    """The trainer's clock (its module's ``time``): a step takes ``step_s`` seconds, a checkpoint ``write_s``."""

    def __init__(self, step_s: float, write_s: float = 0.0) -> None:
        self.now, self.step_s, self.write_s = 1000.0, step_s, write_s

    def monotonic(self) -> float:
        return self.now


def train_on_clock(monkeypatch, clock, shot, out, *overrides, stop_at=None, **kwargs):
    """Train with the trainer's clock replaced; ``stop_at``: Ctrl-C in the report of that step."""
    monkeypatch.setattr(trainer_module, "time", clock)
    save, draw = trainer_module.RunFolder.save_checkpoint, trainer_module.Trainer.draw_batch

    def slow_save(self, *args, **kw):
        clock.now += clock.write_s
        return save(self, *args, **kw)

    def slow_draw(self, step):
        clock.now += clock.step_s
        return draw(self, step)

    def on_step(report):
        if report.step == stop_at:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module.RunFolder, "save_checkpoint", slow_save)
    monkeypatch.setattr(trainer_module.Trainer, "draw_batch", slow_draw)
    try:
        return train_tiny(*shot, out, *REFERENCE, *overrides, on_step=on_step, **kwargs)
    finally:
        monkeypatch.undo()


def test_a_checkpoint_comes_every_minute_and_a_kill_resumes_bit_identical(module_dir, shot, reference_run,
                                                                          monkeypatch):
    out = module_dir / "by_time"
    # 25 s a step: 60 s have passed after steps 3 and 6, far before checkpoint_every (1000)
    with pytest.raises(KeyboardInterrupt):
        train_on_clock(monkeypatch, FakeClock(step_s=25.0), shot, out, "train.keep_checkpoints=1",
                       steps=REFERENCE_STEPS, stop_at=7)
    # a kill at step 7 loses one step; the older time checkpoint (step 3) was pruned
    assert names(out / "checkpoints") == ["step_000006.pt"] and not (out / "model.pt").exists()
    summary = train_tiny(*shot, out, *REFERENCE, steps=REFERENCE_STEPS, resume=True)
    assert summary.result.steps_done == REFERENCE_STEPS
    assert same_weights(weights(out / "model.pt"), weights(reference_run / "model.pt"))


@pytest.mark.parametrize(("overrides", "write_s", "expected"), [
    ((), 0.0, ["step_000003.pt", "step_000006.pt", "step_000008.pt"]),
    (("train.checkpoint_minutes=2",), 0.0, ["step_000005.pt", "step_000008.pt"]),
    (("train.checkpoint_minutes=0",), 0.0, ["step_000008.pt"]),  # 0: by steps only
    # a write of 2 s: checkpoints at most 2% of the time, so 100 s apart after the first
    ((), 2.0, ["step_000003.pt", "step_000007.pt", "step_000008.pt"]),
    # a step checkpoint restarts the minute
    (("train.checkpoint_every=2",), 0.0, [f"step_00000{s}.pt" for s in (2, 4, 6, 8)]),
])
def test_checkpoints_by_time_follow_the_setting(monkeypatch, tmp_path, shot, overrides, write_s, expected):
    clock = FakeClock(step_s=25.0, write_s=write_s)
    train_on_clock(monkeypatch, clock, shot, tmp_path / "run", "train.keep_checkpoints=10", *overrides,
                   steps=REFERENCE_STEPS)
    assert names(tmp_path / "run" / "checkpoints") == expected


def test_a_run_stopped_by_its_time_budget_resumes_bit_identical(module_dir, shot, reference_run):
    out = module_dir / "budget"
    first = train_tiny(*shot, out, *REFERENCE, steps=REFERENCE_STEPS, minutes=1e-6)
    assert first.result.stopped_by == "time" and first.result.steps_done < REFERENCE_STEPS
    second = train_tiny(*shot, out, *REFERENCE, steps=REFERENCE_STEPS, resume=True)
    assert second.result.steps_done == REFERENCE_STEPS and second.result.stopped_by == "steps"
    assert same_weights(weights(out / "model.pt"), weights(reference_run / "model.pt"))


def test_a_time_budget_stops_cleanly_with_a_final_checkpoint_and_model(shot):
    out = Path("budget_run")
    summary = train_tiny(*shot, out, "train.checkpoint_every=1000", "train.preview_every=1000", minutes=0.02)
    result = summary.result
    assert result.stopped_by == "time"
    assert 1.2 <= result.elapsed_s < 1.2 + 5.0  # stops at the first step past 0.02 minutes
    assert names(out / "checkpoints") == [f"step_{result.steps_done:06d}.pt"]
    model = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    assert model["step"] == result.steps_done
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stopped_by"] == "time" and metrics["steps_done"] == result.steps_done
    assert names(out / "previews") == ["final.png"]


# --- refusals -----------------------------------------------------------------------------------

def test_resuming_with_another_width_is_refused_and_changes_nothing(shot, reference_run):
    before = snapshot(reference_run)
    with pytest.raises(RunError) as excinfo:
        train_tiny(*shot, reference_run, *REFERENCE, "model.width=8", steps=12, resume=True)
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(f"run folder '{reference_run}' was made for a 'unet_attn' network (")
    assert "width=4" in message and "width=8" in message
    assert snapshot(reference_run) == before


class TinyConv(nn.Module):
    """A second architecture, registered only for the test below."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.Tanh(),
                                  nn.Conv2d(width, out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.body(x))


@pytest.fixture
def tiny_conv(monkeypatch):
    monkeypatch.setitem(ARCHS._entries, "tiny_conv", TinyConv)


def test_resuming_with_another_architecture_is_refused_and_changes_nothing(tiny_conv, shot, reference_run):
    config = Path("other.yaml")
    config.write_text("model:\n  arch: tiny_conv\n  width: 4\n")
    before = snapshot(reference_run)
    with pytest.raises(RunError) as excinfo:  # api.train itself: the tiny settings would set model.depth
        api.train(*shot, reference_run, config=config, overrides=["train.threads=1"], steps=12, resume=True,
                  tracking=api.TrackingOptions(enabled=False),
                  device="cpu")
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(f"run folder '{reference_run}' was made for a 'unet_attn' network (")
    assert "not 'tiny_conv'" in message
    assert snapshot(reference_run) == before


def test_resuming_with_an_architecture_override_is_refused_naming_the_run(tiny_conv, shot, reference_run):
    before = snapshot(reference_run)
    with pytest.raises(RunError) as excinfo:
        train_tiny(*shot, reference_run, "model.arch=tiny_conv", steps=12, resume=True)
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(f"run folder '{reference_run}' was made for a 'unet_attn' network (")
    assert "not 'tiny_conv'" in message
    assert snapshot(reference_run) == before


def test_a_new_run_in_a_run_folder_is_refused_and_changes_nothing(shot, reference_run):
    before = snapshot(reference_run)
    with pytest.raises(RunError) as excinfo:
        train_tiny(*shot, reference_run, *REFERENCE, steps=2)
    assert str(excinfo.value) == (f"run folder '{reference_run}' already holds a run: resume it, or choose "
                                  "another output folder")
    assert excinfo.value.parameter == "resume"
    assert snapshot(reference_run) == before


def test_a_new_run_in_a_folder_of_other_files_is_refused(shot):
    Path("notes").mkdir()
    Path("notes/todo.txt").write_text("grade sh010")
    with pytest.raises(RunError) as excinfo:
        train_tiny(*shot, Path("notes"), steps=2)
    assert str(excinfo.value) == "output folder 'notes' is not empty and is not a shotfit run folder"
    assert excinfo.value.parameter == "out"
    assert names(Path("notes")) == ["todo.txt"]


def test_a_run_folder_inside_the_plates_is_refused(tmp_path):
    source, keys = write_shot(tmp_path, frames=(1, 2), keyframes=(1,))
    with pytest.raises(ShotfitError) as excinfo:
        train_tiny(source, keys, source / "run", steps=1)
    assert "inside the source folder" in str(excinfo.value)
    assert sorted(p.name for p in source.iterdir()) == ["plate.0001.png", "plate.0002.png"]


def test_resuming_a_folder_that_is_not_a_run_is_refused(shot):
    with pytest.raises(RunError) as excinfo:
        train_tiny(*shot, Path("missing_run"), steps=2, resume=True)
    assert str(excinfo.value) == "run folder 'missing_run' does not exist"


def test_a_grey_shot_trains_a_one_channel_network(tmp_path):
    source, keys = write_shot(tmp_path, frames=(1, 2, 3), keyframes=(2,), fmt=PixelFormat(".png", "uint8", 1))
    train_tiny(source, keys, Path("grey_run"), "train.preview_every=1000", steps=2)
    model = torch.load("grey_run/model.pt", map_location="cpu", weights_only=True)
    assert model["arch_args"]["in_channels"] == 1 and model["arch_args"]["out_channels"] == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_on_cuda_with_every_loss_term(shot):
    # the loss's LPIPS trunk and buffers must follow the network to the GPU
    out = Path("cuda_run")
    summary = api.train(*shot, out, overrides=(*TINY, "loss.lpips=0.5", "loss.ssim=0.5", "loss.laplacian=0.5"),
                        steps=3, device="cuda", tracking=api.TrackingOptions(enabled=False))
    assert summary.result.steps_done == 3 and (out / "model.pt").is_file()
    assert {"lpips", "ssim", "laplacian"} <= set(json.loads((out / "metrics.json").read_text())["final"])
