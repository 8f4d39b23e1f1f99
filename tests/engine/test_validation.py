"""Held-out keyframes: never trained on, scored every train.validate_every steps and reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shots import train_tiny
from shots import write_graded_shot as write_shot

from shotfit.errors import ConfigError


def test_validation_frames_are_held_out_and_scored(tmp_path: Path):
    source, keys = write_shot(tmp_path, range(1, 7), (1, 3, 5))
    reports = []
    summary = train_tiny(source, keys, tmp_path / "run", "data.validation_frames=[3]", "train.validate_every=4",
                         steps=10, on_validate=lambda step, numbers: reports.append((step, numbers)))

    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["keyframe_frames"] == [1, 5] and info["validation_frames"] == [3]
    assert [step for step, _ in reports] == [4, 8, 10]
    for _, numbers in reports:
        assert set(numbers) == {"val/psnr", "val/ssim", "val/lpips"}
        assert 5 < numbers["val/psnr"] < 60 and 0 < numbers["val/ssim"] <= 1 and numbers["val/lpips"] >= 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [v["step"] for v in metrics["validations"]] == [4, 8, 10]
    assert metrics["final"]["val/psnr"] == pytest.approx(reports[-1][1]["val/psnr"])
    assert summary.metrics["final"]["val/lpips"] == pytest.approx(reports[-1][1]["val/lpips"])
    # the learnt grade reaches the held-out keyframe too
    assert reports[-1][1]["val/psnr"] > reports[0][1]["val/psnr"]


@pytest.mark.parametrize(("frames", "message"), [
    ("[2]", "data.validation_frames names frame 2, which is not a keyframe in"),
    ("[1, 4]", "data.validation_frames holds out every keyframe in"),
])
def test_bad_validation_frames_are_one_line_errors(tmp_path: Path, frames: str, message: str):
    source, keys = write_shot(tmp_path, range(1, 7), (1, 4))
    with pytest.raises(ConfigError, match=message) as error:
        train_tiny(source, keys, tmp_path / "run", f"data.validation_frames={frames}", steps=2)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()
