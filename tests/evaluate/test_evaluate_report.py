"""Evaluation reports: pairing by frame number, means over subsets, JSON output, one-line errors."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from shotfit.errors import FrameError
from shotfit.evaluate import evaluate_frames, psnr
from shotfit.losses import load_lpips

FIRST = 1001


@pytest.fixture
def shot(pan):
    """A 5-frame pan numbered from 1001: source, truth (a gamma edit) and a prediction that is exact on
    1001, slightly off everywhere else, and flickers on 1003."""
    source = {FIRST + i: frame for i, frame in enumerate(pan(5, size=32))}
    truth = {f: frame**0.8 for f, frame in source.items()}
    pred = {f: np.clip(frame * 0.98 + 0.01, 0, 1) for f, frame in truth.items()}
    pred[FIRST] = truth[FIRST].copy()
    pred[FIRST + 2] = np.clip(truth[FIRST + 2] + 0.1, 0, 1)
    return source, truth, pred


def test_frames_are_paired_by_number_and_scored(shot):
    source, truth, pred = shot
    report = evaluate_frames(reversed(list(pred.items())), truth, source.items())
    assert report.compared == tuple(range(FIRST, FIRST + 5))
    assert [row.frame for row in report.frames] == list(report.compared)
    assert report.frames[0].psnr == math.inf
    assert report.frames[1].psnr == pytest.approx(psnr(pred[FIRST + 1], truth[FIRST + 1]))
    assert report.frames[0].lpips is None
    assert report.flow_from == "source"
    assert [(p.frame, p.next_frame) for p in report.pairs] == [(f, f + 1) for f in range(FIRST, FIRST + 4)]
    flickering = {FIRST + 1, FIRST + 2}
    for pair in report.pairs:
        assert pair.truth < 1e-4
        assert (pair.prediction > 1e-3) == (pair.frame in flickering)


def test_report_is_strict_json_and_summarises_subsets(shot):
    source, truth, pred = shot
    report = evaluate_frames(pred, truth, source)
    held_out = [FIRST + 1, FIRST + 2, FIRST + 3, 99]  # frames that were not compared are ignored
    data = json.loads(json.dumps(report.to_dict(subsets={"held_out": held_out}), allow_nan=False))
    assert data["compared"] == 5
    assert data["frames"][0]["psnr"] == "inf"
    assert data["summary"]["psnr"] == "inf"  # one identical frame makes the mean infinite
    assert data["summary"]["lpips"] is None
    subset = data["subsets"]["held_out"]
    assert subset["frames"] == 3
    assert subset["psnr"] == pytest.approx(np.mean([psnr(pred[f], truth[f]) for f in held_out[:3]]))
    assert subset["pairs"] == 2  # 1002-1003 and 1003-1004: both frames held out
    both = [p for p in report.pairs if p.frame in held_out and p.next_frame in held_out]
    assert subset["warping_error"] == pytest.approx(np.mean([p.prediction for p in both]))
    assert subset["flow_from"] == "source"


def test_a_prediction_frame_without_truth_is_a_one_line_error(shot):
    source, truth, pred = shot
    pred[FIRST + 7] = pred[FIRST]
    with pytest.raises(FrameError) as error:
        evaluate_frames(pred, truth, source)
    message = str(error.value)
    assert message == "prediction frame 1008 has no ground truth frame (the ground truth has 5 frames, 1001-1005)"
    with pytest.raises(FrameError, match="prediction frame 1001 has no source frame"):
        evaluate_frames({FIRST: pred[FIRST]}, {FIRST: pred[FIRST]}, {FIRST + 1: source[FIRST + 1]})


def test_without_a_source_the_flow_comes_from_the_truth(shot):
    _, truth, pred = shot
    report = evaluate_frames(pred, truth)
    assert report.flow_from == "truth"
    assert report.summary()["warping_error_truth"] < 1e-4


def test_without_truth_only_the_warping_error_is_measured(shot):
    source, _, pred = shot
    with pytest.raises(ValueError, match="needs a ground truth or a source"):
        evaluate_frames(pred, None)
    summary = evaluate_frames(pred, None, source).to_dict()["summary"]
    assert summary["frames"] == 5 and summary["pairs"] == 4
    assert summary["psnr"] is None and summary["warping_error_truth"] is None
    assert summary["warping_error"] > 1e-3


def test_frames_of_another_size_or_scale_are_refused(shot):
    source, truth, pred = shot
    pred[FIRST + 1] = pred[FIRST + 1][:30]
    expected = r"ground truth frame 1002 has shape \(32, 32, 3\), prediction frame 1002 has \(30, 32, 3\)"
    with pytest.raises(FrameError, match=expected):
        evaluate_frames(pred, truth, source)
    pred[FIRST + 1] = truth[FIRST + 1] * 10.0
    with pytest.raises(FrameError, match=r"prediction frame 1002 has values in \[.*\]; evaluation needs"):
        evaluate_frames(pred, truth, source)


def test_lpips_column_when_a_network_is_given(shot):
    from shotfit.losses.lpips import load_lpips

    source, truth, pred = shot
    two = {f: pred[f] for f in (FIRST, FIRST + 1)}  # LPIPS is slow on a shared CPU: two frames are enough
    report = evaluate_frames(two, truth, source, lpips_net=load_lpips())
    assert report.frames[0].lpips == 0.0
    assert report.frames[1].lpips > 0.0
    assert report.summary()["lpips"] == pytest.approx(report.frames[1].lpips / 2)


def test_shots_on_disk_are_read_lazily_and_named_in_errors(shot, tmp_path):
    from shotfit.io import open_shot

    source, truth, pred = shot
    for name, frames in (("truth", truth), ("pred", pred)):
        (tmp_path / name).mkdir()
        for f, frame in frames.items():
            pixels = np.round(frame[..., ::-1] * 255).astype(np.uint8)  # RGB -> OpenCV's BGR
            cv2.imwrite(str(tmp_path / name / f"{name}.{f}.png"), pixels)
    report = evaluate_frames(open_shot(tmp_path / "pred"), open_shot(tmp_path / "truth"))
    assert report.compared == tuple(range(FIRST, FIRST + 5)) and report.frames[0].psnr == math.inf
    (tmp_path / "truth" / "truth.1004.png").unlink()
    with pytest.raises(FrameError) as error:
        evaluate_frames(open_shot(tmp_path / "pred"), open_shot(tmp_path / "truth"))
    pred_file, truth_folder = tmp_path / "pred" / "pred.1004.png", tmp_path / "truth"
    assert str(error.value) == (f"prediction frame 1004 ('{pred_file}') has no ground truth frame "
                                f"(the ground truth '{truth_folder}/' has 4 frames, 1001-1005)")


def test_scene_linear_shots_are_scored_in_acescct(shot, tmp_path):
    from shotfit.io import PixelFormat, open_shot, resolve_colour, write_image

    def acescct(x: np.ndarray) -> np.ndarray:  # Academy S-2016-001, written out as the reference
        return np.where(x <= 2**-7, 10.5402377416545 * x + 0.0729055341958355,
                        (np.log2(np.maximum(x, 2**-7)) + 9.72) / 17.52)

    _, truth, pred = shot
    exr = PixelFormat(".exr", "float", 3)
    for name, frames in (("truth", truth), ("pred", pred)):
        for f, frame in frames.items():
            write_image(tmp_path / name / f"{name}.{f}.exr", frame * 20.0, exr)  # highlights up to 20
    report = evaluate_frames(open_shot(tmp_path / "pred"), open_shot(tmp_path / "truth"))
    expected = psnr(acescct(pred[FIRST + 1] * np.float32(20)), acescct(truth[FIRST + 1] * np.float32(20)))
    assert report.frames[1].psnr == pytest.approx(expected, abs=1e-3)
    # the same frames taken as ACES2065-1 and scored in ACEScc score differently
    other = resolve_colour(exr, "ACES2065-1", "ACEScc")
    scored = evaluate_frames(open_shot(tmp_path / "pred"), open_shot(tmp_path / "truth"), colour=other)
    assert abs(scored.frames[1].psnr - expected) > 0.5


def test_psnr_inside_the_painted_region_shows_a_smudge_the_frame_average_hides():
    """A marker paint-out: the truth differs from the plate on a 6x6 dot. A prediction that leaves a faint
    smudge there scores well over the frame but badly inside the painted region."""
    rng = np.random.default_rng(0)
    clean = rng.uniform(0.2, 0.8, (64, 64, 3)).astype(np.float32)
    plate = clean.copy()
    plate[20:26, 30:36] = 0.05  # the tracking marker the artist painted out
    smudged = clean.copy()
    smudged[20:26, 30:36] = clean[20:26, 30:36] * 0.8 + 0.05 * 0.2  # a ghost of the marker left

    report = evaluate_frames({1: smudged}, {1: clean}, {1: plate})
    row = report.frames[0]
    assert row.psnr > 40 and row.psnr_edited < 30
    region = row.edited_fraction * 64 * 64
    assert 6 * 6 < region < 10 * 10  # the dot grown by up to 2 px a side (a round brush: not the corners)
    dot_mse = float(np.mean((smudged[20:26, 30:36].astype(np.float64) - clean[20:26, 30:36]) ** 2))
    assert row.psnr_edited == pytest.approx(-10 * math.log10(dot_mse * 36 / region), abs=1e-4)
    assert report.summary()["psnr_edited"] == pytest.approx(row.psnr_edited)


def test_without_a_source_or_an_edit_there_is_no_edited_region(shot):
    source, truth, pred = shot
    assert evaluate_frames(pred, truth).summary()["psnr_edited"] is None
    untouched = evaluate_frames(pred, source, source)
    assert untouched.frames[1].psnr_edited is None and untouched.frames[1].edited_fraction == 0.0
    assert json.loads(json.dumps(untouched.to_dict()))["summary"]["psnr_edited"] is None


def test_frames_too_small_for_lpips_are_scored_without_it_and_say_so(pan, caplog):
    # 16x16 frames: LPIPS's trunk needs 21 a side; PSNR, SSIM and the warping error still apply
    frames = dict(enumerate(pan(3, size=16), start=FIRST))
    with caplog.at_level("WARNING", logger="shotfit.evaluate.report"):
        report = evaluate_frames(frames, frames, lpips_net=load_lpips())
    assert [row.lpips for row in report.frames] == [None, None, None]
    assert [row.ssim for row in report.frames] == [1.0, 1.0, 1.0]
    note = "LPIPS is not scored: the frames are 16x16, smaller than the 21x21 pixels LPIPS needs"
    assert report.notes == (note,)
    assert [r.getMessage() for r in caplog.records] == [note]  # said once, not once a frame
    data = report.to_dict()
    assert data["summary"]["lpips"] is None and data["notes"] == [note]


def test_frames_just_large_enough_for_lpips_get_a_score(pan):
    frames = dict(enumerate(pan(2, size=21), start=FIRST))
    report = evaluate_frames(frames, frames, lpips_net=load_lpips())
    assert [row.lpips for row in report.frames] == [0.0, 0.0] and report.notes == ()


def test_a_frame_subset_is_scored_alone_and_pairs_never_span_the_frames_left_out(shot):
    """Truth made for a few frames only: those are compared; a pair is scored only between frames that are
    neighbours in the prediction (1002-1003), never across a frame left out (1003-1005)."""
    source, truth, pred = shot
    partial_truth = {f: truth[f] for f in (FIRST + 1, FIRST + 2, FIRST + 4)}
    report = evaluate_frames(pred, partial_truth, source, frames=partial_truth)
    assert report.compared == (FIRST + 1, FIRST + 2, FIRST + 4)
    assert [row.frame for row in report.frames] == list(report.compared)
    assert report.frames[2].psnr == pytest.approx(psnr(pred[FIRST + 4], truth[FIRST + 4]))
    assert [(p.frame, p.next_frame) for p in report.pairs] == [(FIRST + 1, FIRST + 2)]
    data = report.to_dict()
    assert data["compared"] == 3 and data["compared_frames"] == [FIRST + 1, FIRST + 2, FIRST + 4]
    with pytest.raises(FrameError, match=r"^the prediction has no frame 1009 to compare \(the prediction has 5"):
        evaluate_frames(pred, truth, source, frames=[FIRST, FIRST + 8])
