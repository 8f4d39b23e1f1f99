"""A render shared out on real local Ray workers: the same bytes as the plain render, only the missing frames
rendered again, a failed chunk in one line with the other frames kept, and the options' mistakes in one line.

The library tests run in this process with a Ray the module starts (as an entry point would); the command's
tests run ``shotfit render`` as a process, which starts (and stops) its own local Ray.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import shots
from shots import FRAMES, fails, plate, render_tiny

from shotfit.errors import ConfigError, ShotfitError
from shotfit.io import read_with_extras

pytestmark = pytest.mark.slow

NAMES = [f"plate.{frame}.png" for frame in FRAMES]


@pytest.fixture(autouse=True)
def _process_state():
    yield from shots.isolated_process_state()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's tiny shot and run (src/, run/), and its plain render (plain/) to compare with."""
    root = shots.copy_trained(tmp_path_factory, tmp_path_factory.mktemp("workers"))
    render_tiny(root / "run", root / "src", root / "plain")
    return root


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray of two CPUs for the module's library tests, in a short folder removed afterwards."""
    yield from shots.local_ray()


def _bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if not path.name.startswith(".")}


def _stamps(folder: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}


# --- the library, before Ray is started -----------------------------------------------------------

@pytest.mark.parametrize(("options", "parameter"), [
    ({"workers": 0}, "workers"), ({"workers": 2, "cpus_per_worker": 0}, "cpus_per_worker"),
    ({"workers": 2, "gpus_per_worker": -1}, "gpus_per_worker"),
], ids=["no-workers", "no-cpus", "negative-gpus"])
def test_worker_settings_out_of_range_are_refused_naming_the_field(trained, tmp_path, options, parameter):
    with pytest.raises(ConfigError) as caught:
        render_tiny(trained / "run", trained / "src", tmp_path / "out", **options)
    assert caught.value.parameter == parameter and "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_workers_without_a_running_ray_say_so_in_one_line(trained, tmp_path):
    import ray  # the test needs to know none runs in this process yet

    if ray.is_initialized():
        pytest.skip("this module's Ray is already running (test order)")
    with pytest.raises(ShotfitError, match="needs Ray running in this process") as caught:
        render_tiny(trained / "run", trained / "src", tmp_path / "out", workers=2)
    assert caught.value.parameter == "workers"


# --- the library, on the module's Ray ------------------------------------------------------------

def test_frames_rendered_by_two_workers_are_byte_identical_to_the_plain_render(trained, ray_local, tmp_path):
    seen = []
    result = render_tiny(trained / "run", trained / "src", tmp_path / "out", workers=2, on_frame=seen.append,
                         review=tmp_path / "review.mp4")
    assert _bytes(tmp_path / "out") == _bytes(trained / "plain")
    assert (result.rendered, result.skipped, result.frames, result.stopped) == (6, 0, FRAMES, False)
    assert sorted(done.frame for done in seen) == list(FRAMES)  # each frame reported once, as it appeared
    assert [done.done for done in seen] == [1, 2, 3, 4, 5, 6] and {done.total for done in seen} == {6}
    assert (tmp_path / "review.mp4").stat().st_size > 0  # written once, after every chunk


def test_rendering_again_after_frames_were_deleted_renders_just_those(trained, ray_local, tmp_path):
    out = tmp_path / "out"
    render_tiny(trained / "run", trained / "src", out, workers=2)
    for name in (NAMES[1], NAMES[4]):
        (out / name).unlink()
    kept = _stamps(out)
    seen = []
    result = render_tiny(trained / "run", trained / "src", out, workers=2, on_frame=seen.append)
    assert (result.rendered, result.skipped) == (2, 4)
    assert [done.frame for done in seen if not done.skipped] in ([1002, 1005], [1005, 1002])
    assert {name: stamp for name, stamp in _stamps(out).items() if name in kept} == kept  # not written again
    assert _bytes(out) == _bytes(trained / "plain")


def test_a_failed_chunk_is_its_one_line_and_the_frames_written_stay(trained, ray_local, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(trained / "src", source)
    whole = (source / NAMES[4]).read_bytes()
    (source / NAMES[4]).write_bytes(whole[: len(whole) // 2])  # frame 1005, in the second chunk
    out = tmp_path / "out"
    with pytest.raises(ShotfitError, match=r"plate\.1005\.png' is not a readable PNG") as caught:
        render_tiny(trained / "run", source, out, workers=2)
    assert "\n" not in str(caught.value)
    written = _bytes(out)
    assert set(NAMES[:3]) <= set(written) and NAMES[4] not in written  # the first chunk finished
    for name, data in written.items():  # whatever stayed is whole, the plain render's bytes
        assert data == (trained / "plain" / name).read_bytes(), name
    (source / NAMES[4]).write_bytes(whole)
    result = render_tiny(trained / "run", source, out, workers=2)
    assert (result.rendered, result.skipped) == (6 - len(written), len(written))
    assert _bytes(out) == _bytes(trained / "plain")


def test_a_worker_no_node_can_hold_is_refused_naming_the_field(trained, ray_local, tmp_path):
    with pytest.raises(ShotfitError, match="no Ray node has 1 CPUs and 1 GPUs") as caught:
        render_tiny(trained / "run", trained / "src", tmp_path / "out", workers=2, gpus_per_worker=1)
    assert caught.value.parameter == "gpus_per_worker"
    assert not any((tmp_path / "out").glob("*.png"))


# --- the command ---------------------------------------------------------------------------------

def _shotfit(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "from shotfit.cli import main; main()", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})


def test_the_command_starts_a_local_ray_and_renders_the_plain_renders_bytes(trained, tmp_path):
    done = _shotfit("render", "--run", trained / "run", "--source", trained / "src", "--out", "out",
                    "--device", "cpu", "--workers", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "rendered 6 frames into out on 2 Ray workers" in done.stdout
    assert _bytes(tmp_path / "out") == _bytes(trained / "plain")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # Ray's session folder is not left here


@pytest.mark.parametrize(("args", "message"), [
    (("--workers", "0"), "shotfit: Invalid value for '--workers'"),
    (("--cpus-per-worker", "0"), "shotfit: Invalid value for '--cpus-per-worker'"),
], ids=["workers", "cpus"])
def test_out_of_range_worker_options_are_one_usage_line(trained, tmp_path, args, message):
    done = _shotfit("render", "--run", trained / "run", "--source", trained / "src", "--out", "out", *args,
                    cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("address", "message"), [
    ("head-node", "Ray address 'head-node' is not auto, ray://HOST:PORT or HOST:PORT (--ray-address)"),
    ("http://head:10001", "Ray address 'http://head:10001' is not auto"),
    ("127.0.0.1:1", "cannot reach the Ray cluster at '127.0.0.1:1' (Connection refused) (--ray-address)"),
], ids=["no-port", "scheme", "refused"])
def test_a_bad_ray_address_is_one_line_naming_the_option(trained, tmp_path, address, message):
    line = fails("render", "--run", trained / "run", "--source", trained / "src", "--out", tmp_path / "out",
                 "--ray-address", address)
    assert message in line and "--ray-address" in line
    assert not (tmp_path / "out").exists()


def test_ctrl_c_keeps_the_frames_written_and_a_rerun_renders_only_the_rest(trained, tmp_path):
    """A shot long enough to interrupt: 40 frames of 384x384 (the run's network is fully convolutional)."""
    source = tmp_path / "big"
    shots.write_shot(source, range(1, 41), make=lambda f: _large(plate(1001 + f % 6)))
    command = [sys.executable, "-c", "from shotfit.cli import main; main()", "render", "--run",
               str(trained / "run"), "--source", str(source), "--out", "out", "--device", "cpu", "--workers", "2"]
    job = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True, env={**os.environ, "COLUMNS": "200"})
    out = tmp_path / "out"
    deadline = time.monotonic() + 240
    while not (out.is_dir() and any(out.glob("*.png"))) and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group: Ray's processes too
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "shotfit: interrupted; everything already written is kept", stderr
    kept = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert 0 < len(kept) < 40
    for name in kept:
        read_with_extras(out / name)  # whole: it decodes
    done = _shotfit(*command[3:], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"rendered {40 - len(kept)} frames, {len(kept)} already there" in done.stdout


def _large(pixels):
    import numpy as np  # the test's frames only

    return np.kron(pixels, np.ones((8, 8, 1), dtype=pixels.dtype))
