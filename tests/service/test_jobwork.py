"""What a job does with its folders, without the HTTP layer or Ray: the render's evaluation of the frames a studio
made truth for, and suggest jobs before painting and after a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shots import FRAMES, KEYFRAMES, edit, plate, train_tiny, write_shot

from shotfit.service import jobwork

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shot(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny shot's plates and keyframes, and a run trained on them (20 steps of the tiny network)."""
    root = tmp_path_factory.mktemp("jobwork")
    plates = write_shot(root / "plates")
    keys = write_shot(root / "fixed", KEYFRAMES, make=lambda f: edit(plate(f)))
    train_tiny(plates, keys, root / "run", "train.steps=20", "train.preview_every=1000")
    return {"plates": plates, "keys": keys, "run": root / "run"}


def _results(kind: str, work: Path) -> set[str]:
    """The names a job of ``kind`` lists as results, from its folder's files (as the local storage lists them)."""
    files = {path.relative_to(work).as_posix(): path for path in work.rglob("*") if path.is_file()}
    return set(jobwork.results(kind, files))


def _folders(shot: dict[str, Path], work: Path, truth: Path | None = None) -> jobwork.JobFolders:
    return jobwork.JobFolders(source=shot["plates"], keyframes=shot["keys"], truth=truth or work / "no-truth",
                              run=shot["run"], work=work)


def test_a_render_with_truth_for_some_frames_scores_those_frames(shot, tmp_path) -> None:
    """The studio uploaded truth for 2 of the 6 frames: the render succeeds and eval.json scores those two."""
    truth = write_shot(tmp_path / "truth", (1002, 1005), make=lambda f: edit(plate(f)))
    folders = _folders(shot, tmp_path / "job", truth)
    settings = {"render.review": False}
    assert not jobwork.render(folders, settings, lambda done: None, lambda: False).stopped
    jobwork.finish_render(folders, settings)
    report = json.loads((tmp_path / "job" / "eval.json").read_text())
    assert report["compared"] == 2 and report["compared_frames"] == [1002, 1005]
    assert [row["frame"] for row in report["frames"]] == [1002, 1005]
    assert report["pairs"] == []  # 1002 and 1005 are not neighbours: no warping error across the gap
    assert all(row["psnr"] > 10 for row in report["frames"])
    assert _results("render", tmp_path / "job") == {f"plate.{f}.png" for f in FRAMES} | {"eval.json"}


def test_a_render_whose_truth_matches_no_rendered_frame_writes_no_scores(shot, tmp_path) -> None:
    truth = write_shot(tmp_path / "truth", (2001,), make=lambda f: edit(plate(1001)))
    folders = _folders(shot, tmp_path / "job", truth)
    settings = {"render.review": False, "render.frames": "1001-1003"}
    jobwork.render(folders, settings, lambda done: None, lambda: False)
    jobwork.finish_render(folders, settings)
    assert sorted(p.name for p in (tmp_path / "job").iterdir()) == ["frames"]


def test_a_suggest_job_before_painting_counts_the_uploaded_keyframes_as_painted(shot, tmp_path) -> None:
    folders = jobwork.JobFolders(source=shot["plates"], keyframes=shot["keys"], truth=tmp_path / "none", run=None,
                                 work=tmp_path / "job")
    seen = []
    result = jobwork.suggest(folders, {"suggest.count": 2}, seen.append)
    answer = json.loads((tmp_path / "job" / "suggest.json").read_text())
    frames = [f["frame"] for f in answer["frames"]]
    assert len(frames) == 2 and not set(frames) & set(KEYFRAMES) and set(frames) <= set(FRAMES)
    assert answer["suggest"]["mode"] == "before" and answer["suggest"]["painted"] == list(KEYFRAMES)
    assert frames == [f.frame for f in result.frames]
    assert seen and seen[-1].stage == "features" and seen[-1].done == seen[-1].total == len(FRAMES)
    assert _results("suggest", tmp_path / "job") == {"suggest.json"}


def test_a_suggest_job_after_a_run_ranks_the_unpainted_frames_with_a_heat_sheet(shot, tmp_path) -> None:
    folders = _folders(shot, tmp_path / "job")
    stages = set()
    jobwork.suggest(folders, {"suggest.sheet_frames": 2}, lambda p: stages.add(p.stage))
    answer = json.loads((tmp_path / "job" / "suggest.json").read_text())
    assert answer["suggest"]["mode"] == "after"
    assert sorted(f["frame"] for f in answer["frames"]) == sorted(set(FRAMES) - set(KEYFRAMES))
    assert [f["rank"] for f in answer["frames"]] == [1, 2, 3]
    assert all(f["predicted_error"] is not None for f in answer["frames"])
    sheet = tmp_path / "job" / "suggest.png"
    assert sheet.read_bytes().startswith(b"\x89PNG") and {"features", "flips", "sheet"} <= stages
    assert _results("suggest", tmp_path / "job") == {"suggest.json", "suggest.png"}
    assert not (shot["run"] / "suggest.png").exists()  # written in the job's folder, never in the run's
