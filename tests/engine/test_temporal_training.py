"""Training with the temporal term (``loss.temporal``): the flow lands in the run folder once, the term is
logged like every other (metrics.json, TensorBoard, MLflow), masks still apply, and a run interrupted and
resumed ends bit-identical to one trained in one go."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from shots import HEIGHT, WIDTH, same_weights, train_tiny, weights
from shots import write_graded_shot as write_shot
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from shotfit import api
from shotfit.io import PixelFormat, write_image

TEMPORAL = ("loss.temporal=1", "data.temporal_batch=1", "train.checkpoint_every=1000", "train.preview_every=1000")
STEPS = 8

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")]


@pytest.fixture(scope="module")
def shot(module_dir: Path) -> tuple[Path, Path]:
    return write_shot(module_dir)


@pytest.fixture(scope="module")
def reference_run(module_dir, shot) -> Path:
    out = module_dir / "reference"
    train_tiny(*shot, out, *TEMPORAL, steps=STEPS)
    return out


def stamps(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_a_run_with_the_term_keeps_the_flow_of_every_pair_and_logs_the_term(reference_run):
    assert sorted(p.name for p in (reference_run / "flow").iterdir()) == ["1-2.npz", "2-3.npz", "3-4.npz", "4-5.npz",
                                                                         "5-6.npz"]
    history = json.loads((reference_run / "metrics.json").read_text())["history"]
    assert all(row["temporal"] > 0 for row in history)
    assert history[-1]["total"] > history[-1]["l1"] + history[-1]["temporal"] - 1e-9  # weighted in, at 1


def test_the_term_is_logged_to_tensorboard_and_mlflow(tmp_path, shot, monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    run = tmp_path / "tracked"
    train_tiny(*shot, run, *TEMPORAL, "train.steps=10", steps=10, tracking=api.TrackingOptions())
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    logged = [event.value for event in events.Scalars("loss/temporal")]
    assert len(logged) == 1 and logged[0] > 0
    ids = json.loads((run / "run.json").read_text())["tracking"]
    client = MlflowClient(tracking_uri=ids["mlflow_tracking_uri"])
    assert client.get_run(ids["mlflow_run_id"]).data.metrics["loss/temporal"] == pytest.approx(logged[0])


def test_a_run_interrupted_and_resumed_ends_bit_identical_and_reuses_its_flow(module_dir, shot, reference_run):
    out = module_dir / "interrupted"

    def ctrl_c_at_step_5(report):
        if report.step == 5:
            raise KeyboardInterrupt

    cadence = ("train.checkpoint_every=3", "train.preview_every=1000")
    with pytest.raises(KeyboardInterrupt):
        train_tiny(*shot, out, *TEMPORAL, *cadence, steps=STEPS, on_step=ctrl_c_at_step_5)
    flows = stamps(out / "flow")
    summary = train_tiny(*shot, out, *TEMPORAL, *cadence, steps=STEPS, resume=True)
    assert summary.result.steps_done == STEPS
    assert same_weights(weights(out / "model.pt"), weights(reference_run / "model.pt"))
    assert stamps(out / "flow") == flows  # read back, not measured again


def test_the_term_changes_what_is_learnt_but_not_the_keyframe_batches(module_dir, shot, reference_run):
    without = module_dir / "without"
    train_tiny(*shot, without, "train.checkpoint_every=1000", "train.preview_every=1000", steps=STEPS)
    assert not (without / "flow").exists()
    assert not same_weights(weights(without / "model.pt"), weights(reference_run / "model.pt"))


def test_masks_weight_the_keyframes_while_the_term_learns_from_the_shot(tmp_path, shot):
    painted = np.zeros((HEIGHT, WIDTH, 1), np.float32)
    painted[:, : WIDTH // 2] = 1.0
    for frame in (1, 4):
        write_image(tmp_path / "masks" / f"plate.{frame:04d}.png", painted, PixelFormat(".png", "uint8", 1))
    summary = train_tiny(*shot, tmp_path / "run", *TEMPORAL, steps=4, masks=tmp_path / "masks")
    assert summary.metrics["final"]["temporal"] > 0 and summary.metrics["final"]["l1"] > 0
