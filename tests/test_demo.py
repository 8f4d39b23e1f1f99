"""The built-in sample on the real carphone clip: a short run must beat the input on frames it never saw."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from shotfit.api import DemoRequest, TrackingOptions, demo
from shotfit.sample_footage import SAMPLE_KEYFRAMES as KEYFRAMES


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # one real training run; the rest of the suite stays on one thread
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_a_short_sample_run_beats_the_compressed_input_on_held_out_frames(tmp_path: Path, two_threads):
    result = demo(DemoRequest(tmp_path / "demo", steps=60, tracking=TrackingOptions(enabled=False)))

    assert len(result.held_out) == 120 - len(KEYFRAMES)
    assert not set(result.held_out) & set(KEYFRAMES)
    assert result.model["frames"] == result.untouched["frames"] == 116
    assert result.model["psnr"] > result.untouched["psnr"] + 0.3, (result.model, result.untouched)
    assert result.model["ssim"] > result.untouched["ssim"]
    assert result.model["lpips"] < result.untouched["lpips"] - 0.02

    rendered = sorted(p.name for p in (tmp_path / "demo" / "render").iterdir())
    assert rendered == [f"carphone.{frame:04d}.png" for frame in range(120)]
    scores = json.loads((tmp_path / "demo" / "eval_model.json").read_text())
    assert scores["subsets"]["held_out"]["frames"] == 116
    assert (tmp_path / "demo" / "run" / "previews" / "final.png").is_file()
