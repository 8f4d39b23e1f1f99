"""The weak answers of issue 15: what shotfit did silently or said wrongly, now said in one line.

A 16-bit plate among 8-bit plates, a broken frame already in the output folder, a symlink loop or a
FIFO named like a frame, a source that links to itself, a model file of random bytes, and the
temporaries a killed process leaves: each case as a user meets it on the command line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
import shots
from shots import FRAMES, assert_unchanged, fails, plate, snapshot, succeeds, train_args

OLD = 1_000_000_000  # a modification time (2001) that no render of today can leave behind


@pytest.fixture(autouse=True)
def _process_state():
    yield from shots.isolated_process_state()


@pytest.fixture
def shot(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """src/, keys/, truth/ and a trained run/ in the test's folder (the current directory)."""
    return shots.copy_trained(tmp_path_factory, tmp_path)


def render(*extra: str, source: str = "src", out: str = "render") -> list[str]:
    return ["render", "--run", "run", "--source", source, "--out", out, "--device", "cpu", *extra]


def one_spaced(text: str) -> str:
    """Terminal output with rich's line wrapping undone."""
    return " ".join(text.split())


def name(frame: int) -> str:
    return f"plate.{frame}.png"


@contextlib.contextmanager
def fifo(path: Path) -> Iterator[dict[str, bool]]:
    """A FIFO at ``path`` with a writer waiting on it: ``opened`` says whether anything opened it to read.

    Were shotfit to open it, the writer lets it go at once (end of file) instead of the test hanging. The
    writer waits on a second name of the same FIFO (a hard link beside the test's files), which stays
    when a render replaces ``path`` by a frame; at the end the test opens that name itself to release it.
    """
    handle = Path(".fifo-" + path.name)
    os.mkfifo(handle)
    os.link(handle, path)
    state = {"opened": False, "released": False}

    def writer() -> None:
        with open(handle, "wb"):  # blocks until a reader opens the FIFO
            state["opened"] = not state["released"]

    thread = threading.Thread(target=writer, daemon=True)  # daemon: a hang here can never hold up pytest's exit
    thread.start()
    try:
        yield state
    finally:
        state["released"] = True
        for _ in range(200):  # the writer may not have reached its open yet: hold a reader until it has
            if not thread.is_alive():
                break
            descriptor = os.open(handle, os.O_RDONLY | os.O_NONBLOCK)
            thread.join(timeout=0.05)
            os.close(descriptor)
        handle.unlink()
        assert not thread.is_alive(), "the FIFO's writer was never released"


# --- bit depths ----------------------------------------------------------------------------------

def test_a_16bit_plate_among_8bit_plates_is_named_and_rendered_to_8bit(shot: Path):
    shots.write_png(Path("src") / name(1003), plate(1003), bits=16)
    result = succeeds(*render())
    warning = "source frame 'src/plate.1003.png' is 16-bit but the shot's first frame is 8-bit: rendered to 8-bit"
    assert one_spaced(result.stderr).count(warning) == 1, result.stderr
    assert "plate.1002.png" not in result.stderr  # only the odd frame is named
    assert cv2.imread(f"render/{name(1003)}", cv2.IMREAD_UNCHANGED).dtype.name == "uint8"


# --- what a re-render skips ----------------------------------------------------------------------

def test_a_broken_frame_in_the_output_is_said_and_rendered_again(shot: Path):
    succeeds(*render())
    whole = {frame: Path(f"render/{name(frame)}").read_bytes() for frame in FRAMES}
    for frame in FRAMES:
        os.utime(f"render/{name(frame)}", ns=(OLD, OLD))
    Path(f"render/{name(1002)}").write_bytes(b"")  # a copy that died before its first byte
    Path(f"render/{name(1004)}").write_bytes(whole[1004][: len(whole[1004]) // 2])  # cut short
    result = succeeds(*render())
    stderr = one_spaced(result.stderr)
    assert "'render/plate.1002.png' is empty (0 bytes): rendering it again" in stderr, stderr
    assert "'render/plate.1004.png' is not a readable PNG image (corrupt or truncated): rendering it again" in stderr
    assert "rendered 2 frames, 4 already there into render" in one_spaced(result.stdout)
    for frame in FRAMES:
        path = Path(f"render/{name(frame)}")
        assert path.read_bytes() == whole[frame]
        assert (path.stat().st_mtime_ns == OLD) is (frame not in (1002, 1004))
    assert sorted(os.listdir("render")) == [name(frame) for frame in FRAMES]  # no temporaries


def test_a_fifo_named_like_a_frame_in_the_output_is_never_read(shot: Path):
    Path("render").mkdir()
    with fifo(Path("render") / name(1003)) as state:
        result = succeeds(*render())
    assert not state["opened"], "shotfit opened the FIFO"
    assert "'render/plate.1003.png' is a FIFO, not an image: rendering it again" in one_spaced(result.stderr)
    assert cv2.imread(f"render/{name(1003)}") is not None


# --- entries named like frames that are no frames ------------------------------------------------

@pytest.mark.parametrize("source", ["src", "src/plate.####.png"])
def test_a_symlink_loop_and_a_fifo_among_the_plates_are_named(shot: Path, source: str):
    Path("src", name(1007)).symlink_to(name(1007))  # links to itself
    Path("src", name(1008)).symlink_to("gone.png")
    Path("src", "notes.txt").write_text("not a frame, and not named like one: no word about it")
    with fifo(Path("src") / name(1009)) as state:
        result = succeeds(*render(source=source))
    assert not state["opened"], "shotfit opened the FIFO"
    stderr = one_spaced(result.stderr)
    assert "'src/plate.1007.png' is a symlink loop, not a frame file: skipped" in stderr, stderr
    assert "'src/plate.1008.png' is a broken symlink (to 'gone.png'), not a frame file: skipped" in stderr
    assert "'src/plate.1009.png' is a FIFO, not a frame file: skipped" in stderr
    assert "notes.txt" not in stderr
    assert sorted(os.listdir("render")) == [name(frame) for frame in FRAMES]


def test_a_symlink_loop_among_the_keyframes_is_named_when_training(shot: Path):
    Path("keys", name(1005)).symlink_to(name(1005))
    result = succeeds(*train_args("src", "keys", "new_run", steps=1))
    assert "'keys/plate.1005.png' is a symlink loop, not a frame file: skipped" in one_spaced(result.stderr)


@pytest.mark.parametrize("option", ["--source", "--target"])
def test_a_source_that_links_to_itself_is_called_a_loop(shot: Path, option: str):
    Path("loop").symlink_to("loop")
    Path("dangling").symlink_to("nowhere")
    before = snapshot(shot)
    for link, what in (("loop", "a symlink loop"), ("dangling", "a broken symlink (to 'nowhere')")):
        args = train_args(link, "keys", "new_run") if option == "--source" else train_args("src", link, "new_run")
        assert fails(*args) == f"shotfit: '{link}' is {what}"
    assert fails(*render(source="loop")) == "shotfit: 'loop' is a symlink loop"
    assert_unchanged(before, shot, allowed_new=["loop", "dangling"])


# --- model files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["random bytes", "cut short", "a zip of something else"])
def test_a_model_file_that_is_not_one_is_said_so(shot: Path, damage: str):
    whole = Path("run/model.pt").read_bytes()
    if damage == "random bytes":
        Path("run/model.pt").write_bytes(os.urandom(len(whole)))
    elif damage == "cut short":
        Path("run/model.pt").write_bytes(whole[: len(whole) // 2])
    else:
        Path("run/model.pt").write_bytes(b"PK\x03\x04 only the start of a zip archive")
    before = snapshot(shot)
    line = fails(*render())
    assert line == "shotfit: 'run/model.pt' is not a shotfit model file (damaged, cut short or made by another program)"
    assert "weights_only" not in line
    assert_unchanged(before, shot)


# --- temporaries a killed process leaves ---------------------------------------------------------

WRITER = """
import sys, time
from shotfit.files import atomic_path
with atomic_path(sys.argv[1]) as temp:
    temp.write_bytes(b"half a frame")
    print(temp, flush=True)
    time.sleep(120)
"""


def _writer(target: Path) -> tuple[subprocess.Popen[str], Path]:
    """A process in the middle of an atomic write to ``target``; returns it and its temporary."""
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert process.stdout is not None
    temp = Path(process.stdout.readline().strip())
    assert temp.is_file(), temp
    return process, temp


def test_a_killed_writers_temporary_is_removed_and_a_live_ones_kept(shot: Path):
    succeeds(*render("--frames", "1001-1003"))
    killed, stale = _writer(Path("render") / name(1004))
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    live, busy = _writer(Path("render") / name(1005))  # a second render, still writing its frame
    try:
        assert stale.exists() and busy.exists()
        succeeds(*render("--frames", "1001-1004"))
        assert not stale.exists(), "the killed process's temporary is still there"
        assert busy.exists(), "the temporary of a process still writing was removed"
        assert live.poll() is None
    finally:
        live.kill()
        live.wait()
    succeeds(*render())
    assert sorted(os.listdir("render")) == [name(frame) for frame in FRAMES]


def test_a_killed_trainings_temporary_checkpoint_is_removed_on_resume(shot: Path):
    killed, stale = _writer(Path("run/checkpoints/step_000004.pt"))
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    succeeds(*train_args("src", "keys", "run", "--resume", steps=4))
    assert not stale.exists()
    assert not [p for p in Path("run").rglob("*") if ".partial" in p.name]


@pytest.mark.slow
def test_two_renders_into_one_folder_at_once_both_finish_with_the_same_frames(shot: Path):
    frames = range(1001, 1031)
    shots.write_shot(Path("long"), frames)
    args = [sys.executable, "-m", "shotfit", "render", "--run", "run", "--source", "long", "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    renders = [subprocess.Popen([*args, "--out", "both"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    errors = [render.communicate(timeout=300)[1] for render in renders]
    assert [render.returncode for render in renders] == [0, 0], errors
    succeeds(*render(source="long", out="alone"))
    assert sorted(os.listdir("both")) == sorted(os.listdir("alone")) == [name(frame) for frame in frames]
    for frame in frames:
        assert Path("both", name(frame)).read_bytes() == Path("alone", name(frame)).read_bytes()
