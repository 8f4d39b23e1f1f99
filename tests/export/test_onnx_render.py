"""``render --engine onnxruntime``: an exported ONNX file renders a shot like the PyTorch network does,
whole or in tiles, on a machine where PyTorch cannot even be imported."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from shots import EXR_HALF, PNG16, render_tiny, train_tiny, write_graded_shot

import shotfit
from shotfit import api
from shotfit.infer.tile_plan import tiled_apply
from shotfit.infer.tiling import tiled_forward
from shotfit.io import read_image

pytest.importorskip("onnxruntime", reason="ONNX rendering needs onnxruntime")

# one 16-bit code value, and a little: two float32 reads of neighbouring codes differ by 1.52606e-5
CODE16 = 1.001 / 65535
# A render wider than one tile: 200 px across in 128-px tiles at the tiny network's default overlap (64).
WIDE = (48, 200)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A tiny run trained 20 steps on a 16-bit shot, its ONNX export, and a wider shot to render."""
    folder = tmp_path_factory.mktemp("onnx_render")
    source, keys = write_graded_shot(folder / "shot", fmt=PNG16)
    train_tiny(source, keys, folder / "run", "train.preview_every=1000", "train.checkpoint_every=1000", steps=20)
    api.export(folder / "run", "onnx")
    wide, _ = write_graded_shot(folder / "wide", frames=(1, 2), keyframes=(), fmt=PNG16, size=WIDE)
    return folder / "run", source, wide


def frames_of(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: read_image(p)[0] for p in sorted(folder.iterdir())}


def largest_difference(a: Path, b: Path) -> float:
    first, second = frames_of(a), frames_of(b)
    assert first.keys() == second.keys() and first
    return max(float(np.abs(first[name] - second[name]).max()) for name in first)


def test_onnx_render_equals_the_pytorch_render(exported, tmp_path):
    run, source, _ = exported
    torch_render = render_tiny(run, source, tmp_path / "torch")
    onnx_render = api.render(run, source, tmp_path / "onnx", engine="onnxruntime")
    assert onnx_render.rendered == torch_render.rendered == 6
    assert largest_difference(tmp_path / "torch", tmp_path / "onnx") <= CODE16
    # and the edit is really there: the render is not the source
    assert largest_difference(tmp_path / "onnx", source) > 0.05


def test_tiled_onnx_render_equals_the_whole_frame_and_the_tiled_pytorch_render(exported, tmp_path, caplog):
    run, _, wide = exported
    api.render(None, wide, tmp_path / "whole", engine="onnxruntime", model=run / "model.onnx")
    with caplog.at_level(logging.DEBUG, logger="shotfit.infer.tile_plan"):
        api.render(None, wide, tmp_path / "tiled", engine="onnxruntime", model=run / "model.onnx", tile=128)
    assert "200x48 frame in 3x1 tiles, overlap 64" in caplog.text  # it really was tiled, at the file's overlap
    render_tiny(run, wide, tmp_path / "torch_tiled", tile=128)
    assert largest_difference(tmp_path / "whole", tmp_path / "tiled") <= 1e-3  # README's promise for tiles
    assert largest_difference(tmp_path / "torch_tiled", tmp_path / "tiled") <= CODE16


def test_numpy_tiles_blend_exactly_as_the_pytorch_tiles():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 3, 5, padding=2).eval()
    x = torch.rand(1, 3, 70, 300)

    def run(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(a)).numpy()

    for blend in ("hann", "linear"):
        tiled = tiled_forward(net, x, tile=96, overlap=24, blend=blend).numpy()
        assert np.array_equal(tiled_apply(run, x.numpy(), tile=96, overlap=24, blend=blend), tiled)


def test_render_without_pytorch_installed(exported, tmp_path):
    """The path a render farm without PyTorch takes: a fresh interpreter where `import torch` fails."""
    run, source, _ = exported
    script = ("import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
              "from shotfit.cli import main\n"
              "main()\n")
    args = ["render", "--engine", "onnxruntime", "--model", str(run / "model.onnx"), "--source", str(source),
            "--out", str(tmp_path / "farm")]
    env = {**os.environ, "PYTHONPATH": str(Path(shotfit.__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "rendered 6 frames" in done.stdout
    api.render(run, source, tmp_path / "here", engine="onnxruntime")
    assert largest_difference(tmp_path / "farm", tmp_path / "here") == 0.0


def test_without_pytorch_the_torch_engine_says_so_in_one_line(exported, tmp_path):
    run, source, _ = exported
    script = "import sys; sys.modules['torch'] = None\nfrom shotfit.cli import main\nmain()\n"
    env = {**os.environ, "PYTHONPATH": str(Path(shotfit.__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", script, "render", "--run", str(run), "--source", str(source),
                           "--out", str(tmp_path / "x")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "shotfit: the torch engine needs PyTorch, which is not installed here: render the run exported as onnx "
        "with the onnxruntime engine (--engine)"]
    assert not (tmp_path / "x").exists()


def test_scene_linear_shot_renders_through_its_colour_step(tmp_path):
    """A half-float EXR shot (highlights to 3.8) goes through ACEScct both ways, as the PyTorch path does."""
    source, keys = write_graded_shot(tmp_path / "exr", frames=(1, 2), keyframes=(1,), fmt=EXR_HALF, scale=4.0)
    train_tiny(source, keys, tmp_path / "run", "train.preview_every=1000", "train.checkpoint_every=1000", steps=3)
    api.export(tmp_path / "run", "onnx")
    colour = json.loads((tmp_path / "run" / "run.json").read_text())["colour"]
    assert (colour["source"], colour["working"]) == ("ACEScg", "ACEScct")
    render_tiny(tmp_path / "run", source, tmp_path / "torch")
    api.render(tmp_path / "run", source, tmp_path / "onnx", engine="onnxruntime")
    torch_frames, onnx_frames = frames_of(tmp_path / "torch"), frames_of(tmp_path / "onnx")
    for name, expected in torch_frames.items():
        assert expected.max() > 1.0  # highlights kept
        # half floats: 2**-10 relative is one step
        assert np.allclose(onnx_frames[name], expected, rtol=2 ** -10, atol=1e-4)
