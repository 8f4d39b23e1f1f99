"""The attention U-Net's own promises: identity before training, white stays white, clear option errors."""

from __future__ import annotations

import pytest
import torch
from arch_inputs import frames, tiny_options

from shotfit.archs import build_network, count_parameters
from shotfit.errors import ConfigError


def unet(**options) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network("unet_attn", **{**tiny_options("unet_attn"), **options})



def test_untrained_residual_net_returns_its_input():
    x = frames(2, 3, 37, 53)
    with torch.no_grad():
        y = unet().eval()(x)
    assert (y - x).abs().max() < 1e-4


def test_16bit_white_and_black_survive_the_untrained_net():
    x = torch.tensor([-1.0, 1.0]).repeat(1, 3, 4, 2)
    with torch.no_grad():
        y = unet().eval()(x)
    code_values = ((y + 1) / 2 * 65535).round()
    assert torch.equal(code_values, ((x + 1) / 2 * 65535).round())


def test_bfloat16_keeps_white_finite():
    net = unet().eval().to(torch.bfloat16)
    x = torch.ones(1, 3, 8, 8, dtype=torch.bfloat16)
    with torch.no_grad():
        y = net(x)
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, x)


def test_first_step_trains_only_the_zero_initialised_head():
    # with the head at zero no gradient reaches earlier layers yet; they start learning on step two
    net = unet().train()
    net(frames(2, 3, 24, 24)).square().mean().backward()
    assert net.head.weight.grad.abs().sum() > 0 and net.head.bias.grad.abs().sum() > 0
    body = [p.grad for name, p in net.named_parameters() if not name.startswith("head.")]
    assert all(g is None or not g.any() for g in body)


def test_plain_output_may_change_channel_count():
    net = unet(in_channels=3, out_channels=1, residual=False).eval()
    with torch.no_grad():
        y = net(frames(1, 3, 20, 30))
    assert y.shape == (1, 1, 20, 30)
    assert y.abs().max() < 1 and y.std() > 0


@pytest.mark.parametrize("options", [{"upsample": "nearest"}, {"downsample": "avg"}, {"depth": 0}])
def test_optional_layouts_keep_shape(options):
    net = unet(**options, residual=False).eval()
    with torch.no_grad():
        assert net(frames(1, 3, 13, 9)).shape == (1, 3, 13, 9)


def test_size_multiple_follows_depth():
    assert unet(depth=3).size_multiple == 8
    assert unet(depth=0).size_multiple == 1


def test_max_width_caps_the_coarse_levels():
    assert count_parameters(unet(max_width=8)) < count_parameters(unet(max_width=1024))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"out_channels": 1}, r"residual=True needs in_channels == out_channels \(got 3 and 1\)"),
        ({"upsample": "transposed"}, r"upsample 'transposed' is not one of bilinear, nearest"),
        ({"downsample": "stride"}, r"downsample 'stride' is not one of max, avg"),
        ({"depth": -1}, r"depth must be an integer from 0 to 8, got -1"),
        ({"width": 0}, r"width must be an integer from 1 to 1024, got 0"),
    ],
)
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(ConfigError, match=message) as caught:
        unet(**options)
    assert "\n" not in str(caught.value)
