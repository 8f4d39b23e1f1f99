"""Rendering a shot through a trained tiny run with ``api.render``: exact, resumable, in the plates' format."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from tiny_runs import EXR_HALF, PNG16, grade, plate, render_tiny, train_tiny, write_shot

from shotfit.errors import FrameError, ShotfitError
from shotfit.io import PixelFormat, read_image, write_image

OLD = 1_000_000_000  # a modification time (2001) that no render of today can leave behind


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("render")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(folder / "home"))
        mp.setenv("TORCH_HOME", str(folder / "home" / ".cache" / "torch"))
        yield folder


@pytest.fixture(scope="module")
def shot(module_dir) -> Path:
    source, _ = write_shot(module_dir / "shot")
    return source


@pytest.fixture(scope="module")
def run(module_dir, shot) -> Path:
    """A tiny network trained 20 steps on an 8-bit shot to a colour grade."""
    out = module_dir / "run"
    train_tiny(shot, shot.parent / "kf", out, "train.preview_every=1000", "train.checkpoint_every=1000", steps=20)
    return out


@pytest.fixture(scope="module")
def exr_run(module_dir) -> tuple[Path, Path]:
    """A tiny network trained 3 steps on a half-float EXR shot with highlights up to 3.8."""
    source, keys = write_shot(module_dir / "exr", frames=(1, 2, 3), keyframes=(1,), fmt=EXR_HALF, scale=4.0)
    out = module_dir / "exr_run"
    train_tiny(source, keys, out, "train.preview_every=1000", "train.checkpoint_every=1000", steps=3)
    return out, source


def files(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# --- exact and resumable ------------------------------------------------------------------------

def test_rendering_twice_gives_bit_identical_frames(run, shot):
    first = render_tiny(run, shot, Path("first"))
    second = render_tiny(run, shot, Path("second"))
    assert first.rendered == second.rendered == 6 and first.skipped == 0
    assert files(Path("first")) == files(shot)
    for name in files(shot):
        assert (Path("first") / name).read_bytes() == (Path("second") / name).read_bytes()


def test_rendered_frames_carry_the_learned_edit_to_unfixed_frames(run, shot):
    render_tiny(run, shot, Path("out"), frames=[3])  # frame 3 was never a keyframe
    rendered, _ = read_image(Path("out/plate.0003.png"))
    source, _ = read_image(shot / "plate.0003.png")
    wanted = grade(plate(3))
    assert np.abs(rendered - wanted).mean() < 0.8 * np.abs(source - wanted).mean()


def test_frames_already_rendered_are_skipped_untouched(run, shot):
    out = Path("out")
    render_tiny(run, shot, out)
    first = {name: (out / name).read_bytes() for name in files(out)}
    for name in first:
        os.utime(out / name, ns=(OLD, OLD))
    (out / "plate.0002.png").unlink()
    (out / "plate.0005.png").unlink()

    reports = []
    result = render_tiny(run, shot, out, on_frame=reports.append)
    assert (result.rendered, result.skipped) == (2, 4)
    assert [(r.frame, r.skipped) for r in reports] == [(1, True), (2, False), (3, True), (4, True),
                                                      (5, False), (6, True)]
    assert files(out) == sorted(first)  # and no temporaries
    for name, data in first.items():
        assert (out / name).read_bytes() == data
        rerendered = name in ("plate.0002.png", "plate.0005.png")
        assert ((out / name).stat().st_mtime_ns == OLD) is not rerendered


@pytest.mark.parametrize(("frames", "expected"), [
    ("2-4", [2, 3, 4]),
    ("1-6x2", [1, 3, 5]),
    ("5", [5]),
    ("5-40", [5, 6]),  # a range past the shot's end renders what exists
    ([6, 2], [2, 6]),  # the Python API takes any order
    ([3, 3], [3]),
])
def test_a_frame_range_renders_only_those_frames(run, shot, frames, expected):
    result = render_tiny(run, shot, Path("out"), frames=frames)
    assert result.rendered == len(expected)
    assert files(Path("out")) == [f"plate.{frame:04d}.png" for frame in expected]


# --- names and formats --------------------------------------------------------------------------

def test_output_names_keep_the_source_names(run, tmp_path):
    for frame, name in [(7, "A003C012_sh010_v2.0007.png"), (8, "A003C012_sh010_v2.0008.png")]:
        write_image(tmp_path / "plate" / name, plate(frame), PixelFormat(".png", "uint8", 3))
    render_tiny(run, tmp_path / "plate", Path("out"))
    assert files(Path("out")) == ["A003C012_sh010_v2.0007.png", "A003C012_sh010_v2.0008.png"]


def test_a_pattern_keeps_its_padding(run, tmp_path):
    for frame in (9, 10, 1001):
        write_image(tmp_path / "plate" / f"sh010.{frame:03d}.png", plate(frame), PixelFormat(".png", "uint8", 3))
    render_tiny(run, tmp_path / "plate" / "sh010.###.png", Path("out"))
    assert files(Path("out")) == ["sh010.009.png", "sh010.010.png", "sh010.1001.png"]


def test_16bit_plates_render_to_16bit_frames(run, tmp_path):
    source, _ = write_shot(tmp_path, frames=(1, 2), keyframes=(), fmt=PNG16)
    render_tiny(run, source, Path("out"))
    for name in files(source):
        pixels, fmt = read_image(Path("out") / name)
        assert fmt == PNG16
        codes = np.rint(pixels * 65535).astype(np.int64)
        assert (codes % 257 != 0).mean() > 0.9  # real 16-bit values, not 8-bit ones widened


def test_half_float_exr_plates_render_to_half_float_exr(exr_run):
    run, source = exr_run
    result = render_tiny(run, source, Path("out"))
    assert result.rendered == 3
    assert files(Path("out")) == files(source)
    for name in files(source):
        pixels, fmt = read_image(Path("out") / name)
        assert fmt == read_image(source / name)[1]  # half, RGB, the plates' compression
        assert fmt.dtype == "half" and fmt.ext == ".exr"
        assert pixels.max() > 2.0  # scene-linear highlights come back above 1.0, not clipped


def test_float_plates_are_refused_by_a_run_trained_on_integer_frames(run, exr_run):
    _, exr_source = exr_run
    with pytest.raises(FrameError) as excinfo:
        render_tiny(run, exr_source, Path("out"))
    assert str(excinfo.value) == (f"source '{exr_source}' holds half frames but run '{run}' was trained on "
                                  "uint8 frames")
    assert not Path("out").exists()


def test_an_output_folder_inside_the_plates_is_refused(run, shot):
    with pytest.raises(ShotfitError, match="inside the source folder"):
        render_tiny(run, shot, shot / "render")
    assert not (shot / "render").exists()


# --- tiles --------------------------------------------------------------------------------------

def test_a_frame_larger_than_the_tile_matches_the_whole_frame_render(run, tmp_path, caplog):
    # 16-bit, so that quantisation (1.5e-5) cannot hide or cause a 1e-3 difference
    source, _ = write_shot(tmp_path, frames=(1, 2), keyframes=(), fmt=PNG16, size=(136, 300))
    render_tiny(run, source, Path("whole"))
    with caplog.at_level(logging.DEBUG, logger="shotfit.infer.tiling"):
        render_tiny(run, source, Path("tiled"), tile=128)  # overlap left unset: the network's reach
    assert "300x136 frame in" in caplog.text  # it really was tiled
    for name in files(source):
        whole, _ = read_image(Path("whole") / name)
        tiled, _ = read_image(Path("tiled") / name)
        plate_pixels, _ = read_image(source / name)
        assert np.abs(whole - plate_pixels).mean() > 0.02  # the network really edits the frame
        assert np.abs(tiled - whole).max() < 1e-3
