"""The render-time network: BatchNorm folded, channels-last, reduced precision only within one code value."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from shotfit.archs import build_network
from shotfit.errors import ConfigError
from shotfit.infer import predictor as predictor_module
from shotfit.infer.optimize import InferenceNetwork, code_difference, fold_batchnorm, resolve_precision
from shotfit.infer.predictor import Predictor
from shotfit.infer.tiling import tiled_forward
from shotfit.io import ColourPipeline, PixelFormat, resolve_colour

PNG8 = PixelFormat(".png", "uint8", 3)
PNG16 = PixelFormat(".png", "uint16", 3)
EXR_HALF = PixelFormat(".exr", "half", 3)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def trained_like(arch: str = "unet_attn") -> nn.Module:
    """A small network whose BatchNorm statistics and last layer are far from their initial values."""
    torch.manual_seed(0)
    net = build_network(arch, width=8, depth=2)
    net.train()
    with torch.no_grad():
        for _ in range(3):  # running statistics of real-looking activations, not the (0, 1) defaults
            net(torch.rand(2, 3, 32, 32) * 1.6 - 0.8)
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        nn.init.normal_(net.head.weight, std=0.2)
    return net.eval()


def frame(height: int = 37, width: int = 53, seed: int = 1) -> torch.Tensor:
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_folding_keeps_the_function_and_removes_every_batchnorm():
    net = trained_like()
    folded = fold_batchnorm(net)
    x = frame()
    with torch.no_grad():
        assert (folded(x) - net(x)).abs().max() < 1e-5
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # the original is untouched


def test_inference_network_matches_fp32_and_keeps_tiling_declarations():
    net = trained_like()
    runner = InferenceNetwork(net, "fp32")
    assert runner.size_multiple == net.size_multiple
    x = frame(300, 200)
    with torch.no_grad():
        whole = net(x)
        y = runner(x)
        tiled = tiled_forward(runner, x, tile=128)
    assert y.dtype == torch.float32 and y.is_contiguous(memory_format=torch.channels_last)
    assert (y - whole).abs().max() < 1e-5
    assert (tiled - whole).abs().max() < 1e-5  # tiles still match the whole frame


def test_bf16_is_close_but_not_exact():
    net = trained_like()
    x = frame()
    with torch.no_grad():
        exact = net(x)
        reduced = InferenceNetwork(net, "bf16")(x)
    difference = (reduced - exact).abs().max()
    assert 0 < difference < 0.1


def test_auto_precision_is_fp32_on_the_cpu_and_fp16_for_8_bit_on_cuda():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("auto", cpu, PNG8) == "fp32"
    assert resolve_precision("auto", cuda, PNG8) == "fp16"
    assert resolve_precision("auto", cuda, PNG16) == "fp32"
    assert resolve_precision("auto", cuda, EXR_HALF) == "fp32"
    assert resolve_precision("bf16", cpu, PNG16) == "bf16"
    with pytest.raises(ConfigError, match="render.precision = 'fp8' is not one of auto, fp32, tf32, bf16, fp16"):
        resolve_precision("fp8", cpu, PNG8)


def test_code_difference_counts_the_codes_a_file_would_hold():
    ref = np.full((2, 2, 3), 100 / 255, np.float32)
    assert code_difference(ref, ref, PNG8) == 0
    assert code_difference(ref + 0.4 / 255, ref, PNG8) == 0  # rounds to the same code
    assert code_difference(ref + 1.0 / 255, ref, PNG8) == 1
    assert code_difference(ref + 2.0 / 255, ref, PNG8) == 2
    assert code_difference(ref + 1.0 / 255, ref, PNG16) == pytest.approx(257)
    half = np.full((2, 2, 3), 3.0, np.float32)
    assert code_difference(half + np.spacing(np.float16(3.0)), half, EXR_HALF) == 1


class Sensitive(nn.Module):
    """Output = 20 * red - 19.9 * green: bf16's rounding of the input moves it by several 8-bit codes."""

    size_multiple = 1

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.mix.weight.zero_()
            self.mix.weight[:, 0] = 20.0
            self.mix.weight[:, 1] = -19.9

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(x).clamp(-1, 1)


def grey_frame() -> np.ndarray:
    values = np.linspace(0.3, 0.7, 40 * 30, dtype=np.float32).reshape(30, 40, 1)
    return np.repeat(values, 3, axis=2)


def predictor(net: nn.Module, precision: str, fmt: PixelFormat = PNG8) -> Predictor:
    return Predictor(net, ColourPipeline(resolve_colour(fmt)), torch.device("cpu"), precision=precision, out_format=fmt)


def test_auto_goes_back_to_fp32_when_reduced_precision_moves_a_code(monkeypatch, caplog):
    # auto never picks bf16 on the CPU; make it do so here to see the guard work
    monkeypatch.setattr(predictor_module, "resolve_precision", lambda spec, device, fmt: "bf16" if spec == "auto" else spec)
    guarded = predictor(Sensitive(), "auto")
    exact = predictor(Sensitive(), "fp32")
    pixels = grey_frame()
    with caplog.at_level(logging.WARNING):
        first = guarded(pixels)
    assert guarded.code_difference > 1
    assert "rendering in fp32" in caplog.text
    assert guarded.precision == "fp32"
    np.testing.assert_array_equal(first, exact(pixels))
    np.testing.assert_array_equal(guarded(pixels), exact(pixels))  # and every frame after it


def test_an_explicit_reduced_precision_is_kept_with_a_warning(caplog):
    chosen = predictor(Sensitive(), "bf16")
    pixels = grey_frame()
    with caplog.at_level(logging.WARNING):
        out = chosen(pixels)
    assert chosen.precision == "bf16" and chosen.code_difference > 1
    assert "use precision fp32 for exact renders" in caplog.text
    assert np.abs(out - predictor(Sensitive(), "fp32")(pixels)).max() > 1 / 255  # the bf16 frame is kept


def test_reduced_precision_within_one_code_is_kept(monkeypatch, caplog):
    monkeypatch.setattr(predictor_module, "resolve_precision", lambda spec, device, fmt: "bf16" if spec == "auto" else spec)
    identity_like = build_network("unet_attn", width=4, depth=2)  # zero head: the output is the input
    guarded = predictor(identity_like, "auto")
    with caplog.at_level(logging.WARNING):
        guarded(grey_frame())
    assert guarded.precision == "bf16" and guarded.code_difference <= 1
    assert caplog.text == ""


def test_the_default_tile_is_the_devices():
    from shotfit.infer.tile_plan import default_tile

    assert default_tile(0, "cuda", 2160, 3840) == 4096
    assert default_tile(0, "cpu", 1080, 1920) == 1920  # 1080p whole
    assert default_tile(0, "mps", 1080, 2048) == 2048  # 2K whole
    assert default_tile(0, "cpu", 2160, 3840) == 1216  # 4K in tiles
    assert default_tile(512, "cuda", 2160, 3840) == 512
