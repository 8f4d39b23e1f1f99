"""Out of memory is one line naming what to lower, from real allocations that fail.

The allocations asked for are far beyond any machine (256 TiB, more than a process can address) or,
through the command line, far beyond this one (tens of GiB from settings inside the config's bounds);
the commands run under an address-space limit as well, so that whatever the kernel's overcommit
policy the allocator refuses at once rather than the machine swapping.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import shots
import torch

from shotfit.errors import OutOfMemory, ShotfitError
from shotfit.workflows.memory import out_of_memory_as_error, requested_size

# More than a 48-bit address space holds: refused by every allocator on every machine, at once.
BEYOND_ANY_MACHINE = 2**48
# The commands below get this much address space; their own work needs about a third of it.
ADDRESS_LIMIT = 6 * 2**30


@pytest.fixture(autouse=True)
def _process_state():
    yield from shots.isolated_process_state()


def advice() -> str:
    return "lower data.batch_size (now 1024)"


def test_a_refused_torch_allocation_is_one_line_with_its_size():
    with pytest.raises(OutOfMemory) as caught:
        with out_of_memory_as_error("training", advice):
            torch.empty(BEYOND_ANY_MACHINE, dtype=torch.uint8)
    assert str(caught.value) == ("training ran out of memory (an allocation of 256.0 TiB failed): "
                                 "lower data.batch_size (now 1024)")
    assert caught.value.__suppress_context__  # the allocator's traceback is not chained on


def test_a_refused_numpy_allocation_is_one_line_with_its_size():
    with pytest.raises(OutOfMemory, match=r"^scoring ran out of memory \(an allocation of 256\. TiB failed\): "):
        with out_of_memory_as_error("scoring", advice):
            np.empty(BEYOND_ANY_MACHINE, dtype=np.uint8)


def test_other_errors_pass_through_untouched():
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        with out_of_memory_as_error("training", advice):
            torch.zeros(2, 3) @ torch.zeros(2, 3)  # a bug, not the machine: its traceback is kept
    with pytest.raises(ShotfitError, match="^a user error$"):
        with out_of_memory_as_error("training", advice):
            raise ShotfitError("a user error")


@pytest.mark.parametrize(("message", "size"), [
    ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to "
     "allocate 34359738368 bytes. Error code 12 (Cannot allocate memory)", "32.0 GiB"),
    ("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.19 GiB", "20.00 GiB"),
    ("Failed to allocate memory for requested buffer of size 1073741824", "1.0 GiB"),
    ("MPS backend out of memory", None),
])
def test_the_size_as_each_allocator_says_it(message: str, size: str | None):
    assert requested_size(message) == size


# --- through the command line, with settings inside the config's bounds ------------------------

def run_limited(*args: str | Path) -> tuple[int, list[str], float, int]:
    """``shotfit ARGS`` in a child limited to ADDRESS_LIMIT of address space: (exit status, stderr lines,
    seconds, the child's peak resident memory in bytes)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_LIMIT, ADDRESS_LIMIT))

    started = time.monotonic()
    with tempfile.TemporaryFile() as stderr:
        child = subprocess.Popen([sys.executable, "-m", "shotfit", *map(str, args)], stdout=subprocess.DEVNULL,
                                 stderr=stderr, preexec_fn=limit, env={**os.environ, "OMP_NUM_THREADS": "1"})
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        lines = stderr.read().decode().splitlines()
    return child.returncode, lines, time.monotonic() - started, usage.ru_maxrss * 1024


def noise_shot(folder: Path, size: int, frames: tuple[int, ...] = (1, 2, 3)) -> Path:
    rng = np.random.default_rng(0)
    return shots.write_shot(folder, frames, make=lambda _: rng.random((size, size, 3), dtype=np.float32))


@pytest.mark.slow
def test_training_whose_first_step_needs_more_than_the_machine(tmp_path: Path):
    # 1024 patches of 128x128 through a first convolution 1024 wide: 64 GiB of activations (32 in bf16)
    noise_shot(tmp_path / "src", 128)
    noise_shot(tmp_path / "keys", 128, (1, 3))
    status, lines, seconds, peak = run_limited(
        "train", "--source", "src", "--target", "keys", "--out", "run", "--device", "cpu", "--no-track",
        "--steps", "2", "--set", "model.width=1024", "--set", "model.depth=0", "--set", "data.batch_size=1024",
        "--set", "augment.patch_size=128", "--set", "loss.lpips=0", "--set", "train.threads=1")
    assert status == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith("shotfit: training ran out of memory (an allocation of ")
    assert lines[0].endswith("GiB failed): lower data.batch_size (now 1024), augment.patch_size (now 128) or "
                             "model.width (now 1024)")
    assert seconds < 240 and peak < 3 * 2**30, (seconds, peak)  # refused at once (minutes only on a busy box)


@pytest.mark.slow
def test_rendering_a_frame_larger_than_the_machine_can_hold_whole(tmp_path: Path):
    # a network 1024 wide trained on tiny frames, rendering a 4096x4096 frame in one tile: 64 GiB
    noise_shot(tmp_path / "small", 32)
    noise_shot(tmp_path / "small_keys", 32, (1,))
    shots.train_tiny(tmp_path / "small", tmp_path / "small_keys", tmp_path / "run", "model.width=1024",
                     "model.depth=0", "data.batch_size=1", "augment.patch_size=16", "data.preview_frames=0",
                     steps=1)
    shots.write_shot(tmp_path / "big", (1,), make=lambda _: np.full((4096, 4096, 3), 0.5, np.float32))
    status, lines, seconds, peak = run_limited("render", "--run", "run", "--source", "big", "--out", "out",
                                               "--device", "cpu", "--tile", "4096")
    assert status == 1
    assert lines == ["shotfit: rendering ran out of memory (an allocation of 64.0 GiB failed): render in smaller "
                     "tiles (render.tile, e.g. 512) or on a device with more memory (--tile)"]
    assert seconds < 240 and peak < 3 * 2**30, (seconds, peak)
    assert not Path("out").exists() or not any(Path("out").iterdir())
