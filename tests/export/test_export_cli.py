"""``shotfit export`` and ``shotfit render --engine onnxruntime`` from the command line: what they print, and
one line naming the file for every mistake, with nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import shots
import torch
from shots import assert_unchanged, fails, snapshot, succeeds

from shotfit.archs import build_network
from shotfit.export.writers import UnitRange
from shotfit.runs.folder import load_state

pytest.importorskip("onnxruntime", reason="ONNX export needs shotfit[export]")


@pytest.fixture(autouse=True)
def _process_state():
    yield from shots.isolated_process_state()


@pytest.fixture
def shot(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """src/, keys/, truth/ and a trained run/ in the test's folder (the current directory)."""
    return shots.copy_trained(tmp_path_factory, tmp_path)


def test_export_then_render_through_onnx(shot: Path):
    result = succeeds("export", "--run", "run", "--format", "onnx", "--out", "beauty.onnx")
    line = result.stdout.strip()
    assert line.startswith("wrote beauty.onnx (onnx); it matches the PyTorch network to ")
    assert "frame 1001 of '" in line  # the run's source was there to check against
    rendered = succeeds("render", "--engine", "onnxruntime", "--model", "beauty.onnx", "--source", "src",
                        "--out", "render")
    assert "rendered 6 frames into render" in rendered.stdout
    assert shots.read_png(Path("render/plate.1003.png")).shape == (shots.HEIGHT, shots.WIDTH, 3)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit / the TorchScript-based ONNX exporter
def test_export_torchscript_to_the_run_folder_by_default(shot: Path):
    result = succeeds("export", "--run", "run", "--format", "torchscript")
    assert result.stdout.startswith("wrote run/model.torchscript.pt (torchscript)")
    scripted = torch.jit.load("run/model.torchscript.pt")
    state = load_state(Path("run/model.pt"))
    network = build_network(state["arch"], **state["arch_args"])
    network.load_state_dict(state["network"])
    frame = torch.from_numpy(shots.plate(1003)).permute(2, 0, 1)[None]  # (1, 3, H, W) in [0, 1]
    with torch.no_grad():
        expected = UnitRange(network)(frame)
        torch.testing.assert_close(scripted(frame), expected, rtol=0, atol=1e-5)


def test_export_refuses_a_file_outside_the_tolerance(shot: Path):
    before = snapshot(shot)
    line = fails("export", "--run", "run", "--format", "onnx", "--out", "beauty.onnx", "--tolerance", "0")
    assert line.startswith("shotfit: the exported onnx model differs from the PyTorch network by ")
    assert line.endswith("(tolerance 0e+00); nothing written to 'beauty.onnx'")
    assert_unchanged(before, shot)


# --- mistakes ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (("--run", "nope", "--format", "onnx"), "shotfit: run folder 'nope' does not exist"),
    (("--run", "run", "--format", "tflite"), "shotfit: unknown export format 'tflite' (known: torchscript, onnx)"),
    (("--run", "src", "--format", "onnx"), "shotfit: 'src' is not a shotfit run folder (no config.yaml)"),
])
def test_export_mistakes_are_one_line(shot: Path, args: tuple[str, ...], message: str):
    before = snapshot(shot)
    assert fails("export", *args, "--out", "m.onnx") == message
    assert_unchanged(before, shot)


def test_export_of_a_run_with_no_weights_yet(shot: Path):
    (shot / "run" / "model.pt").unlink()
    shutil.rmtree(shot / "run" / "checkpoints", ignore_errors=True)
    before = snapshot(shot)
    assert fails("export", "--run", "run", "--format", "torchscript") == (
        "shotfit: run folder 'run' has no model.pt and no checkpoints (has it trained a step yet?)")
    assert_unchanged(before, shot)


def render_onnx(*extra: str) -> list[str]:
    return ["render", "--engine", "onnxruntime", "--source", "src", "--out", "render", *extra]


def test_missing_onnx_file(shot: Path):
    before = snapshot(shot)
    assert fails(*render_onnx("--model", "gone.onnx")) == "shotfit: ONNX model 'gone.onnx' does not exist"
    assert_unchanged(before, shot)


def test_run_without_an_onnx_export(shot: Path):
    before = snapshot(shot)
    assert fails(*render_onnx("--run", "run")) == (
        "shotfit: run 'run' has no model.onnx: export the run as onnx first, or give the model file (--model)")
    assert_unchanged(before, shot)


def test_corrupt_onnx_file(shot: Path):
    Path("bad.onnx").write_bytes(b"\x08\x07not a protobuf at all" * 10)
    before = snapshot(shot)
    line = fails(*render_onnx("--model", "bad.onnx"))
    assert line.startswith("shotfit: 'bad.onnx' is not a readable ONNX model (")
    assert_unchanged(before, shot)


def test_truncated_onnx_file(shot: Path):
    succeeds("export", "--run", "run", "--format", "onnx", "--out", "whole.onnx")
    Path("cut.onnx").write_bytes(Path("whole.onnx").read_bytes()[:2000])
    before = snapshot(shot)
    assert fails(*render_onnx("--model", "cut.onnx")).startswith("shotfit: 'cut.onnx' is not a readable ONNX model (")
    assert_unchanged(before, shot)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit / the TorchScript-based ONNX exporter
def test_onnx_file_not_made_by_shotfit(shot: Path):
    torch.onnx.export(torch.nn.Conv2d(3, 3, 1), (torch.zeros(1, 3, 8, 8),), "foreign.onnx", dynamo=False)
    before = snapshot(shot)
    assert fails(*render_onnx("--model", "foreign.onnx")) == (
        "shotfit: 'foreign.onnx' was not made by 'shotfit export' (no shotfit.version in its metadata)")
    assert_unchanged(before, shot)


def test_unknown_engine(shot: Path):
    before = snapshot(shot)
    assert fails("render", "--run", "run", "--source", "src", "--out", "render", "--engine", "tensorrt") == (
        "shotfit: unknown render engine 'tensorrt' (known: torch, onnxruntime)")
    assert_unchanged(before, shot)


def test_onnx_file_for_other_frames(shot: Path):
    succeeds("export", "--run", "run", "--format", "onnx", "--out", "beauty.onnx")
    shots.write_shot(Path("grey"), make=lambda f: shots.plate(f, channels=1))
    before = snapshot(shot)
    assert fails("render", "--engine", "onnxruntime", "--model", "beauty.onnx", "--source", "grey", "--out",
                 "render") == "shotfit: source 'grey' has 1 channels but 'beauty.onnx' was trained on 3"
    assert_unchanged(before, shot)
