"""``shotfit suggest`` as an artist meets it: cuts respected, painted frames never suggested again, the same
answer twice, a broken frame ranked first after a run, the contact sheet of the worst frames, one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import shots
from shots import assert_unchanged, fails, snapshot, succeeds, write_shot

from shotfit import api
from shotfit.engine.preview import GAP, LABEL_HEIGHT
from shotfit.files import SHEET_MARK
from shotfit.suggest.sheet import CELL_WIDTH

SCENE_ONE, SCENE_TWO = range(1001, 1013), range(1013, 1021)
BROKEN = 6  # of the ten-frame shot the run is trained on


@pytest.fixture(autouse=True)
def _process_state():
    yield from shots.isolated_process_state()


def two_scenes(frame: int) -> np.ndarray:
    """A blob drifting over a blue-red ramp (1001-1012), then a cut to a striped orange scene (1013-1020)."""
    y, x = np.mgrid[0:48, 0:64].astype(np.float32)
    if frame in SCENE_ONE:
        blob = 0.3 * np.exp(-((x - 10 - 3 * (frame - 1001)) ** 2 + (y - 24) ** 2) / 40)
        image = np.stack([0.2 + 0.5 * x / 64 + blob, 0.3 + blob, 0.6 - 0.3 * x / 64 + blob], -1)
    else:
        image = np.stack([0.7 - 0.4 * y / 48, 0.5 + 0.2 * np.sin(x / 5 + (frame - 1013) / 3), 0.1 + 0 * x], -1)
    return np.clip(image, 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shot(tmp_path_factory.mktemp("scenes") / "plate", [*SCENE_ONE, *SCENE_TWO], make=two_scenes)


def suggested(result: api.SuggestResult) -> list[int]:
    return [f.frame for f in result.frames]


def test_every_cut_segment_gets_a_frame(plate: Path):
    result = api.suggest(api.SuggestRequest(plate, count=2, device="cpu"))
    assert result.cuts == (1013,)
    assert result.segments == ((1001, 1012), (1013, 1020))
    assert sorted(f in SCENE_ONE for f in suggested(result)) == [False, True]
    assert [f.segment for f in result.frames] == [1, 2]  # the longer segment first


def test_painted_frames_count_as_chosen_and_are_never_suggested(plate: Path, tmp_path: Path):
    fixed = write_shot(tmp_path / "fixed", [1004, 1009], make=lambda f: 1 - two_scenes(f))
    one = api.suggest(api.SuggestRequest(plate, count=1, have=fixed, device="cpu"))
    assert suggested(one)[0] in SCENE_TWO  # scene one is painted already: the uncovered scene comes first
    five = api.suggest(api.SuggestRequest(plate, count=5, have=fixed, device="cpu"))
    assert not {1004, 1009} & set(suggested(five))
    assert five.painted == (1004, 1009)


def test_the_same_shot_gives_the_same_answer_byte_for_byte(plate: Path):
    succeeds("suggest", "--source", plate, "--count", "4", "--json", "a.json", "--device", "cpu")
    result = succeeds("suggest", "--source", plate, "--count", "4", "--json", "b.json", "--device", "cpu")
    assert Path("a.json").read_bytes() == Path("b.json").read_bytes()
    answer = json.loads(Path("a.json").read_text())
    assert answer["cuts"] == [1013] and len(answer["frames"]) == 4
    assert all(str(f["frame"]) in result.stdout for f in answer["frames"])
    assert "cuts before frames 1013" in result.stdout
    # its own list may be written again; an artist's file of the same name may not
    succeeds("suggest", "--source", plate, "--count", "2", "--json", "a.json", "--device", "cpu")
    assert len(json.loads(Path("a.json").read_text())["frames"]) == 2


def test_a_small_count_says_which_segments_are_left_bare(plate: Path):
    result = api.suggest(api.SuggestRequest(plate, count=1, device="cpu"))
    assert result.uncovered == (2,)
    shown = succeeds("suggest", "--source", plate, "--count", "1", "--device", "cpu").stdout
    assert "no frame painted or suggested in segments 1013-1020" in shown


def broken_shot(frame: int) -> np.ndarray:
    if frame == BROKEN:  # a frame the keyframes teach nothing about: noise
        return np.random.default_rng(0).random((shots.HEIGHT, shots.WIDTH, 3), dtype=np.float32)
    return shots.disc_plate(frame)


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("broken")
    plate = write_shot(root / "plate", range(1, 11), make=broken_shot)
    keys = write_shot(root / "keys", (1, 10), make=lambda f: shots.grade(broken_shot(f)))
    shots.train_tiny(plate, keys, root / "run", steps=10)
    return plate, root / "run"


@pytest.mark.slow
def test_after_a_run_the_broken_frame_ranks_first_and_leads_the_contact_sheet(broken_run: tuple[Path, Path],
                                                                             tmp_path: Path):
    plate, run = broken_run
    result = api.suggest(api.SuggestRequest(plate, run=run, sheet=tmp_path / "worst.png", sheet_frames=3,
                                            json_path=tmp_path / "ranked.json", device="cpu"))
    ranked = suggested(result)
    assert ranked[0] == BROKEN
    assert sorted(ranked) == list(range(2, 10))  # every unpainted frame, no keyframe
    assert result.frames[0].predicted_error > 1.5
    data = (tmp_path / "worst.png").read_bytes()
    assert SHEET_MARK.encode() in data
    sheet = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    cell_h = round(shots.HEIGHT * CELL_WIDTH / shots.WIDTH)
    assert sheet.shape == (LABEL_HEIGHT + 3 * (cell_h + LABEL_HEIGHT + GAP) + GAP, 3 * CELL_WIDTH + 4 * GAP, 3)
    # the first row's source cell is the broken frame's plate, the nearest of the shot's frames
    top = 2 * LABEL_HEIGHT
    cell = sheet[top:top + cell_h, GAP:GAP + CELL_WIDTH].astype(np.float32) / 255

    def distance(frame: int) -> float:
        scaled = cv2.resize(broken_shot(frame), (CELL_WIDTH, cell_h), interpolation=cv2.INTER_AREA)
        return float(np.abs(scaled - cell).mean())

    assert min(range(2, 10), key=distance) == BROKEN and distance(BROKEN) < 0.01
    assert [f["frame"] for f in json.loads((tmp_path / "ranked.json").read_text())["frames"]] == ranked


@pytest.mark.slow
def test_after_a_run_the_cli_writes_the_sheet_in_the_run_and_a_count_keeps_the_worst(broken_run, tmp_path: Path):
    plate, run = broken_run
    local = tmp_path / "run"
    shutil.copytree(run, local)
    result = succeeds("suggest", "--source", plate, "--run", local, "--count", "2", "--device", "cpu")
    assert (local / "suggest.png").is_file()
    assert f"contact sheet: {local / 'suggest.png'}" in result.stdout
    shown = api.suggest(api.SuggestRequest(plate, run=local, count=2, device="cpu"))
    assert suggested(shown)[0] == BROKEN and len(shown.frames) == 2
    # painted since the run: counted with its keyframes, never ranked
    fixed = write_shot(tmp_path / "fixed", [BROKEN], make=lambda f: shots.grade(broken_shot(f)))
    later = api.suggest(api.SuggestRequest(plate, run=local, have=fixed, device="cpu"))
    assert later.painted == (1, BROKEN, 10) and sorted(suggested(later)) == [2, 3, 4, 5, 7, 8, 9]


@pytest.mark.parametrize(("args", "message"), [
    (["--count", "0"], "count must be at least 1 (got 0) (--count)"),
    (["--count", "-3"], "count must be at least 1 (got -3) (--count)"),
    (["--count", "21"], "count 21 is more than the 20 frames of '{plate}' not painted yet (--count)"),
    ([], "suggesting frames before a run needs how many (count) (--count)"),
    (["--count", "2", "--strategy", "random"], "unknown strategy 'random' (known: cover, farthest) (--strategy)"),
    (["--count", "2", "--json", "{plate}/list.json"], "suggestion list '{plate}/list.json' is inside the source "
     "folder '{plate}/': choose another path (shotfit never writes among the plates) (--json)"),
    (["--count", "2", "--json", "notes.json"], "'notes.json' already exists and was not made by shotfit: choose "
     "another path (shotfit never replaces a file it did not write) (--json)"),
    (["--count", "2", "--sheet", "worst.png"], "a contact sheet is drawn from a run: give the run folder too (--sheet)"),
])
def test_user_errors_are_one_line_and_write_nothing(plate: Path, tmp_path: Path, args: list[str], message: str):
    Path("notes.json").write_text('{"the artist": "notes"}')
    before, plates = snapshot(tmp_path), snapshot(plate)
    line = fails("suggest", "--source", plate, *[a.format(plate=plate) for a in args], "--device", "cpu")
    assert line == f"shotfit: {message.format(plate=plate)}"
    assert_unchanged(before, tmp_path)
    assert_unchanged(plates, plate)


def test_an_empty_folder_and_a_painted_frame_outside_the_shot_are_one_line(plate: Path, tmp_path: Path):
    Path("empty").mkdir()
    assert fails("suggest", "--source", "empty", "--count", "2").startswith("shotfit: 'empty/' holds no frames")
    write_shot(Path("fixed"), [1004, 2001, 2002], make=two_scenes)
    assert fails("suggest", "--source", plate, "--count", "2", "--have", "fixed") == (
        f"shotfit: painted frames 'fixed' hold frames 2001, 2002 that '{plate}' lacks (--have)")
    assert fails("suggest", "--source", plate, "--count", "2", "--have", "gone") == (
        "shotfit: 'gone' does not exist (--have)")
