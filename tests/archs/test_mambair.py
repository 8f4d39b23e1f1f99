"""MambaIR's own promises: identity before training, an exact four-direction scan with a global reach,
the same scan in TorchScript and ONNX, and clear option errors."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from arch_inputs import frames, perturbed, tiny_options

from shotfit.archs import build_network
from shotfit.archs.mambair import SS2D, _scan_pieces, _selective_scan_export, _selective_scan_pscan
from shotfit.errors import ConfigError
from shotfit.infer.tiling import tiled_forward

TINY = tiny_options("mambair")


def mambair(**options) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network("mambair", **{**TINY, **options})




def scan_inputs(length: int, batch: int = 2, directions: int = 4, channels: int = 3, state: int = 2):
    gen = torch.Generator().manual_seed(2)
    u = torch.randn(batch, length, directions, channels, generator=gen)
    delta = torch.rand(batch, length, directions, channels, generator=gen) * 0.5
    A = -torch.rand(state, directions, channels, generator=gen) * 2
    Bm = torch.randn(batch, length, directions, state, generator=gen)
    Cm = torch.randn(batch, length, directions, state, generator=gen)
    D = torch.randn(directions, channels, generator=gen)
    return u, delta, A, Bm, Cm, D


def step_by_step(u, delta, A, Bm, Cm, D):
    """Mamba's S6 recurrence one position at a time: h = exp(delta A) h + delta B u, y = C . h + D u."""
    A = A.permute(1, 2, 0)  # (K, D, N) as Mamba writes it
    h = torch.zeros(*u.shape[:1], *A.shape, dtype=u.dtype)
    ys = []
    for t in range(u.shape[1]):
        h = torch.exp(delta[:, t, ..., None] * A) * h + (delta[:, t] * u[:, t])[..., None] * Bm[:, t, :, None, :]
        ys.append((h * Cm[:, t, :, None, :]).sum(-1) + D * u[:, t])
    return torch.stack(ys, dim=1)


def test_untrained_residual_net_returns_its_input():
    x = frames(2, 3, 37, 53)
    with torch.no_grad():
        y = mambair().eval()(x)
    assert (y - x).abs().max() < 1e-4


@pytest.mark.parametrize("length", [1, 37, 300])
@pytest.mark.parametrize("chunk", [4, 64])
def test_parallel_scan_is_the_recurrence_in_powers_of_two_pieces(length, chunk):
    inputs = scan_inputs(length)
    torch.testing.assert_close(_selective_scan_pscan(*inputs, chunk), step_by_step(*inputs), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("length", [1, 37, 300])
@pytest.mark.parametrize("chunk", [5, 64])
def test_exportable_scan_is_the_same_recurrence(length, chunk):
    inputs = scan_inputs(length)
    torch.testing.assert_close(_selective_scan_export(*inputs, chunk), step_by_step(*inputs), rtol=1e-4, atol=1e-5)


def test_scan_pieces_are_powers_of_two_up_to_the_chunk():
    assert _scan_pieces(9216, 1 << 14) == [8192, 1024]
    assert _scan_pieces(37, 16) == [16, 16, 4, 1]
    assert _scan_pieces(0, 16) == []


def edit(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The network's edit before the tanh, which saturates a perturbed net's small differences away."""
    captured = []
    hook = net.conv_last.register_forward_hook(lambda module, inputs, output: captured.append(output))
    with torch.no_grad():
        net(x)
    hook.remove()
    return captured[0]


def test_first_and_last_pixels_reach_each_other_through_the_scans():
    # one block reaches 7 pixels by convolution; with the channel attention's gains held constant,
    # only the forward scans carry the top-left pixel to the bottom right, and the reversed ones back
    net = perturbed(mambair(depths=[1])).eval()
    with torch.no_grad():
        gain = net.groups[0].blocks[0].conv_block[-1].gain
        gain[1].weight.zero_()
        gain[3].weight.zero_()
    x = frames(1, 3, 12, 12)
    for moved_at, seen_at in [((0, 0), (11, 11)), ((11, 11), (0, 0))]:
        moved = x.clone()
        moved[0, :, moved_at[0], moved_at[1]] += 0.5
        diff = (edit(net, moved) - edit(net, x)).abs()
        assert diff[0, :, seen_at[0], seen_at[1]].max() > 1e-7, f"{moved_at} does not reach {seen_at}"


def test_transposing_the_frame_swaps_the_row_and_column_scans():
    # a transposed frame read row by row is the frame read column by column: swapping the two
    # directions' parameters (and transposing the conv kernels) must give the transposed output
    net = perturbed(mambair()).eval()
    swapped = copy.deepcopy(net)
    with torch.no_grad():
        for module in swapped.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.copy_(module.weight.transpose(-1, -2).clone())
            if isinstance(module, SS2D):
                for param in [module.x_proj_weight, module.dt_proj_weight, module.dt_proj_bias, module.D]:
                    param.copy_(param[[1, 0, 3, 2]])
                module.A_log.copy_(module.A_log[:, [1, 0, 3, 2]])
    x = frames(1, 3, 7, 11)
    torch.testing.assert_close(edit(swapped, x.transpose(2, 3)), edit(net, x).transpose(2, 3), rtol=1e-4, atol=1e-4)
    assert (edit(swapped, x) - edit(net, x)).abs().max() > 1e-2  # the directions do differ


def test_scan_gradients_are_the_recurrence_gradients_across_pieces():
    inputs = [t.double().requires_grad_() for t in scan_inputs(37)]
    (_selective_scan_pscan(*inputs, 8) ** 2).sum().backward()
    pieces = [t.grad for t in inputs]
    for t in inputs:
        t.grad = None
    (step_by_step(*inputs) ** 2).sum().backward()
    for name, got, expected in zip(["u", "delta", "A", "B", "C", "D"], pieces, [t.grad for t in inputs]):
        torch.testing.assert_close(got, expected, msg=f"gradient of {name}")


def test_tiles_render_with_the_declared_overlap():
    net = perturbed(mambair()).eval()
    assert net.size_multiple == 1 and 2 * net.tile_overlap <= net.max_tile
    x = frames(1, 3, 40, 300)
    with torch.no_grad():
        whole = net(x)
    tiled = tiled_forward(net, x, tile=2 * net.tile_overlap)
    assert tiled.shape == whole.shape
    # the scans are global, so tiles match the frame closely but not exactly
    assert (tiled - whole).abs().max() < 1e-1


def test_script_matches_eager_in_training_mode_too():
    net = perturbed(mambair()).train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(net)
    x = frames(2, 3, 11, 13)
    torch.testing.assert_close(scripted(x), net(x))


def test_onnx_export_keeps_height_and_width_dynamic(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net = perturbed(mambair()).eval()
    path = tmp_path / "mambair.onnx"
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, frames(1, 3, 37, 53), str(path), dynamo=False, input_names=["image"],
                          output_names=["edited"], dynamic_axes={"image": axes, "edited": axes}, opset_version=17)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for size in [(37, 53), (64, 48), (1, 1)]:
        x = frames(1, 3, *size)
        with torch.no_grad():
            expected = net(x).numpy()
        assert abs(session.run(None, {"image": x.numpy()})[0] - expected).max() < 1e-4


def test_plain_output_may_change_channel_count():
    net = mambair(in_channels=3, out_channels=1, residual=False).eval()
    with torch.no_grad():
        y = net(frames(1, 3, 20, 30))
    assert y.shape == (1, 1, 20, 30)
    assert y.abs().max() < 1 and y.std() > 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"out_channels": 1}, r"residual=True needs in_channels == out_channels \(got 3 and 1\)"),
        ({"depths": []}, r"depths must be a list of 1 to 16 block counts, got \[\]"),
        ({"depths": [2, 0]}, r"depths\[1\] must be an integer from 1 to 64, got 0"),
        ({"depths": [2, 65]}, r"depths\[1\] must be an integer from 1 to 64, got 65"),
        ({"depths": [1] * 17}, r"depths must be a list of 1 to 16 block counts, got \[1, 1,"),
        ({"depths": 2}, r"depths must be a list of 1 to 16 block counts, got 2"),
        ({"embed_dim": 0}, r"embed_dim must be an integer from 1 to 1024, got 0"),
        ({"embed_dim": 100000}, r"embed_dim must be an integer from 1 to 1024, got 100000"),
        ({"d_state": 0}, r"d_state must be an integer from 1 to 64, got 0"),
        ({"expand": 0.1}, r"expand must be a number from 0.25 to 4.0, got 0.1"),
        ({"squeeze_factor": 0}, r"squeeze_factor must be an integer of at least 1, got 0"),
        ({"compress_ratio": 1.5}, r"compress_ratio must be an integer of at least 1, got 1.5"),
    ],
)
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(ConfigError, match=message) as caught:
        mambair(**options)
    assert "\n" not in str(caught.value) and "'mambair'" in str(caught.value)



def test_bfloat16_network_scans_in_float32_and_keeps_white():
    net = mambair().eval().to(torch.bfloat16)
    x = torch.ones(1, 3, 8, 8, dtype=torch.bfloat16)
    with torch.no_grad():
        y = net(x)
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, x)
