"""Every registered architecture: any frame size, gradients, determinism, scripting, and its options."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

from shotfit.archs import ARCHS, build_network, count_parameters, resolve_network_args
from shotfit.errors import ConfigError

# the smallest options that still exercise every part of each architecture
TINY = {"unet": {"width": 4, "depth": 3}, "unet_attn": {"width": 4, "depth": 3}}
DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def tiny(arch: str, **overrides) -> nn.Module:
    torch.manual_seed(0)
    return build_network(arch, **{**TINY[arch], **overrides})


def perturbed(net: nn.Module) -> nn.Module:
    """Move every parameter off its initial value, so zero-initialised layers pass gradients on."""
    with torch.no_grad():
        for param in net.parameters():
            param.add_(0.2 * torch.randn_like(param))
    return net


def frames(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_every_architecture_has_tiny_test_options():
    assert sorted(TINY) == ARCHS.available()


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
def test_uses_batchnorm_and_never_dropout(arch):
    modules = list(tiny(arch).modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in modules)
    assert not [m for m in modules if isinstance(m, DROPOUT)]


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
