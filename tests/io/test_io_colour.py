"""The colour shaper: reference ACEScct values, exact inverses, numpy and torch alike."""

from __future__ import annotations

import numpy as np
import pytest

from shotfit.errors import ConfigError
from shotfit.io import TRANSFERS, PixelFormat, from_network, to_network, transfer_for
from shotfit.io.colour import acescct_to_linear, linear_to_acescct

LINEAR = np.concatenate([np.linspace(-0.005, 0.02, 101), np.geomspace(0.02, 200.0, 400), [0.0078125, 1.0]])


@pytest.mark.parametrize(
    ("linear", "code"),
    [
        (0.0, 0.0729055341958355),  # S-2016-001: the toe's offset
        (0.0078125, 0.155251141552511),  # the break point, reached by both segments
        (0.18, 0.4135884),  # mid grey
        (1.0, 0.5547945),  # 9.72 / 17.52
        (2**7.8, 1.0),  # ~222.86: the top of the network's range
    ],
)
def test_acescct_matches_the_specification(linear: float, code: float):
    assert linear_to_acescct(np.float64(linear)) == pytest.approx(code, abs=1e-7)


@pytest.mark.parametrize("transfer", TRANSFERS.available())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_round_trip_is_exact(transfer: str, dtype: type):
    x = LINEAR.astype(dtype) if transfer == "acescct" else np.linspace(0, 1, 256, dtype=dtype)
    y = to_network(x, transfer)
    assert y.dtype == dtype
    np.testing.assert_allclose(from_network(y, transfer), x, rtol=2e-6, atol=1e-7)


def test_acescct_keeps_highlights_inside_the_network_range():
    y = to_network(np.array([0.0, 0.18, 1.0, 16.0, 200.0], np.float32), "acescct")
    assert np.all(np.diff(y) > 0) and y.min() > -1.0 and y.max() < 1.0
    assert y[-1] - y[-2] > 0.1  # 16 and 200 stay far apart instead of both clipping at 1.0


def test_display_data_maps_zero_and_one_to_the_ends():
    np.testing.assert_array_equal(to_network(np.array([0.0, 0.5, 1.0]), "none"), [-1.0, 0.0, 1.0])


def test_inverse_saturates_at_the_largest_half():
    assert acescct_to_linear(np.float32(5.0)) == 65504.0


def test_transfer_follows_the_data():
    assert transfer_for(PixelFormat(".exr", "half", 3)) == "acescct"
    assert transfer_for(PixelFormat(".tif", "float", 3)) == "acescct"
    assert transfer_for(PixelFormat(".png", "uint16", 4)) == "none"


def test_unknown_transfer_and_integer_input():
    with pytest.raises(ConfigError, match=r"unknown colour transfer 'srgb' \(known: acescct, none\)"):
        to_network(np.zeros(3, np.float32), "srgb")
    with pytest.raises(TypeError, match="floating-point"):
        to_network(np.zeros(3, np.uint8), "none")


@pytest.mark.parametrize("transfer", TRANSFERS.available())
def test_torch_round_trip_and_finite_gradients(transfer: str):
    torch = pytest.importorskip("torch")
    x = torch.tensor(LINEAR, dtype=torch.float32, requires_grad=True)
    if transfer == "none":
        x = torch.linspace(0, 1, 64, requires_grad=True)
    y = to_network(x, transfer)
    assert y.dtype == torch.float32
    back = from_network(y, transfer)
    torch.testing.assert_close(back, x, rtol=2e-6, atol=1e-7)
    back.sum().backward()
    assert torch.isfinite(x.grad).all()
    np.testing.assert_allclose(y.detach().numpy(), to_network(x.detach().numpy(), transfer), rtol=1e-6, atol=1e-7)
