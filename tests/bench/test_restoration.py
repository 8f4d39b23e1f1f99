"""The restoration task of the quality benchmark: a grainy, flickering plate of a clean clip, whose clean
truth is steadier along the motion than the plate."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bench.quality_tasks import TASKS
from bench.restoration import RESTORATIONS, Restoration, film_grain, write_frame, write_restoration_shot
from shotfit.data.flow import flow_between
from shotfit.errors import ShotfitError
from shotfit.evaluate.warping import pair_warping_error
from shotfit.io import open_shot


def mid_tone_pan(count: int, shift: int = 2, size: int = 80) -> list[np.ndarray]:
    """uint8 RGB frames of smooth mid-tone texture moving ``shift`` pixels right per frame."""
    rng = np.random.default_rng(3)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (size, size + shift * count, 3)).astype(np.float32), (0, 0), 3.0)
    big = np.clip((big - big.mean()) * 3 + 128, 30, 225).astype(np.uint8)
    return [np.ascontiguousarray(big[:, (count - i) * shift:(count - i) * shift + size]) for i in range(count)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_the_grain_has_its_strength_and_is_fresh_on_every_frame_yet_the_same_bytes_every_time():
    clean = mid_tone_pan(1)[0]
    plate = film_grain(clean, 7)
    assert np.array_equal(plate, film_grain(clean, 7)) and plate.dtype == np.uint8 and plate.shape == clean.shape
    # 0.03 of the range in the mid-tones, less towards black and white: about 31-32 dB
    assert 29.5 < psnr(plate, clean) < 33.5
    # the strength is what sets it: twice the grain, 6 dB lower
    assert psnr(film_grain(clean, 7, strength=0.06), clean) == pytest.approx(psnr(plate, clean) - 6.0, abs=0.8)
    # the next frame's grain on the same picture shares nothing with this one's
    residual = [film_grain(clean, frame, flicker=0.0).astype(np.float64) - clean for frame in (7, 8)]
    assert abs(np.corrcoef(residual[0].ravel(), residual[1].ravel())[0, 1]) < 0.05
    assert np.corrcoef(residual[0].ravel(), (film_grain(clean, 7, flicker=0.0).astype(np.float64) - clean).ravel()
                       )[0, 1] == pytest.approx(1.0)
    # mostly luminance: the channels' grain moves together
    assert np.corrcoef(residual[0][..., 0].ravel(), residual[0][..., 2].ravel())[0, 1] > 0.6


def test_the_exposure_flickers_by_about_a_percent_from_frame_to_frame():
    clean = mid_tone_pan(1)[0]
    gains = [film_grain(clean, frame).mean() / clean.mean() for frame in range(12)]
    assert 0.002 < np.std(gains) < 0.02 and max(abs(g - 1) for g in gains) < 0.03
    flat = [film_grain(clean, frame, flicker=0.0).mean() / clean.mean() for frame in range(12)]
    assert np.std(flat) < np.std(gains) / 2


def test_the_truth_is_steadier_along_the_motion_than_the_plate(tmp_path):
    frames = mid_tone_pan(3)
    folders = {kind: tmp_path / kind for kind in ("source", "keyframes", "truth")}
    task = Restoration("unused.mp4", keyframes=(20,))
    for number, clean in zip((20, 21, 22), frames):
        write_frame(clean, number, task, folders, stem="pan")
    assert sorted(p.name for p in folders["keyframes"].iterdir()) == ["pan.0020.png"]
    with open_shot(folders["source"]) as plate, open_shot(folders["truth"]) as truth:
        assert plate.frames == truth.frames == [20, 21, 22]
        assert np.array_equal(truth.read(21)[..., :3], frames[1].astype(np.float32) / 255.0)
        assert np.array_equal(open_shot(folders["keyframes"]).read(20), truth.read(20))
        errors = {}
        for name, shot in (("plate", plate), ("truth", truth)):
            errors[name] = [pair_warping_error(shot.read(a)[..., :3], shot.read(b)[..., :3],
                                               flow_between(plate.read(a)[..., :3], plate.read(b)[..., :3]))
                            for a, b in ((20, 21), (21, 22))]
    assert all(t * 5 < p for t, p in zip(errors["truth"], errors["plate"]))
    # written once: a second pass keeps the files it finds
    stamp = (folders["source"] / "pan.0021.png").stat().st_mtime_ns
    write_frame(frames[1], 21, task, folders, stem="pan")
    assert (folders["source"] / "pan.0021.png").stat().st_mtime_ns == stamp


def test_restorations_are_quality_tasks_and_say_when_their_clip_is_missing(tmp_path):
    assert set(RESTORATIONS) <= set(TASKS)
    with pytest.raises(ShotfitError, match="is not there"):
        write_restoration_shot("face-degrain", tmp_path / "no-shared-data", tmp_path / "out")
    with pytest.raises(ShotfitError, match="unknown restoration task"):
        write_restoration_shot("face-dust", tmp_path, tmp_path / "out")
