"""Every registered architecture keeps one contract: a Network registered under its own name that declares
its tiling, any frame size, a clear error for a wrong shape, gradients everywhere, determinism,
normalisation without dropout, TorchScript and ONNX export, tiles that match the whole frame at the
declared overlap, and the engine's train / checkpoint / resume / render round trip without knowing
which network it runs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from arch_inputs import TINY, frames, perturbed
from shots import write_graded_shot as write_shot
from torch import nn

from shotfit import api
from shotfit.archs import ARCHS, DeclaresTiling, Network, build_network, count_parameters, resolve_network_args
from shotfit.archs.blocks import MAX_WIDTH
from shotfit.archs.registry import MAX_PARAMETERS
from shotfit.errors import ConfigError
from shotfit.infer.tiling import tiled_forward
from shotfit.runs.folder import load_state

DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
NORMS = (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)  # a network's own LayerNorm2d subclasses nn.LayerNorm
# Networks that cannot be scripted or exported, and why (the test then checks that it still fails,
# so the reason is kept honest).
# Tiled vs whole-frame difference allowed at the declared overlap ([-1, 1] scale, weights perturbed by
# 0.2): networks whose overlap covers their reach match to float rounding (1e-5); the others say why.
TILE_TOLERANCE: dict[str, float] = {
    "mambair": 0.1,  # its scans run along whole rows and columns: no overlap is exact (0.04 here)
    # 16 * size_multiple covers the reach that matters in trained nets, not the worst case (65 pixels
    # at depth 3 against 56 trusted): 2e-4 here, and the tiling promise is 1e-3
    "unet": 1e-3,
    "unet_attn": 1e-3,
}
# The engine round trip's settings: tiny patches and batches, no LPIPS, one thread.
ENGINE_TINY = ("augment.patch_size=32", "data.batch_size=2", "loss.lpips=0", "train.warmup_steps=0",
               "train.lr=0.01", "train.threads=1", "train.preview_every=1000")


def tiny(arch: str, **overrides) -> nn.Module:
    torch.manual_seed(0)
    return build_network(arch, **{**TINY[arch], **overrides})




@pytest.mark.parametrize("arch", ARCHS.available())
def test_is_a_network_registered_under_its_own_name_with_tiny_options(arch):
    cls = ARCHS.get(arch)
    assert issubclass(cls, Network) and cls.arch_name == arch
    assert cls.tiny_options, f"{arch} declares no tiny_options for the tests"
    assert set(cls.tiny_options) <= set(resolve_network_args(arch, {}))
    assert tiny(arch).arch == arch


@pytest.mark.parametrize("arch", ARCHS.available())
def test_declares_its_tiling(arch):
    net = tiny(arch)
    assert isinstance(net, DeclaresTiling)
    assert type(net.size_multiple) is int and net.size_multiple >= 1
    assert type(net.tile_overlap) is int and net.tile_overlap >= 0
    # a tile at max_tile must still fit the declared overlap on both sides
    assert net.max_tile is None or (type(net.max_tile) is int and net.max_tile >= 2 * net.tile_overlap)


@pytest.mark.parametrize("arch", ARCHS.available())
@pytest.mark.parametrize(("shape", "shown"), [((1, 4, 8, 8), "[1, 4, 8, 8]"), ((3, 8, 8), "[3, 8, 8]")])
def test_wrong_input_shape_is_named_in_the_error(arch, shape, shown):
    with pytest.raises(ValueError) as caught:
        tiny(arch)(torch.zeros(*shape))
    assert str(caught.value) == f"{arch} expects input of shape (B, 3, H, W), got {shown}"


@pytest.mark.parametrize("arch", ARCHS.available())
@pytest.mark.parametrize("size", [(37, 53), (5, 7), (1, 1)])
def test_forward_keeps_any_frame_size_and_range(arch, size):
    net = perturbed(tiny(arch)).eval()
    x = frames(2, 3, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    assert y.abs().max() <= 1.0


@pytest.mark.parametrize("arch", ARCHS.available())
def test_every_parameter_gets_a_gradient(arch):
    net = perturbed(tiny(arch)).train()
    net(frames(2, 3, 24, 20)).square().mean().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize("arch", ARCHS.available())
def test_eval_mode_is_bit_identical_between_runs(arch):
    net = perturbed(tiny(arch)).eval()
    x = frames(1, 3, 40, 33)
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


@pytest.mark.parametrize("arch", ARCHS.available())
def test_normalises_and_never_drops_out(arch):
    modules = list(tiny(arch).modules())
    assert any(isinstance(m, NORMS) for m in modules)
    assert not [m for m in modules if isinstance(m, DROPOUT) or "drop" in type(m).__name__.lower()]


@pytest.mark.parametrize("arch", ARCHS.available())
def test_untrained_residual_network_returns_its_input(arch):
    x = frames(1, 3, 21, 30)
    with torch.no_grad():
        assert (tiny(arch).eval()(x) - x).abs().max() < 1e-4


@pytest.mark.parametrize("arch", ARCHS.available())
def test_tiles_at_the_declared_overlap_match_the_whole_frame(arch):
    net = perturbed(tiny(arch)).eval()
    # the smallest tile the overlap allows, so each tile trusts only 7/16 of the overlap past a seam;
    # 1.5 tiles a side puts seams across both directions and a corner where four tiles meet
    tile = 2 * net.tile_overlap
    x = frames(1, 3, tile + tile // 2, tile + tile // 2 + 8)
    with torch.no_grad():
        whole = net(x)
    tiled = tiled_forward(net, x, tile=tile, overlap=net.tile_overlap)
    assert (tiled - whole).abs().max() <= TILE_TOLERANCE.get(arch, 1e-5)


@pytest.mark.parametrize("arch", ARCHS.available())
def test_torchscript_matches_eager_on_any_size(arch):
    net = perturbed(tiny(arch)).eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated", category=FutureWarning)
        scripted = torch.jit.script(net)
    for size in [(37, 53), (5, 7)]:
        x = frames(1, 3, *size)
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), net(x))


@pytest.mark.parametrize("arch", ARCHS.available())
def test_onnx_export_runs_in_onnxruntime_on_any_size(arch, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime", reason="ONNX export needs shotfit[export]")
    net = perturbed(tiny(arch)).eval()
    path = tmp_path / f"{arch}.onnx"
    axes = {0: "batch", 2: "height", 3: "width"}

    def export() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation and tracer notes
            torch.onnx.export(net, frames(1, 3, 32, 40), str(path), dynamo=False, input_names=["image"],
                              output_names=["edited"], dynamic_axes={"image": axes, "edited": axes},
                              opset_version=17)

    export()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # 5x7 is smaller than every network's padding multiple: the exported graph must then repeat the
    # edge as PyTorch does, not keep the reflect padding it saw on the example frame
    for size in [(37, 53), (64, 48), (5, 7)]:
        x = frames(1, 3, *size)
        (y,) = session.run(None, {"image": x.numpy()})
        with torch.no_grad():
            assert abs(torch.from_numpy(y) - net(x)).max() <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS.available())
def test_engine_trains_checkpoints_resumes_and_renders_any_network(arch, tmp_path):
    source, keys = write_shot(tmp_path / "shot", frames=range(1, 5), keyframes=(1, 3))
    options = (f"model.arch={arch}", *(f"model.{k}={json.dumps(v)}" for k, v in TINY[arch].items()), *ENGINE_TINY)
    no_tracking = api.TrackingOptions(enabled=False)

    def train(out: Path, resume: bool = False, on_step=None) -> api.TrainSummary:
        return api.train(source, keys, out, overrides=(*options, "train.checkpoint_every=2"), steps=3,
                         resume=resume, device="cpu", tracking=no_tracking, on_step=on_step)

    def interrupt_at_step_3(report) -> None:
        if report.step == 3:
            raise KeyboardInterrupt  # step 3 is lost; the checkpoint of step 2 remains

    train(tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "resumed", on_step=interrupt_at_step_3)
    assert train(tmp_path / "resumed", resume=True).result.steps_done == 3
    straight, resumed = (load_state(tmp_path / name / "model.pt") for name in ("straight", "resumed"))
    assert resumed["arch"] == arch and resumed["arch_args"] == straight["arch_args"]
    assert straight["network"].keys() == resumed["network"].keys()
    assert all(torch.equal(straight["network"][k], resumed["network"][k]) for k in straight["network"])

    whole = api.render(tmp_path / "resumed", source, tmp_path / "render", device="cpu")
    tiled = api.render(tmp_path / "resumed", source, tmp_path / "render_tiled", device="cpu", tile=32,
                       tile_overlap=8)
    assert whole.rendered == tiled.rendered == 4
    assert sorted(p.name for p in (tmp_path / "render").iterdir()) == sorted(p.name for p in source.iterdir())


@pytest.mark.parametrize("arch", ARCHS.available())
def test_resolved_options_rebuild_the_same_network(arch):
    resolved = resolve_network_args(arch, TINY[arch])
    saved = json.loads(json.dumps(resolved))  # a checkpoint stores them as plain JSON
    first, second = build_network(arch, **resolved), build_network(arch, **saved)
    assert {k: v.shape for k, v in first.state_dict().items()} == {k: v.shape for k, v in second.state_dict().items()}
    assert count_parameters(first) == count_parameters(second) > 0


def test_resolved_options_are_complete():
    resolved = resolve_network_args("unet_attn", {"width": 8})
    assert resolved["width"] == 8
    assert {"in_channels", "out_channels", "depth", "residual", "max_width", "upsample", "downsample"} <= set(resolved)


def test_unknown_option_is_one_line_naming_the_known_ones():
    with pytest.raises(ConfigError) as caught:
        resolve_network_args("unet_attn", {"widht": 8})
    message = str(caught.value)
    assert message.startswith("unknown option 'widht' for architecture 'unet_attn' (known: ")
    assert "width" in message and "depth" in message and "\n" not in message


def test_unknown_architecture_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown architecture 'unet_atn' \(known: .*unet_attn"):
        build_network("unet_atn")


def test_count_parameters_counts_trainable_ones_on_request():
    net = tiny("unet_attn")
    total = count_parameters(net)
    assert total == sum(p.numel() for p in net.parameters())
    net.head.requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == total - sum(p.numel() for p in net.head.parameters())


def width_option(arch: str) -> str:
    """The option that sets an architecture's feature channels."""
    return "width" if "width" in resolve_network_args(arch, {}) else "embed_dim"


@pytest.mark.parametrize("arch", ARCHS.available())
def test_a_width_that_would_exhaust_the_machine_is_one_line(arch):
    option = width_option(arch)
    # on the meta device: were the bound lost, the network would be built without memory and the test fail
    with pytest.raises(ConfigError) as caught, torch.device("meta"):
        build_network(arch, **{option: 100000})
    assert str(caught.value) == f"architecture '{arch}': {option} must be an integer from 1 to {MAX_WIDTH}, got 100000"


@pytest.mark.parametrize(("arch", "options", "millions"), [
    ("unet_attn", {"width": 1024, "max_width": 4096, "depth": 8}, "6,232"),
    ("nafnet", {"width": 1024}, "6,904"),
    ("convnext_unet", {"width": 1024, "depths": [2, 2, 2, 2, 2]}, "8,044"),
    ("swinir", {"embed_dim": 1024, "depths": [64] * 16}, "8,762"),
])
def test_options_at_their_bounds_that_multiply_past_the_parameter_cap_are_one_line(arch, options, millions):
    # each option is within its own bound; together they would be tens of GB of weights (meta: see above)
    with pytest.raises(ConfigError) as caught, torch.device("meta"):
        build_network(arch, **options)
    message = str(caught.value)
    assert message.startswith(f"architecture '{arch}': these options make a network of {millions}M parameters, "
                              "more than the 1,000M shotfit builds: lower some of ")
    assert f"{width_option(arch)}=1024" in message and "\n" not in message


def test_the_parameter_count_is_taken_without_drawing_random_numbers():
    # the check builds the network on the meta device first: the seeded weights are those of a plain build
    torch.manual_seed(3)
    checked = build_network("swinir", **TINY["swinir"]).state_dict()
    torch.manual_seed(3)
    plain = ARCHS.get("swinir")(**resolve_network_args("swinir", TINY["swinir"])).state_dict()
    assert all(torch.equal(checked[k], plain[k]) for k in plain)
    assert MAX_PARAMETERS == 1_000_000_000
