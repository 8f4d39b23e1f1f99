"""Atomic writes leave whole files or nothing, and shotfit never writes among the plates."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from shotfit import files
from shotfit.errors import ShotfitError
from shotfit.files import (
    atomic_path,
    ensure_writable_folder,
    partial_name,
    refuse_inside,
    remove_stale_partials,
    write_bytes_atomic,
    write_text_atomic,
)


def listing(folder) -> list[str]:
    """Every entry, hidden ones included (temporaries start with a dot)."""
    return sorted(os.listdir(folder))


# --- atomic writes ------------------------------------------------------------------------------

def test_atomic_text_write_leaves_only_the_file(tmp_path):
    write_text_atomic(tmp_path / "metrics.json", "{\"steps\": 3}\n")
    assert (tmp_path / "metrics.json").read_text() == "{\"steps\": 3}\n"
    assert listing(tmp_path) == ["metrics.json"]


def test_atomic_write_replaces_an_existing_file_whole(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"old weights")
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert listing(tmp_path) == ["model.pt"]


def test_atomic_write_creates_missing_folders(tmp_path):
    write_bytes_atomic(tmp_path / "run" / "checkpoints" / "step_000010.pt", b"x")
    assert (tmp_path / "run" / "checkpoints" / "step_000010.pt").read_bytes() == b"x"


def test_temporary_is_hidden_beside_the_target_and_keeps_the_suffix(tmp_path):
    with atomic_path(tmp_path / "plate.0042.exr") as temp:
        assert temp.parent == tmp_path
        assert temp.name.startswith(".") and temp.suffix == ".exr"
        assert temp.exists()  # created up front, so two writers never share one
        assert not (tmp_path / "plate.0042.exr").exists()  # nothing at the target until the end
        temp.write_bytes(b"pixels")
    assert (tmp_path / "plate.0042.exr").read_bytes() == b"pixels"
    assert listing(tmp_path) == ["plate.0042.exr"]


def test_failure_while_writing_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "config.yaml"
    target.write_text("train:\n  steps: 10\n")
    with pytest.raises(RuntimeError, match="encoder crashed"):
        with atomic_path(target) as temp:
            temp.write_text("train:\n  ste")  # half written when the crash comes
            raise RuntimeError("encoder crashed")
    assert target.read_text() == "train:\n  steps: 10\n"
    assert listing(tmp_path) == ["config.yaml"]


def test_interrupt_while_writing_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as temp:
            temp.write_bytes(b"ne")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert listing(tmp_path) == ["model.pt"]


def test_failure_without_an_old_file_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "final.png"):
            raise ValueError("bad pixels")
    assert listing(tmp_path) == []


def test_a_rename_that_fails_is_a_one_line_error_naming_the_file(tmp_path):
    (tmp_path / "out.png").mkdir()  # a folder where the file should go: the rename cannot replace it
    with pytest.raises(ShotfitError) as excinfo:
        write_bytes_atomic(tmp_path / "out.png", b"png")
    message = str(excinfo.value)
    assert message.startswith(f"cannot write '{tmp_path / 'out.png'}' (")
    assert "\n" not in message
    assert listing(tmp_path) == ["out.png"]
    assert (tmp_path / "out.png").is_dir()


def test_the_file_and_then_its_rename_reach_the_disk(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    def replace(source, target):
        events.append(("replace", str(source)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with atomic_path(tmp_path / "plate.0042.png") as temp:
        temp.write_bytes(b"pixels")
    # the bytes before the rename (else a power cut can leave an empty file under the name), the folder after
    assert events == [("fsync", str(temp)), ("replace", str(temp)), ("fsync", str(tmp_path))]


# --- temporaries a killed process leaves -----------------------------------------------------------

def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _host() -> str:
    return "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())


def test_a_temporary_names_its_host_and_process(tmp_path):
    name = partial_name(tmp_path / "plate.0042.exr")
    assert name.startswith(f".plate.0042.partial-{_host()}-{os.getpid()}-") and name.endswith(".exr")


def test_only_temporaries_of_dead_processes_are_removed(tmp_path):
    dead, host = _dead_pid(), _host()
    old = 1_000_000_000  # 2001
    names = {
        "dead": f".plate.0001.partial-{host}-{dead}-0a1b2c3d.png",
        "live": f".plate.0002.partial-{host}-{os.getpid()}-0a1b2c3d.png",
        "other host, fresh": ".plate.0003.partial-render07-1234-0a1b2c3d.png",
        "other host, a day old": ".plate.0004.partial-render07-1234-0a1b2c3d.png",
        "the user's": ".notes.partial.txt",
        "no suffix": f".metrics.partial-{host}-{dead}-0a1b2c3d",
    }
    for what, name in names.items():
        (tmp_path / name).write_bytes(b"half")
        if what == "other host, a day old":
            os.utime(tmp_path / name, (old, old))
    (tmp_path / f".run.partial-{host}-{dead}-0a1b2c3d").mkdir()  # a folder: not one of atomic_path's files
    (tmp_path / "plate.0001.png").write_bytes(b"a frame")
    removed = remove_stale_partials(tmp_path)
    gone = {"dead", "other host, a day old", "no suffix"}
    assert sorted(path.name for path in removed) == sorted(names[what] for what in gone)
    left = sorted(os.listdir(tmp_path))
    assert left == sorted([names[w] for w in names if w not in gone] + [f".run.partial-{host}-{dead}-0a1b2c3d",
                                                                        "plate.0001.png"])
    assert remove_stale_partials(tmp_path / "not here") == []


def test_a_foreign_host_temporary_goes_once_older_than_the_limit(tmp_path, monkeypatch):
    (tmp_path / ".plate.0003.partial-render07-1234-0a1b2c3d.png").write_bytes(b"half")
    assert remove_stale_partials(tmp_path) == []
    monkeypatch.setattr(files, "FOREIGN_PARTIAL_AGE_S", -1.0)
    assert len(remove_stale_partials(tmp_path)) == 1


# --- never among the plates ---------------------------------------------------------------------

@pytest.mark.parametrize("out", ["plate", "plate/", "plate/render", "plate/a/b", "./plate/../plate/render"])
def test_output_inside_or_equal_to_the_plates_is_refused(tmp_path, out):
    (tmp_path / "plate").mkdir()
    with pytest.raises(ShotfitError) as excinfo:
        refuse_inside(out, "plate")
    message = str(excinfo.value)
    assert message == (f"output folder '{out}' is inside the source folder 'plate/': choose another folder "
                       "(shotfit never writes among the plates)")
    assert excinfo.value.parameter == "out"


def test_the_refusal_names_what_the_folder_holds(tmp_path):
    with pytest.raises(ShotfitError, match="inside the keyframes folder 'kf/'"):
        refuse_inside("kf/run", "kf", "keyframes")


def test_absolute_and_relative_spellings_of_one_folder_are_refused(tmp_path):
    (tmp_path / "plate").mkdir()
    with pytest.raises(ShotfitError):
        refuse_inside(tmp_path / "plate" / "out", "plate")


def test_a_link_into_the_plates_is_refused(tmp_path):
    (tmp_path / "plate").mkdir()
    (tmp_path / "renders").symlink_to(tmp_path / "plate")
    with pytest.raises(ShotfitError):
        refuse_inside("renders", "plate")


@pytest.mark.parametrize("out", ["render", "plate_render", "plates", "../elsewhere", "."])
def test_siblings_parents_and_look_alike_names_are_allowed(tmp_path, out):
    (tmp_path / "plate").mkdir()
    refuse_inside(out, "plate")  # no error


# --- writable folders ---------------------------------------------------------------------------

def test_ensure_writable_folder_creates_nested_folders(tmp_path):
    folder = ensure_writable_folder(tmp_path / "a" / "b")
    assert folder.is_dir()


def test_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "render").write_text("not a folder")
    with pytest.raises(ShotfitError) as excinfo:
        ensure_writable_folder("render")
    assert str(excinfo.value) == "output folder 'render/' is a file, not a folder"


def test_a_file_in_the_path_is_named(tmp_path):
    (tmp_path / "render").write_text("not a folder")
    with pytest.raises(ShotfitError) as excinfo:
        ensure_writable_folder("render/shot")
    assert str(excinfo.value) == "cannot create folder 'render/shot/' (Not a directory)"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_folder_is_named(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(ShotfitError) as excinfo:
            ensure_writable_folder(folder)
        assert str(excinfo.value) == f"folder '{folder}/' is not writable (Permission denied)"
        with pytest.raises(ShotfitError, match="cannot create folder"):
            ensure_writable_folder(folder / "sub")
    finally:
        folder.chmod(0o755)
