"""NAFNet's own promises: identity before training, TLC's local pooling, finite reach, clear option errors."""

from __future__ import annotations

import json

import pytest
import torch
from arch_inputs import frames, perturbed, tiny_options

from shotfit.archs import build_network, count_parameters, resolve_network_args
from shotfit.archs.nafnet import local_mean
from shotfit.errors import ConfigError
from shotfit.infer.tiling import tiled_forward

TINY = tiny_options("nafnet")


def nafnet(**options) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network("nafnet", **{**TINY, **options})




def test_untrained_residual_net_returns_its_input():
    x = frames(2, 3, 37, 53)
    with torch.no_grad():
        y = nafnet().eval()(x)
    assert (y - x).abs().max() < 1e-4


def test_plain_output_may_change_channel_count():
    net = nafnet(in_channels=3, out_channels=1, residual=False).eval()
    with torch.no_grad():
        y = net(frames(1, 3, 20, 30))
    assert y.shape == (1, 1, 20, 30)
    assert y.abs().max() < 1 and y.std() > 0


def test_size_multiple_follows_the_number_of_levels():
    assert nafnet().size_multiple == 4
    assert nafnet(enc_blocks=[], dec_blocks=[]).size_multiple == 1


def test_block_counts_may_be_lists_or_tuples_and_survive_json():
    as_lists = resolve_network_args("nafnet", TINY)
    as_tuples = {**as_lists, "enc_blocks": (1, 1), "dec_blocks": (1, 1)}
    saved = json.loads(json.dumps(as_tuples))
    assert saved["enc_blocks"] == [1, 1]
    assert count_parameters(build_network("nafnet", **saved)) == count_parameters(build_network("nafnet", **as_tuples))


def test_more_blocks_mean_more_parameters():
    assert count_parameters(nafnet(middle_blocks=3)) > count_parameters(nafnet(middle_blocks=0))
    assert count_parameters(nafnet(enc_blocks=[2, 0])) > count_parameters(nafnet(enc_blocks=[1, 0]))


def brute_force_local_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """TLC's window: centred, slid inside the frame at its edges, clipped to the frame if larger."""
    height, width = x.shape[-2:]
    rows, cols = min(window, height), min(window, width)
    out = torch.empty_like(x)
    for i in range(height):
        top = min(max(i - (window - 1) // 2, 0), height - rows)
        for j in range(width):
            left = min(max(j - (window - 1) // 2, 0), width - cols)
            out[..., i, j] = x[..., top : top + rows, left : left + cols].mean((-2, -1))
    return out


@pytest.mark.parametrize(("size", "window"), [((9, 14), 4), ((10, 13), 5), ((7, 3), 8), ((6, 6), 1), ((1, 1), 3)])
def test_local_mean_averages_the_window_inside_the_frame(size, window):
    x = frames(2, 3, *size).double()
    torch.testing.assert_close(local_mean(x, window), brute_force_local_mean(x, window))


def test_local_mean_keeps_float32_precision_on_large_frames():
    # a bright ramp across a wide frame: one prefix sum along the row would lose about 1e-5 here
    x = (frames(1, 2, 8, 3000) + torch.linspace(0, 40, 3000)).float()
    expected = local_mean(x.double(), 64)
    assert (local_mean(x, 64).double() - expected).abs().max() < 2e-5
    assert local_mean(x, 64).dtype == torch.float32


@pytest.mark.filterwarnings("ignore:.*torch.jit.trace.*deprecated")
def test_traced_local_mean_gives_the_same_numbers_at_other_sizes():
    # the ONNX exporter traces: its graph splits the blocks by reshape where eager code unfolds
    traced = torch.jit.trace(lambda x: local_mean(x, 8), frames(1, 2, 20, 28))
    for size in [(17, 25), (9, 9), (3, 5), (40, 33)]:
        x = (frames(2, 2, *size) + torch.linspace(0, 40, size[1])).float()
        assert torch.equal(traced(x), local_mean(x, 8)), size


def test_frame_no_larger_than_the_window_gets_the_global_pooling_it_was_trained_with():
    local, paper = perturbed(nafnet(pool_window=64)).eval(), nafnet(pool_window=0).eval()
    local_trained = nafnet(pool_window=64).train()
    paper.load_state_dict(local.state_dict())
    local_trained.load_state_dict(local.state_dict())
    x = frames(1, 3, 40, 64)
    with torch.no_grad():
        expected = paper(x)
        torch.testing.assert_close(local(x), expected, atol=1e-5, rtol=0)
        # in training mode pooling is global whatever the frame size (LayerNorm has no running statistics)
        torch.testing.assert_close(local_trained(frames(1, 3, 40, 200)), paper(frames(1, 3, 40, 200)))


def test_local_pooling_bounds_the_reach_and_global_pooling_does_not():
    x = frames(1, 3, 16, 256)
    changed = x.clone()
    changed[..., 192:] = -changed[..., 192:]
    local, paper = perturbed(nafnet(pool_window=8)).eval(), nafnet(pool_window=0).eval()
    paper.load_state_dict(local.state_dict())
    with torch.no_grad():
        assert (local(x) - local(changed))[..., :64].abs().max() < 1e-6
        assert (paper(x) - paper(changed))[..., :64].abs().max() > 1e-4


def test_tiles_match_the_whole_frame_at_the_declared_overlap_and_not_at_a_third_of_it():
    net = perturbed(nafnet()).eval()
    x = frames(1, 3, 40, 400)
    with torch.no_grad():
        whole = net(x)
    tile = 2 * net.tile_overlap
    assert (tiled_forward(net, x, tile=tile) - whole).abs().max() < 1e-5
    assert (tiled_forward(net, x, tile=tile, overlap=net.tile_overlap // 3) - whole).abs().max() > 1e-3


def test_tile_overlap_grows_with_the_window():
    overlaps = [nafnet(pool_window=window).tile_overlap for window in (0, 64, 128, 256)]
    assert overlaps == sorted(overlaps) and len(set(overlaps)) == 4


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"out_channels": 1}, r"residual=True needs in_channels == out_channels \(got 3 and 1\)"),
        ({"width": 0}, r"'nafnet': width must be an integer from 1 to 1024, got 0"),
        ({"width": 100000}, r"'nafnet': width must be an integer from 1 to 1024, got 100000"),
        ({"enc_blocks": 2}, r"'nafnet': enc_blocks must be a list of at most 8 block counts, one per level, got 2"),
        ({"enc_blocks": [1, -1]}, r"'nafnet': enc_blocks\[1\] must be an integer from 0 to 64, got -1"),
        ({"dec_blocks": [1, 1.5]}, r"'nafnet': dec_blocks\[1\] must be an integer from 0 to 64, got 1.5"),
        ({"dec_blocks": [1]}, r"'nafnet': enc_blocks and dec_blocks need one entry per level each, got 2 and 1"),
        ({"middle_blocks": -1}, r"'nafnet': middle_blocks must be an integer from 0 to 64, got -1"),
        ({"pool_window": -8}, r"'nafnet': pool_window must be an integer of at least 0, got -8"),
        ({"residual": "yes"}, r"'nafnet': residual must be true or false, got 'yes'"),
    ],
)
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(ConfigError, match=message) as caught:
        nafnet(**options)
    assert "\n" not in str(caught.value)



def test_bfloat16_pools_in_float32_and_keeps_its_dtype():
    net = perturbed(nafnet()).eval()
    x = frames(1, 3, 24, 80)
    with torch.no_grad():
        y = net.to(torch.bfloat16)(x.bfloat16())
        expected = net.float()(x)
    assert y.dtype == torch.bfloat16
    assert (y.float() - expected).abs().max() < 0.1


def test_never_dropout_or_batchnorm_only_layernorm():
    kinds = {type(m).__name__ for m in nafnet().modules()}
    assert "LayerNorm2d" in kinds
    assert not {k for k in kinds if "Dropout" in k or "BatchNorm" in k}
