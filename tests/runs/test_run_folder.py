"""The run folder: checkpoints kept and found by step, the weights rendering reads, and one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from shotfit import __version__
from shotfit.config import Config, apply_overrides
from shotfit.errors import RunError
from shotfit.runs.folder import RunFolder, load_state, save_state
from shotfit.runs.record import RunInfo


def state(step: int) -> dict:
    return {"arch": "unet_attn", "arch_args": {"width": 4}, "step": step, "network": {"w": torch.full((2,), step)}}


def test_config_and_info_round_trip(tmp_path):
    run = RunFolder(tmp_path / "run")
    cfg = apply_overrides(Config(), ["train.steps=7", "model.width=4"])
    run.write_config(cfg)
    run.write_info(RunInfo("plate/", "keys/", keyframe_frames=(1, 4), channels=3))
    assert run.is_run()
    assert run.read_config() == cfg
    info = run.read_info()
    assert info == RunInfo("plate/", "keys/", keyframe_frames=(1, 4), channels=3, shotfit=__version__)


def test_checkpoints_are_listed_by_step_not_by_name(tmp_path):
    run = RunFolder(tmp_path)
    for step in (1_000_000, 20, 3, 999_999):
        run.save_checkpoint(state(step), step, keep=10)
    (run.checkpoints / "notes.txt").write_text("not a checkpoint")
    (run.checkpoints / "step_000050.pt.bak").write_text("nor this")
    names = [p.name for p in run.list_checkpoints()]
    assert names == ["step_000003.pt", "step_000020.pt", "step_999999.pt", "step_1000000.pt"]
    assert run.latest_checkpoint().name == "step_1000000.pt"


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    run = RunFolder(tmp_path)
    for step in (5, 10, 15, 20):
        run.save_checkpoint(state(step), step, keep=2)
    assert sorted(os.listdir(run.checkpoints)) == ["step_000015.pt", "step_000020.pt"]  # no temporaries either
    assert load_state(run.checkpoint_path(20))["step"] == 20


def test_a_new_run_has_no_checkpoints(tmp_path):
    run = RunFolder(tmp_path / "run")
    assert run.list_checkpoints() == [] and run.latest_checkpoint() is None


def test_rendering_reads_model_pt_else_the_newest_checkpoint(tmp_path):
    run = RunFolder(tmp_path)
    run.write_config(Config())
    run.save_checkpoint(state(10), 10, keep=3)
    run.save_checkpoint(state(20), 20, keep=3)
    assert run.weights_path() == run.checkpoint_path(20)  # a run stopped before it wrote model.pt
    save_state(state(25), run.model_path)
    assert run.weights_path() == run.model_path


def test_a_run_without_weights_says_so(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.write_config(Config())
    with pytest.raises(RunError) as excinfo:
        run.weights_path()
    assert str(excinfo.value) == (f"run folder '{run.path}' has no model.pt and no checkpoints "
                                  "(has it trained a step yet?)")


def test_a_missing_run_folder_is_named(tmp_path):
    with pytest.raises(RunError) as excinfo:
        RunFolder("runs/sh010").read_config()
    assert str(excinfo.value) == "run folder 'runs/sh010' does not exist"


def test_a_folder_that_is_not_a_run_is_named(tmp_path):
    (tmp_path / "renders").mkdir()
    with pytest.raises(RunError) as excinfo:
        RunFolder("renders").read_info()
    assert str(excinfo.value) == "'renders' is not a shotfit run folder (no config.yaml)"


def test_a_missing_run_description_is_named(tmp_path):
    run = RunFolder("run")
    run.write_config(Config())
    with pytest.raises(RunError) as excinfo:
        run.read_info()
    assert str(excinfo.value) == "run description 'run/run.json' does not exist"


def test_a_damaged_run_description_is_named(tmp_path):
    run = RunFolder("run")
    run.write_config(Config())
    run.info_path.write_text("{\"source\": ")
    with pytest.raises(RunError, match=r"^run description 'run/run\.json' cannot be read \("):
        run.read_info()


def test_a_damaged_checkpoint_is_a_one_line_error(tmp_path):
    run = RunFolder(tmp_path)
    path = run.save_checkpoint(state(10), 10, keep=3)
    path.write_bytes(path.read_bytes()[:100])  # truncated, as by a full disk
    with pytest.raises(RunError) as excinfo:
        load_state(path)
    message = str(excinfo.value)
    assert message == f"'{path}' is not a shotfit checkpoint (damaged, cut short or made by another program)"
    assert "\n" not in message


def test_a_foreign_torch_file_is_not_a_checkpoint(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(RunError) as excinfo:
        load_state(tmp_path / "other.pt")
    assert str(excinfo.value) == f"'{tmp_path / 'other.pt'}' is not a shotfit checkpoint"


def test_a_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(RunError) as excinfo:
        load_state(tmp_path / "step_000010.pt")
    assert str(excinfo.value) == f"checkpoint '{tmp_path / 'step_000010.pt'}' does not exist"


def test_metrics_are_plain_json(tmp_path):
    run = RunFolder(tmp_path)
    run.write_metrics({"steps_done": 3, "final": {"l1": 0.25}})
    assert json.loads(run.metrics_path.read_text()) == {"steps_done": 3, "final": {"l1": 0.25}}


def test_metrics_refuse_nan_rather_than_writing_invalid_json(tmp_path):
    run = RunFolder(tmp_path)
    with pytest.raises(ValueError):
        run.write_metrics({"final": {"l1": float("nan")}})
    assert os.listdir(tmp_path) == []


# What training wrote before run.json had a type (shotfit 0.x): every such file must still read, and
# write back byte for byte.
WRITTEN_BY_TRAINING = {
    "shotfit": "0.1.0", "source": "plate/", "keyframes": "fixed/", "masks": None, "keyframe_frames": [1, 4],
    "validation_frames": [7], "frame_size": [64, 96], "channels": 3,
    "colour": {"config": "ocio://studio-config-v2.1.0_aces-v1.3_ocio-v2.3", "source": "sRGB - Texture",
               "working": "sRGB - Texture"},
    "format": {"ext": ".png", "dtype": "uint8", "channels": 3, "compression": None},
    "tracking": {"mlflow_run_id": "abc123", "mlflow_experiment_id": "1"},
}


def test_a_run_json_written_before_the_record_reads_and_writes_back_unchanged(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.write_config(Config())
    run.info_path.write_text(json.dumps(WRITTEN_BY_TRAINING, indent=2) + "\n")
    info = run.read_info()
    assert (info.source, info.keyframe_frames, info.validation_frames, info.channels) == ("plate/", (1, 4), (7,), 3)
    assert info.frame_size == (64, 96) and info.dtype == "uint8" and info.mlflow_run_id == "abc123"
    assert info.colour_record() == {k: WRITTEN_BY_TRAINING[k] for k in ("colour", "format")}
    before = run.info_path.read_text()
    run.write_info(info)
    assert run.info_path.read_text() == before.replace('"0.1.0"', json.dumps(__version__))


def test_a_run_from_before_colour_management_keeps_its_transfer_and_unknown_keys(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.write_config(Config())
    old = {"source": "plate/", "keyframes": "fixed/", "channels": 3, "transfer": "acescct", "notes": {"by": "me"}}
    run.info_path.write_text(json.dumps(old))
    info = run.read_info()
    assert info.transfer == "acescct" and info.colour is None and info.tracking == {} and info.mlflow_run_id is None
    assert info.colour_record() == {"transfer": "acescct"}
    assert info.extra == {"notes": {"by": "me"}}
    assert info.to_dict("9")["notes"] == {"by": "me"}


@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "must hold a JSON object, not list"),
    ('{"source": "p", "keyframes": "k", "channels": "three"}', "field 'channels' must be an integer, not 'three'"),
    ('{"source": "p", "keyframes": "k", "keyframe_frames": [1, "x"]}',
     "field 'keyframe_frames' must be a list of integers, not [1, 'x']"),
    ('{"source": "p", "keyframes": "k", "tracking": []}', "field 'tracking' must be a JSON object, not []"),
    ('{"source": 3, "keyframes": "k"}', "field 'source' must be a string, not 3"),
    ('{"keyframes": "k"}', "lacks the field 'source'"),
])
def test_a_run_json_of_the_wrong_shape_is_one_line_naming_the_file_and_the_field(tmp_path, content, message):
    run = RunFolder("run")
    run.write_config(Config())
    run.info_path.write_text(content)
    with pytest.raises(RunError) as excinfo:
        run.read_info()
    assert str(excinfo.value).startswith("run description 'run/run.json'")
    assert str(excinfo.value).endswith(message) and "\n" not in str(excinfo.value)


@pytest.mark.parametrize(("failure", "message"), [
    (RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"),
     "the write failed; is the disk full? ([enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598)"),
    (OSError(28, "No space left on device"), "the disk is full (No space left on device)"),
])
def test_a_full_disk_is_one_line_naming_the_checkpoint_and_keeps_no_temporary(tmp_path, monkeypatch, failure, message):
    run = RunFolder(tmp_path)
    run.save_checkpoint(state(5), 5, keep=3)

    def full_disk(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK")  # a few bytes got out before the disk filled
        raise failure

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(RunError) as error:
        run.save_checkpoint(state(10), 10, keep=3)
    assert str(error.value) == f"cannot write '{run.checkpoint_path(10)}': {message}"
    assert sorted(os.listdir(run.checkpoints)) == ["step_000005.pt"]
