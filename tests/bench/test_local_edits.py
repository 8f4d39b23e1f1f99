"""Local-edit tasks of the quality benchmark: markers that stick to moving footage, a wire, a cartoon, and
the score inside the painted region."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bench.local_edits import LOCAL_EDITS, cartoon, marker_tracks, write_edit, write_local_edit_shot
from bench.quality_tasks import TASKS
from shotfit.errors import ShotfitError
from shotfit.evaluate.report import evaluate_frames
from shotfit.io import open_shot


def textured_pan(count: int, shift: int = 3, size: int = 96) -> list[np.ndarray]:
    """uint8 RGB frames of smooth random texture moving ``shift`` pixels right per frame."""
    rng = np.random.default_rng(1)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (size, size + shift * count, 3)).astype(np.float32), (0, 0), 2.5)
    big = np.clip((big - big.mean()) * 4 + 128, 0, 255).astype(np.uint8)
    return [np.ascontiguousarray(big[:, (count - i) * shift:(count - i) * shift + size]) for i in range(count)]


def test_markers_follow_the_footage_along_its_optical_flow():
    frames = textured_pan(6)
    tracks = marker_tracks(frames, count=9)
    moved = tracks[-1] - tracks[0]
    assert np.allclose(moved[:, 0], 15, atol=1.5) and np.allclose(moved[:, 1], 0, atol=1.5)


def test_a_paint_out_differs_from_its_truth_only_around_the_marks(tmp_path):
    frames = textured_pan(4)
    folders = {kind: tmp_path / kind for kind in ("source", "keyframes", "truth")}
    write_edit("markers", [10, 11, 12, 13], frames, (10, 13), folders, stem="pan")
    with open_shot(folders["source"]) as plate, open_shot(folders["truth"]) as truth:
        assert plate.frames == truth.frames == [10, 11, 12, 13]
        report = evaluate_frames({11: truth.read(11)}, truth, plate)
    assert sorted(p.name for p in folders["keyframes"].iterdir()) == ["pan.0010.png", "pan.0013.png"]
    share = report.frames[0].edited_fraction
    assert 0.05 < share < 0.25  # 14 dots of 3.5 px on 96x96 (5%), grown by 2 px a side
    # the plate itself scores fine over the frame and badly inside the painted region
    plate_report = evaluate_frames({11: open_shot(folders["source"]).read(11)}, open_shot(folders["truth"]),
                                   open_shot(folders["source"]))
    row = plate_report.frames[0]
    assert row.psnr_edited < 15 < row.psnr


def test_cartoon_has_flat_bands_and_ink_and_is_deterministic():
    frame = textured_pan(1, size=128)[0]
    once, again = cartoon(frame), cartoon(frame)
    assert np.array_equal(once, again) and once.dtype == np.uint8 and once.shape == frame.shape
    assert (np.all(once == (18, 16, 20), axis=-1)).mean() > 0.02  # ink lines
    paint = ~np.all(once == (18, 16, 20), axis=-1)
    lightness = cv2.cvtColor(once, cv2.COLOR_RGB2LAB)[..., 0][paint].astype(int)
    step = 256 // 5
    centres = np.arange(5) * step + step // 2
    near_a_band = np.abs(lightness[:, None] - centres[None, :]).min(axis=1) <= 4
    assert near_a_band.mean() > 0.9


def test_local_edits_are_quality_tasks_and_say_when_their_clip_is_missing(tmp_path):
    assert set(LOCAL_EDITS) <= set(TASKS)
    with pytest.raises(ShotfitError, match="is not there"):
        write_local_edit_shot("face-markers", tmp_path / "no-shared-data", tmp_path / "out")
    with pytest.raises(ShotfitError, match="unknown local-edit task"):
        write_local_edit_shot("face-tattoo", tmp_path, tmp_path / "out")
