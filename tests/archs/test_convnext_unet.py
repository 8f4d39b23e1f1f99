"""The ConvNeXt U-Net's own promises: identity before training, the paper's block, its reach, clear option errors."""

from __future__ import annotations

import json

import pytest
import torch
from arch_inputs import frames, perturbed, tiny_options
from torch import nn

from shotfit.archs import build_network, count_parameters, resolve_network_args
from shotfit.archs.convnext_unet import ConvNeXtBlock, receptive_radius
from shotfit.errors import ConfigError


def convnext(**options) -> nn.Module:
    torch.manual_seed(0)
    return build_network("convnext_unet", **{**tiny_options("convnext_unet"), **options})




def test_untrained_residual_net_returns_its_input():
    x = frames(2, 3, 37, 53)
    with torch.no_grad():
        y = convnext().eval()(x)
    assert (y - x).abs().max() < 1e-4


def test_first_step_trains_only_the_zero_initialised_head_conv():
    net = convnext().train()
    net(frames(2, 3, 24, 24)).square().mean().backward()
    assert net.head[1].weight.grad.abs().sum() > 0 and net.head[1].bias.grad.abs().sum() > 0
    body = [p.grad for name, p in net.named_parameters() if not name.startswith("head.1.")]
    assert all(g is None or not g.any() for g in body)


def test_defaults_are_few_shot_sized():
    assert 1_000_000 <= count_parameters(build_network("convnext_unet")) <= 8_000_000


def test_blocks_start_with_the_papers_layer_scale_and_expansion():
    blocks = [m for m in convnext(expansion=3).modules() if isinstance(m, ConvNeXtBlock)]
    assert len(blocks) == 1 + 1 + 1 + 1 + 1  # two encoder levels, the bottleneck, two decoder levels
    assert all(torch.equal(b.gamma, torch.full_like(b.gamma, 1e-6)) for b in blocks)
    assert all(b.expand.out_features == 3 * b.expand.in_features for b in blocks)
    assert all(b.dwconv.groups == b.dwconv.in_channels and b.dwconv.kernel_size == (7, 7) for b in blocks)


def test_training_mode_gives_the_eval_output():
    # LayerNorm keeps no running statistics and nothing is dropped, so the preview seen while
    # training is the render
    net = perturbed(convnext())
    x = frames(2, 3, 20, 28)
    with torch.no_grad():
        torch.testing.assert_close(net.train()(x), net.eval()(x), rtol=0, atol=1e-6)


def test_upsampling_never_uses_per_phase_kernels():
    modules = list(convnext().modules())
    assert not [m for m in modules if isinstance(m, (nn.ConvTranspose2d, nn.PixelShuffle))]


@pytest.mark.parametrize("options", [{"depths": [0, 1, 1]}, {"depths": [2]}, {"depths": [0]}, {"kernel_size": 3}])
def test_gradient_measured_reach_is_the_declared_one(options):
    net = perturbed(convnext(**options)).double().eval()
    reach = receptive_radius(options.get("depths", [1, 1, 1]), options.get("kernel_size", 7))
    size = 2 * reach + 2 * net.size_multiple + 4
    worst = 0
    for phase in range(net.size_multiple):  # every position on the downsampling grid
        x = frames(1, 3, size, size).double().requires_grad_()
        centre = reach + net.size_multiple + phase
        net(x)[0, :, centre, centre].sum().backward()
        rows, cols = x.grad.abs().sum((0, 1)).nonzero().unbind(1)
        worst = max(worst, *(centre - rows.min(), rows.max() - centre, centre - cols.min(), cols.max() - centre))
    assert worst == reach
    # tiled_forward trusts a tile 7/16 of the overlap inside its edge (less half a pixel of feather)
    assert 7 / 16 * net.tile_overlap - 0.5 >= reach + 1


def test_size_multiple_and_tile_overlap_follow_depths():
    assert convnext(depths=[1, 1, 1]).size_multiple == 4
    assert convnext(depths=[2]).size_multiple == 1
    assert build_network("convnext_unet").tile_overlap == 352  # reach 147 pixels at the defaults


def test_depths_as_tuple_or_json_list_build_the_same_network():
    resolved = resolve_network_args("convnext_unet", {"width": 4})
    assert resolved["depths"] == (2, 2, 2, 2)
    saved = json.loads(json.dumps(resolved))
    first, second = build_network("convnext_unet", **resolved), build_network("convnext_unet", **saved)
    assert first.state_dict().keys() == second.state_dict().keys()


def test_plain_output_may_change_channel_count():
    net = perturbed(convnext(in_channels=3, out_channels=1, residual=False)).eval()
    with torch.no_grad():
        y = net(frames(1, 3, 20, 30))
    assert y.shape == (1, 1, 20, 30)
    assert y.abs().max() < 1 and y.std() > 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"out_channels": 1}, r"residual=True needs in_channels == out_channels \(got 3 and 1\)"),
        ({"depths": "222"}, r"depths must be a list of 1 to 9 block counts .*got '222'"),
        ({"depths": []}, r"depths must be a list of 1 to 9 block counts"),
        ({"depths": [1] * 10}, r"depths must be a list of 1 to 9 block counts"),
        ({"depths": [1, -1, 2]}, r"depths\[1\] must be an integer from 0 to 64, got -1"),
        ({"depths": [1, 1.5]}, r"depths\[1\] must be an integer from 0 to 64, got 1.5"),
        ({"kernel_size": 4}, r"kernel_size must be odd \(it is centred\), got 4"),
        ({"kernel_size": 33}, r"kernel_size must be an integer from 1 to 31, got 33"),
        ({"expansion": 0}, r"expansion must be an integer from 1 to 16, got 0"),
        ({"layer_scale_init": 2}, r"layer_scale_init must be a number from 0.0 to 1.0, got 2"),
        ({"width": 0}, r"width must be an integer from 1 to 1024, got 0"),
        ({"width": 100000}, r"width must be an integer from 1 to 1024, got 100000"),
    ],
)
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(ConfigError, match=message) as caught:
        convnext(**options)
    assert str(caught.value).startswith("architecture 'convnext_unet': ")
    assert "\n" not in str(caught.value)
