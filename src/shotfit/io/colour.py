"""The colour shaper: maps frame values to the [-1, 1] the network sees, and back, exactly.

Two transfers, chosen by the data (see :func:`transfer_for`):

- ``"none"``: display-referred integer data in [0, 1]: ``y = 2x - 1``.
- ``"acescct"``: scene-linear float data goes through the ACEScct log curve first (transfer function
  only, no gamut conversion; Academy S-2016-001), then ``y = 2v - 1``. Linear 0.18 lands at v = 0.41
  and v reaches 1.0 only at linear ~222, so highlights above 1.0 keep their detail instead of being
  clipped or crowding the top of the range.

Both functions take numpy arrays (any float dtype, kept) or torch tensors (dtype, device and
autograd kept; torch is never imported here, so ``shotfit.io`` works without it).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from shotfit.io.formats import HALF_MAX, PixelFormat
from shotfit.registry import Registry

# ACEScct (S-2016-001): a straight line below X_BRK joined to a pure log2 curve above it.
ACESCCT_A = 10.5402377416545
ACESCCT_B = 0.0729055341958355
ACESCCT_X_BRK = 0.0078125  # linear 2**-7
ACESCCT_Y_BRK = 0.155251141552511  # (log2(X_BRK) + 9.72) / 17.52
# Above this code the inverse saturates at the largest half float, as the specification does.
ACESCCT_MAX_CODE = (math.log2(HALF_MAX) + 9.72) / 17.52


@dataclass(frozen=True)
class Transfer:
    """A pair of element-wise functions between frame values and [0, 1]-ish codes."""

    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


TRANSFERS: Registry[Transfer] = Registry("colour transfer")


def _identity(x: Any) -> Any:
    return x


def linear_to_acescct(x: Any) -> Any:
    """Scene-linear -> ACEScct code value (about -0.07 at linear -0.014, 0.41 at 0.18, 1.0 at ~222)."""
    lib = _library(x)
    # Clamped before log2 so that the branch where() discards is never log2(<= 0): no NaN gradients.
    log_part = (lib.log2(x.clip(min=ACESCCT_X_BRK)) + 9.72) / 17.52
    return lib.where(x <= ACESCCT_X_BRK, ACESCCT_A * x + ACESCCT_B, log_part)


def acescct_to_linear(v: Any) -> Any:
    """ACEScct code value -> scene-linear; exact inverse of :func:`linear_to_acescct` up to 65504."""
    lib = _library(v)
    # Clipped again after exp2: float32 rounding would otherwise land just above 65504.
    log_part = lib.exp2(v.clip(min=ACESCCT_Y_BRK, max=ACESCCT_MAX_CODE) * 17.52 - 9.72).clip(max=HALF_MAX)
    return lib.where(v <= ACESCCT_Y_BRK, (v - ACESCCT_B) / ACESCCT_A, log_part)


TRANSFERS.register("none")(Transfer(_identity, _identity))
TRANSFERS.register("acescct")(Transfer(linear_to_acescct, acescct_to_linear))


def transfer_for(fmt: PixelFormat) -> str:
    """The transfer a format's data needs: ``"acescct"`` for float (scene-linear) data, else ``"none"``."""
    return "acescct" if fmt.is_float else "none"


def to_network(x: Any, transfer: str) -> Any:
    """Frame values -> network values.

    Args:
        x: numpy array (floating dtype) or torch tensor, any shape. ``"none"``: [0, 1];
            ``"acescct"``: scene-linear, any finite value.
        transfer: ``"none"`` or ``"acescct"``.

    Returns:
        Same type, shape and dtype. [-1, 1] for in-range data (``"acescct"``: linear -0.0069 .. ~222;
        brighter or darker values map beyond, they are not clipped).
    """
    encode = TRANSFERS.get(transfer).encode
    _check_float(x)
    return encode(x) * 2.0 - 1.0


def from_network(y: Any, transfer: str) -> Any:
    """Network values -> frame values; ``from_network(to_network(x, t), t) == x`` to float precision.

    Args:
        y: numpy array (floating dtype) or torch tensor, any shape, nominally in [-1, 1].
        transfer: ``"none"`` or ``"acescct"``.

    Returns:
        Same type, shape and dtype: [0, 1] for ``"none"`` (not clipped here; writing clips),
        scene-linear for ``"acescct"`` (at most 65504).
    """
    decode = TRANSFERS.get(transfer).decode
    _check_float(y)
    return decode((y + 1.0) * 0.5)


def _library(x: Any) -> Any:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return torch
    return np


def _check_float(x: Any) -> None:
    dtype = getattr(x, "dtype", None)
    floating = x.is_floating_point() if _library(x) is not np else np.issubdtype(dtype, np.floating)
    if not floating:
        raise TypeError(f"expected a floating-point array or tensor, got {type(x).__name__} of dtype {dtype}")
