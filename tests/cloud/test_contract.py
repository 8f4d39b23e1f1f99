"""What the container prints and the launcher sends, read back the way SageMaker and CloudWatch read it."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import pytest

from shotfit.cloud.contract import (
    CHARTED_METRICS,
    OPTION_KEYS,
    JobOptions,
    JobPaths,
    job_settings,
    metric_definitions,
    metric_line,
    parse_metric_line,
    read_hyperparameters,
    to_hyperparameters,
)
from shotfit.errors import ConfigError


def test_a_metric_line_reads_back_to_its_numbers_at_six_significant_digits():
    numbers = {"loss/total": 0.012345678, "val/psnr": 31.25, "lr": 3e-4, "loss/ssim": float("nan")}
    line = metric_line(120, numbers)
    assert line == "shotfit-metrics: step=120 loss/ssim=nan loss/total=0.0123457 lr=0.0003 val/psnr=31.25"
    step, back = parse_metric_line(f"2026-11-26T04:14:33Z [algo-1] {line}")  # as CloudWatch stores it
    assert step == 120 and back["val/psnr"] == 31.25 and back["loss/total"] == pytest.approx(0.0123457)
    assert math.isnan(back["loss/ssim"])


def test_every_definition_matches_its_own_metric_and_no_other_line():
    line = metric_line(40, {"loss/total": 0.5, "loss/l1": 0.25, "val/lpips": 0.125, "lr": 1e-3})
    found = {d["Name"]: m.group(1) for d in metric_definitions() if (m := re.search(d["Regex"], line))}
    assert found == {"step": "40", "loss/total": "0.5", "loss/l1": "0.25", "val/lpips": "0.125", "lr": "0.001"}
    others = ["INFO shotfit.engine.trainer: checkpoint step_000040.pt", "loss/total=0.5 (a user's print)",
              "lr=0.1 step=3", "shotfit: the loss became nan at step 41"]
    assert not any(re.search(d["Regex"], text) for d in metric_definitions() for text in others)
    assert len(metric_definitions()) == len(CHARTED_METRICS) <= 40  # SageMaker's limit per job


def test_hyperparameters_sent_by_a_launcher_are_what_the_container_reads(tmp_path):
    sent = to_hyperparameters({"loss.lpips": 0.5, "model.arch": "nafnet", "augment.hflip": True},
                              {"minutes": 42.5, "mask": "alpha", "steps": None})
    assert all(isinstance(value, str) for value in sent.values())  # SageMaker's rule
    (tmp_path / "input" / "config").mkdir(parents=True)
    (tmp_path / "input" / "config" / "hyperparameters.json").write_text(json.dumps(sent))
    settings = job_settings(read_hyperparameters(JobPaths.from_environment({"SAGEMAKER_BASE_DIR": str(tmp_path)})))
    assert settings.overrides == ("augment.hflip=true", "loss.lpips=0.5", "model.arch=nafnet")
    assert settings.options == JobOptions(minutes=42.5, mask="alpha") and settings.export == ("onnx",)
    assert settings.options.given() == {"minutes": 42.5, "mask": "alpha"}


def test_every_option_key_is_a_typed_job_option():
    assert {f.name for f in dataclasses.fields(JobOptions)} == set(OPTION_KEYS)
    assert job_settings({"steps": "30", "first": "2"}).options == JobOptions(steps=30, first=2)


def test_sm_hps_is_read_when_the_file_is_absent(tmp_path):
    paths = JobPaths.from_environment({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    assert not paths.is_job()
    assert read_hyperparameters(paths, {"SM_HPS": '{"steps": 30, "train.lr": "1e-3"}'}) == {"steps": "30",
                                                                                           "train.lr": "1e-3"}


def test_a_damaged_hyperparameters_file_names_itself(tmp_path):
    (tmp_path / "input" / "config").mkdir(parents=True)
    (tmp_path / "input" / "config" / "hyperparameters.json").write_text('{"steps": ')
    paths = JobPaths.from_environment({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"hyperparameters '.*hyperparameters.json' cannot be read"):
        read_hyperparameters(paths)


def test_export_none_exports_nothing_and_lists_are_split():
    assert job_settings({"export": "none"}).export == ()
    assert job_settings({"export": "onnx, torchscript"}).export == ("onnx", "torchscript")
