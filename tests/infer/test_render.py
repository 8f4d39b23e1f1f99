"""Rendering a shot through a trained tiny run with ``api.render``: exact, resumable, in the plates' format."""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import OpenEXR
import OpenImageIO as oiio
import pytest
from shots import EXR_HALF, HEIGHT, PNG16, WIDTH, grade, render_tiny, train_tiny
from shots import disc_plate as plate
from shots import write_graded_shot as write_shot

from shotfit.errors import FrameError, ShotfitError
from shotfit.io import PixelFormat, read_image, write_image

OLD = 1_000_000_000  # a modification time (2001) that no render of today can leave behind


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


def test_a_stopped_render_ends_after_the_frame_in_hand_and_a_rerender_completes_it(run, shot):
    reports = []
    result = render_tiny(run, shot, Path("out"), on_frame=reports.append, should_stop=lambda: len(reports) == 2)
    assert result.stopped and (result.rendered, result.skipped) == (2, 0)
    assert result.frames == (1, 2) and files(Path("out")) == ["plate.0001.png", "plate.0002.png"]
    rest = render_tiny(run, shot, Path("out"))
    assert not rest.stopped and (rest.rendered, rest.skipped) == (4, 2)
    render_tiny(run, shot, Path("whole"))
    assert files(Path("out")) == files(Path("whole")) == files(shot)
    for name in files(shot):
        assert (Path("out") / name).read_bytes() == (Path("whole") / name).read_bytes()


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


# --- plates as the pipeline hands them over -----------------------------------------------------

def overscan_plate(path: Path, frame: int, scale: float = 4.0) -> dict:
    """An RGBA half EXR with 4 px of overscan all round a 48x40 format, a Z and an AOV layer, and
    header attributes, written with OpenEXR itself; returns its channels and header."""
    rgb = plate(frame, HEIGHT + 8, WIDTH + 8) * scale
    alpha = (plate(frame, HEIGHT + 8, WIDTH + 8, channels=4)[..., 3] > 0.5).astype(np.float16)
    channels = {"R": rgb[..., 0].astype(np.float16), "G": rgb[..., 1].astype(np.float16),
                "B": rgb[..., 2].astype(np.float16), "A": alpha,
                "Z": np.full((HEIGHT + 8, WIDTH + 8), 10.0 + frame, np.float32),
                "specular.R": (rgb[..., 0] * 0.1).astype(np.float16)}
    header = {"compression": OpenEXR.PIZ_COMPRESSION, "type": OpenEXR.scanlineimage,
              "dataWindow": (np.array([-4, -4], np.int32), np.array([WIDTH + 3, HEIGHT + 3], np.int32)),
              "displayWindow": (np.array([0, 0], np.int32), np.array([WIDTH - 1, HEIGHT - 1], np.int32)),
              "owner": "plate dept", "framesPerSecond": Fraction(25, 1), "studio:shot": "sh010"}
    path.parent.mkdir(parents=True, exist_ok=True)
    OpenEXR.File(dict(header), dict(channels)).write(str(path))  # copies: the binding changes what it is given
    return {"channels": channels, "header": header}


def test_exr_overscan_extra_channels_alpha_and_attributes_survive_a_render(exr_run):
    run, _ = exr_run  # trained on 48x40 RGB half EXRs
    written = {frame: overscan_plate(Path(f"plates/sh010.{frame:04d}.exr"), frame) for frame in (1, 2)}
    result = render_tiny(run, Path("plates/sh010.####.exr"), Path("out"))
    assert result.rendered == 2 and files(Path("out")) == ["sh010.0001.exr", "sh010.0002.exr"]
    for frame, source in written.items():
        part = OpenEXR.File(f"out/sh010.{frame:04d}.exr", separate_channels=True).parts[0]
        header, channels = part.header, part.channels
        for key in ("dataWindow", "displayWindow"):
            assert [c.tolist() for c in header[key]] == [c.tolist() for c in source["header"][key]]
        assert str(header["compression"]).endswith("PIZ_COMPRESSION")
        assert header["owner"] == "plate dept" and header["studio:shot"] == "sh010"
        assert header["framesPerSecond"] == Fraction(25, 1)
        assert sorted(channels) == ["A", "B", "G", "R", "Z", "specular.R"]
        for name in ("A", "Z", "specular.R"):  # untouched, bit for bit
            np.testing.assert_array_equal(channels[name].pixels, source["channels"][name])
        assert channels["R"].pixels.shape == (HEIGHT + 8, WIDTH + 8)  # the overscan was rendered too
        assert channels["R"].pixels.astype(np.float32).max() > 2.0  # scene-linear, not clipped


def test_dpx_plates_render_to_dpx_of_the_same_depth_and_metadata(run, tmp_path):
    (tmp_path / "scans").mkdir()
    for frame in (1, 2):
        spec = oiio.ImageSpec(WIDTH, HEIGHT, 3, "uint16")
        spec.attribute("oiio:BitsPerSample", 10)
        spec.attribute("dpx:Transfer", "Printing density")
        spec.attribute("smpte:TimeCode", "timecode", (0x01000400 + frame, 0))
        output = oiio.ImageOutput.create(str(tmp_path / "scans" / f"scan.{frame:04d}.dpx"))
        output.open(str(tmp_path / "scans" / f"scan.{frame:04d}.dpx"), spec)
        output.write_image(plate(frame))
        output.close()
    render_tiny(run, tmp_path / "scans" / "scan.####.dpx", Path("out"))
    assert files(Path("out")) == ["scan.0001.dpx", "scan.0002.dpx"]
    for frame in (1, 2):
        image = oiio.ImageInput.open(f"out/scan.{frame:04d}.dpx")
        spec = image.spec()
        rendered = image.read_image(0, 0, 0, 3, "float")
        image.close()
        assert spec.get_int_attribute("oiio:BitsPerSample") == 10
        assert spec.getattribute("dpx:Transfer") == "Printing density"
        assert spec.getattribute("dpx:TimeCode") == f"01:00:04:0{frame}"
        wanted, source = grade(plate(frame)), read_image(tmp_path / "scans" / f"scan.{frame:04d}.dpx")[0]
        assert np.abs(rendered - wanted).mean() < 0.8 * np.abs(source - wanted).mean()  # really rendered
        codes = np.rint(rendered * 1023)
        np.testing.assert_allclose(rendered * 1023, codes, atol=0.05)  # 10-bit codes (read back via 16 bits)


def test_holes_in_the_source_are_reported_not_rendered(run, tmp_path, caplog):
    for frame in (1, 2, 3, 6, 7, 9):
        write_image(tmp_path / "plate" / f"p.{frame:04d}.png", plate(frame), PixelFormat(".png", "uint8", 3))
    with caplog.at_level(logging.WARNING, logger="shotfit"):
        result = render_tiny(run, tmp_path / "plate", Path("out"))
    assert f"'{tmp_path}/plate/': frames 4-5, 8 missing (3 frames)" in caplog.text
    assert result.rendered == 6 and result.missing == (range(4, 6), range(8, 9))
    assert result.missing_note() == "frames 4-5, 8 missing (3 frames) from the source"

    ranged = render_tiny(run, tmp_path / "plate", Path("ranged"), frames="2-6")
    assert ranged.missing == (range(4, 6),) and files(Path("ranged")) == ["p.0002.png", "p.0003.png", "p.0006.png"]
    past_the_end = render_tiny(run, tmp_path / "plate", Path("end"), frames="9-20")
    assert past_the_end.missing == () and past_the_end.missing_note() is None


def test_first_and_last_limit_the_render_and_frames_pick_within(run, shot):
    result = render_tiny(run, shot, Path("out"), first=2, last=5)
    assert files(Path("out")) == [f"plate.{f:04d}.png" for f in (2, 3, 4, 5)] and result.rendered == 4
    picked = render_tiny(run, shot, Path("picked"), first=2, last=5, frames="1-6x2")
    assert files(Path("picked")) == ["plate.0003.png", "plate.0005.png"] and picked.rendered == 2


def test_review_movie_of_a_render(run, shot):
    render_tiny(run, shot, Path("out"), frames="1-2")  # frames already there are in the movie too
    result = render_tiny(run, shot, Path("out"), review=Path("review.mp4"))
    assert result.skipped == 2
    with av.open("review.mp4") as container:
        stream = container.streams.video[0]
        frames = [p.to_ndarray(format="rgb24") for p in container.decode(stream)]
    assert len(frames) == 6 and frames[0].shape == (HEIGHT, WIDTH, 3)
    rendered, _ = read_image(Path("out/plate.0003.png"))
    assert np.abs(frames[2] / 255 - rendered).mean() < 0.02


def test_a_review_movie_that_is_not_mp4_is_refused_before_rendering(run, shot):
    with pytest.raises(ShotfitError, match=r"^review movie 'review\.mov' must end in \.mp4"):
        render_tiny(run, shot, Path("out"), review=Path("review.mov"))
    assert not Path("out").exists()


def test_a_review_movie_among_the_plates_is_refused_before_rendering(run, shot):
    with pytest.raises(ShotfitError, match=r"^review movie '.*review\.mp4' is inside the source folder"):
        render_tiny(run, shot, Path("out"), review=shot / "review.mp4")
    assert not Path("out").exists() and not (shot / "review.mp4").exists()
