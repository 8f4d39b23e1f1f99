"""The cut-clip task (``bikes-stylise``): its frames and truth, written the same way twice, and its cuts where
shotfit's own cut detection finds them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.cut_shots import CUT_CLIPS
from bench.face_effects import apply_effect, write_face_shot
from bench.quality_tasks import prepare_task
from shotfit.errors import ShotfitError
from shotfit.io import open_shot
from shotfit.suggest.workflow import plate_colour, read_appearance

BIKES = CUT_CLIPS["bikes"]


def test_the_bikes_task_keys_one_frame_in_the_middle_of_each_shot():
    assert BIKES.keyframes == (14, 52, 106, 161, 214, 245)
    assert list(BIKES.frames) == list(range(250))
    # the shots tile the clip: each starts one frame after the last one ends
    assert all(b[0] == a[1] + 1 for a, b in zip(BIKES.shots, BIKES.shots[1:]))


def test_the_bikes_frames_are_written_with_the_same_bytes_twice(tmp_path, shared_data):
    clip = shared_data / BIKES.path
    # the last frame of the first shot and the first of the second, on either side of the cut
    for out in (tmp_path / "a", tmp_path / "b"):
        keys, truth = write_face_shot("stylise", clip, (14,), (29, 30), out, what="clip")
        assert sorted(p.name for p in keys.iterdir()) == ["bikes.0014.png"]
        assert open_shot(truth).frames == [29, 30]
    for name in ("keyframes/bikes.0014.png", "truth/bikes.0029.png", "truth/bikes.0030.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    plate, edited = open_shot(clip).read(30), open_shot(tmp_path / "a" / "truth").read(30)
    assert np.array_equal(edited, apply_effect("stylise", plate))
    assert np.abs(edited - plate[..., :3]).mean() > 0.02  # a visible edit: about 5 codes on average


def test_the_cut_task_needs_the_shared_footage(tmp_path):
    with pytest.raises(ShotfitError, match=r"the clip '.*bikes.mp4' is not there"):
        prepare_task("bikes-stylise", tmp_path, shared_data=tmp_path / "none")


@pytest.mark.slow
def test_the_bikes_task_has_a_truth_on_every_frame_and_its_cuts_where_shotfit_finds_them(tmp_path, shared_data):
    task = prepare_task("bikes-stylise", tmp_path, shared_data=shared_data)
    assert open_shot(task.truth).frames == list(range(250))
    assert open_shot(task.keyframes).frames == [14, 52, 106, 161, 214, 245]
    assert 161 not in task.scored and 1 in task.scored and len(task.scored) == 123
    with open_shot(task.source) as shot:
        appearance = read_appearance(shot, plate_colour(shot), torch.device("cpu"))
    assert appearance.spans() == BIKES.shots
