"""``api.export``: TorchScript and ONNX files that reproduce the run's network, say what they need, and are
refused (nothing written) when they do not reproduce it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from arch_inputs import TINY
from shots import write_graded_shot as write_shot

from shotfit import api
from shotfit.archs import ARCHS, build_network
from shotfit.errors import ExportError
from shotfit.io import ColourPipeline, colour_of_run, read_image
from shotfit.runs.folder import load_state, save_state
from shotfit.runs.record import RunInfo

onnxruntime = pytest.importorskip("onnxruntime", reason="ONNX export needs shotfit[export]")

ONE_THREAD = ("augment.patch_size=32", "data.batch_size=2", "loss.lpips=0", "train.warmup_steps=0",
              "train.threads=1", "train.preview_every=1000", "train.checkpoint_every=1000")


def train_run(folder: Path, arch: str, steps: int = 1) -> tuple[Path, Path]:
    """A run of ``arch`` (its tiny options) on an 8-bit shot, weights then moved off their initial values.

    A network a step or two from its identity start would agree with any export that gets the plumbing
    right and the arithmetic wrong; perturbed weights make every layer count.
    """
    source, keys = write_shot(folder / "shot")
    options = (f"model.arch={arch}", *(f"model.{k}={json.dumps(v)}" for k, v in TINY[arch].items()), *ONE_THREAD)
    threads = torch.get_num_threads()
    try:
        api.train(source, keys, folder / "run", overrides=options, steps=steps, device="cpu",
                  tracking=api.TrackingOptions(enabled=False))
    finally:
        torch.set_num_threads(threads)
    perturb_weights(folder / "run" / "model.pt")
    return folder / "run", source


def perturb_weights(path: Path) -> None:
    state = load_state(path)
    generator = torch.Generator().manual_seed(3)
    for name, value in state["network"].items():
        if value.is_floating_point():
            noise = 0.05 * torch.randn(value.shape, generator=generator)
            # running variances must stay positive
            state["network"][name] = value + noise.abs() if name.endswith("running_var") else value + noise
    save_state(state, path)


def network_output(run: Path, x: np.ndarray) -> np.ndarray:
    """The run's PyTorch network on (1, C, H, W) [0, 1] input, as [0, 1]: what an exported file must give."""
    state = load_state(run / "model.pt")
    net = build_network(state["arch"], **state["arch_args"])
    net.load_state_dict(state["network"])
    with torch.no_grad():
        return ((net.eval()(torch.from_numpy(x) * 2 - 1) + 1) / 2).numpy()


@pytest.fixture(scope="module")
def unet_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return train_run(tmp_path_factory.mktemp("unet_attn"), "unet_attn", steps=3)


def codes(height: int, width: int, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).random((1, 3, height, width), dtype=np.float32)


def leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


# --- the files reproduce the network ----------------------------------------------------------

def test_onnx_file_runs_in_onnxruntime_like_pytorch_on_any_frame_size(unet_run, tmp_path):
    run, _ = unet_run
    result = api.export(run, "onnx", tmp_path / "beauty.onnx")
    assert result.path == tmp_path / "beauty.onnx" and result.max_difference <= 1e-4
    assert "frame 1 of" in result.checked  # the run's own shot was readable, so a real frame was checked
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"] and [o.name for o in session.get_outputs()] == ["edited"]
    for size in [(40, 48), (33, 71), (5, 7), (1, 1)]:
        x = codes(*size)
        (y,) = session.run(None, {"image": x})
        assert y.shape == x.shape
        assert np.abs(y - network_output(run, x)).max() <= 1e-4, size
    assert leftovers(tmp_path) == []  # the temporary file was renamed, not left beside it


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit / the TorchScript-based ONNX exporter
def test_torchscript_file_loads_without_shotfit_and_matches_pytorch(unet_run, tmp_path):
    run, _ = unet_run
    result = api.export(run, "torchscript", tmp_path / "beauty.pt")
    assert result.max_difference <= 1e-4
    extra = {"shotfit.json": ""}
    scripted = torch.jit.load(str(result.path), _extra_files=extra)
    for size in [(40, 48), (33, 71), (5, 7)]:
        x = codes(*size)
        with torch.no_grad():
            y = scripted(torch.from_numpy(x)).numpy()
        assert np.abs(y - network_output(run, x)).max() <= 1e-5, size
    assert json.loads(extra["shotfit.json"])["shotfit.arch"] == "unet_attn"


def test_metadata_says_what_to_feed_the_file(unet_run, tmp_path):
    run, _ = unet_run
    path = api.export(run, "onnx", tmp_path / "beauty.onnx").path
    meta = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
    props = meta.custom_metadata_map
    run_info = json.loads((run / "run.json").read_text())
    assert props["shotfit.arch"] == "unet_attn"
    assert props["shotfit.version"] == run_info["shotfit"]
    assert props["shotfit.channels"] == "3"
    assert json.loads(props["shotfit.colour"])["colour"] == run_info["colour"]
    assert run_info["colour"]["source"] == run_info["colour"]["working"] == "sRGB Encoded Rec.709 (sRGB)"
    assert props["shotfit.size_multiple"] == "8"  # depth 3
    assert props["shotfit.tile_overlap"] == "128"  # the network's reach, as render would use
    assert "[0, 1]" in props["shotfit.input"]


def test_default_output_is_in_the_run_folder(unet_run):
    run, _ = unet_run
    try:
        assert api.export(run, "onnx").path == run / "model.onnx"
        assert api.export(run, "torchscript").path == run / "model.torchscript.pt"
    finally:
        (run / "model.onnx").unlink(missing_ok=True)
        (run / "model.torchscript.pt").unlink(missing_ok=True)


def test_export_checks_synthetic_frames_when_the_shot_is_gone(tmp_path_factory, tmp_path):
    run, source = train_run(tmp_path_factory.mktemp("moved"), "unet", steps=1)
    for frame in source.iterdir():
        frame.unlink()
    result = api.export(run, "onnx", tmp_path / "m.onnx")
    assert result.checked.startswith("a synthetic 96x64 frame") and result.max_difference <= 1e-4


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("arch", ARCHS.available())
def test_every_architecture_exports_to_both_formats(arch, fmt, tmp_path_factory, tmp_path):
    run, _ = train_run(tmp_path_factory.mktemp(arch), arch)
    result = api.export(run, fmt, tmp_path / f"m.{fmt}")
    assert result.max_difference <= 1e-4
    assert result.path.stat().st_size > 1000


# --- refusal ----------------------------------------------------------------------------------

def test_a_file_that_differs_more_than_the_tolerance_is_refused_and_not_written(unet_run, tmp_path):
    run, _ = unet_run
    out = tmp_path / "out" / "beauty.onnx"
    out.parent.mkdir()
    # onnxruntime's kernels round differently from PyTorch's (about 1e-7 here), so with no tolerance
    # at all the check measures a real difference and refuses
    with pytest.raises(ExportError) as caught:
        api.export(run, "onnx", out, tolerance=0.0)
    message = str(caught.value)
    assert message.startswith("the exported onnx model differs from the PyTorch network by ")
    difference = float(message.split(" by ")[1].split()[0])
    assert 0 < difference < 1e-4
    assert "tolerance 0e+00" in message and f"nothing written to '{out}'" in message and "\n" not in message
    assert os.listdir(out.parent) == []


def test_a_refused_export_keeps_the_previous_file(unet_run, tmp_path):
    run, _ = unet_run
    out = tmp_path / "beauty.onnx"
    out.write_bytes(b"the previous export, shotfit.version 0.1")  # marked as shotfit's: it may be replaced
    with pytest.raises(ExportError):
        api.export(run, "onnx", out, tolerance=0.0)
    assert out.read_bytes() == b"the previous export, shotfit.version 0.1"
    assert leftovers(tmp_path) == []


# --- tiny frames ------------------------------------------------------------------------------

def test_frames_smaller_than_the_padding_repeat_the_edge_in_every_exported_graph(tmp_path):
    """The bug this fixes: the exported graph kept the reflect padding of its example frame."""
    from shotfit.export.metadata import ModelInfo
    from shotfit.export.writers import UnitRange, write_onnx

    torch.manual_seed(0)
    net = build_network("unet", width=4, depth=4)  # pads to multiples of 16
    with torch.no_grad():
        for param in net.parameters():
            param.add_(0.2 * torch.randn_like(param))
    info = ModelInfo("0", "unet", 3, {"transfer": "none"}, 16, 256, None, 1024, "hann")
    write_onnx(UnitRange(net), info, tmp_path / "m.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for size in [(5, 7), (15, 3), (16, 17), (1, 40)]:
        x = codes(*size)
        (y,) = session.run(None, {"image": x})
        with torch.no_grad():
            expected = ((net.eval()(torch.from_numpy(x) * 2 - 1) + 1) / 2).numpy()
        assert np.abs(y - expected).max() <= 1e-4, size  # the frozen padding was off by 1e-1


def test_real_frame_goes_through_the_runs_colour_step(unet_run):
    """The checked frame is what a host would feed: the source frame in the working space, on [0, 1]."""
    from shotfit.export.metadata import ModelInfo
    from shotfit.workflows.exporting import _check_frames

    run, source = unet_run
    info = json.loads((run / "run.json").read_text())
    frames, checked = _check_frames(RunInfo.from_dict(info, "run.json"),
                                    ModelInfo("0", "unet_attn", 3, {"colour": info["colour"]}, 8, 128, None,
                                              1024, "hann"))
    pixels, _ = read_image(next(p for p in sorted(source.iterdir()) if p.name.startswith("plate.0001")))
    expected = (ColourPipeline(colour_of_run(info)).to_network(pixels) + 1) / 2
    assert np.allclose(frames[0][0].transpose(1, 2, 0), expected, atol=1e-7)
    assert [f.shape[2:] for f in frames[1:]] == [(37, 53), (5, 7)]
