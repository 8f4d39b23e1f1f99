"""SwinIR's own promises: identity before training, the paper's shifted windows, a reach that tiles can trust, option errors."""

from __future__ import annotations

import pytest
import torch
from arch_inputs import frames, perturbed, tiny_options

from shotfit.archs import build_network
from shotfit.archs.swinir import WindowAttention, reach
from shotfit.errors import ConfigError

TINY = tiny_options("swinir")


def swinir(**options) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network("swinir", **{**TINY, **options})




def reference_attention(attn: WindowAttention, x: torch.Tensor) -> torch.Tensor:
    """(Shifted) window attention as the SwinIR authors' code computes it: roll, partition, an image of regions for the mask."""
    batch, height, width, channels = x.shape
    size, shift, heads, tokens = attn.window_size, attn.shift, attn.num_heads, attn.window_size**2

    def partition(image: torch.Tensor) -> torch.Tensor:
        image = image.reshape(image.shape[0], height // size, size, width // size, size, image.shape[-1])
        return image.permute(0, 1, 3, 2, 4, 5).reshape(-1, tokens, image.shape[-1])

    windows = partition(torch.roll(x, (-shift, -shift), (1, 2)) if shift else x)
    qkv = attn.qkv(windows).reshape(-1, tokens, 3, heads, channels // heads).permute(2, 0, 3, 1, 4)
    scores = (qkv[0] * attn.scale) @ qkv[1].transpose(-2, -1)
    coords = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + size - 1
    index = relative[..., 0] * (2 * size - 1) + relative[..., 1]
    scores = scores + attn.relative_position_bias_table[index.reshape(-1)].reshape(tokens, tokens, heads).permute(2, 0, 1)
    if shift:
        regions = torch.zeros(1, height, width, 1)
        spans = (slice(0, -size), slice(-size, -shift), slice(-shift, None))
        for number, (rows, cols) in enumerate((r, c) for r in spans for c in spans):
            regions[:, rows, cols, :] = number
        region = partition(regions).squeeze(-1)
        mask = (region[:, None, :] - region[:, :, None]).ne(0).float() * -100.0
        scores = (scores.reshape(batch, -1, heads, tokens, tokens) + mask[None, :, None]).reshape(-1, heads, tokens, tokens)
    out = (scores.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(-1, tokens, channels)
    out = attn.proj(out).reshape(batch, height // size, width // size, size, size, channels)
    out = out.permute(0, 1, 3, 2, 4, 5).reshape(batch, height, width, channels)
    return torch.roll(out, (shift, shift), (1, 2)) if shift else out


def test_untrained_residual_net_returns_its_input():
    x = frames(2, 3, 37, 53)
    with torch.no_grad():
        y = swinir().eval()(x)
    assert (y - x).abs().max() < 1e-4


@pytest.mark.parametrize("shift", [0, 2])
@pytest.mark.parametrize("size", [(12, 16), (4, 8), (4, 4)])
@pytest.mark.parametrize("grad", [True, False], ids=["training", "inference"])
def test_window_attention_matches_the_papers_code(shift, size, grad):
    torch.manual_seed(0)
    attn = perturbed(WindowAttention(dim=6, window_size=4, num_heads=2, shift=shift), 0.5)
    x = torch.randn(2, *size, 6)
    with torch.set_grad_enabled(grad):
        torch.testing.assert_close(attn(x), reference_attention(attn, x), atol=1e-5, rtol=1e-5)


def test_inference_and_training_paths_agree():
    net = perturbed(swinir(), 0.05).eval()
    x = frames(1, 3, 21, 30)
    with torch.no_grad():
        fused = net(x)
    torch.testing.assert_close(fused, net(x).detach(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("window_size", "depths"), [(4, [2, 2]), (4, [3]), (8, [2, 2])])
def test_reach_is_the_measured_receptive_field(window_size, depths):
    # float64 and no tanh saturation, so a zero gradient means "does not depend"
    torch.manual_seed(0)
    net = perturbed(swinir(window_size=window_size, depths=depths, num_heads=2), 0.2).double()
    side = 2 * reach(window_size, depths) + 3 * window_size
    furthest = 0
    for place in range(window_size):
        x = (frames(1, 3, side, side) * 0.8).double().requires_grad_()
        centre = side // 2 // window_size * window_size + place
        net(x)[0, :, centre, centre].sum().backward()
        rows, cols = torch.nonzero(x.grad.abs().sum((0, 1)), as_tuple=True)
        furthest = max(furthest, int((rows - centre).abs().max()), int((cols - centre).abs().max()))
    assert furthest == reach(window_size, depths)
    assert net.tile_overlap * 7 / 16 >= furthest + 1  # tiled_forward trusts 7/16 of the overlap


def test_shifted_windows_never_wrap_round_the_frame():
    # one group (reach 9 < 15): without the mask, the roll would let the bottom rows reach the top row
    torch.manual_seed(0)
    net = perturbed(swinir(depths=[2], num_heads=2), 0.2).double()
    x = (frames(1, 3, 16, 16) * 0.8).double().requires_grad_()
    net(x)[0, :, 0, :].sum().backward()
    assert x.grad[..., 10:, :].abs().max() == 0
    assert x.grad[..., :9, :].abs().max() > 0


def test_windows_follow_the_window_size():
    assert swinir(window_size=4).size_multiple == 4
    assert swinir(window_size=6, num_heads=1).size_multiple == 6
    with torch.no_grad():
        assert swinir(window_size=6, num_heads=1, residual=False).eval()(frames(1, 3, 13, 9)).shape == (1, 3, 13, 9)


def test_plain_output_may_change_channel_count():
    net = swinir(in_channels=3, out_channels=1, residual=False).eval()
    with torch.no_grad():
        y = net(frames(1, 3, 20, 30))
    assert y.shape == (1, 1, 20, 30)
    assert y.abs().max() < 1 and y.std() > 0


def test_masks_and_indices_are_not_saved_with_the_weights():
    state = swinir().state_dict()
    assert not [name for name in state if name.endswith(("_mask", "_index"))]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"out_channels": 1}, r"residual=True needs in_channels == out_channels \(got 3 and 1\)"),
        ({"embed_dim": 0}, r"embed_dim must be an integer from 1 to 1024, got 0"),
        ({"depths": 2}, r"depths must be a list of 1 to 16 integers, got 2"),
        ({"depths": []}, r"depths must be a list of 1 to 16 integers, got \[\]"),
        ({"depths": [2, 0]}, r"depths\[1\] must be an integer from 1 to 64, got 0"),
        ({"num_heads": [2]}, r"num_heads must be an integer or a list as long as depths \(2\), got \[2\]"),
        ({"num_heads": 4}, r"embed_dim 6 must be divisible by num_heads 4"),
        ({"num_heads": [2, 0]}, r"num_heads\[1\] must be an integer from 1 to 6, got 0"),
        ({"window_size": 1}, r"window_size must be an integer from 2 to 64, got 1"),
        ({"mlp_ratio": 0}, r"mlp_ratio must be a number from 0.25 to 8.0, got 0"),
    ],
)
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(ConfigError, match=message) as caught:
        swinir(**options)
    assert str(caught.value).startswith("architecture 'swinir': ") and "\n" not in str(caught.value)
