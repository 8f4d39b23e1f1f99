"""Few-shot patch-based training (Texler et al., "Interactive Video Stylization Using Few-Shot
Patch-Based Training", SIGGRAPH 2020) as a peer baseline, written here from the paper's design and
the settings of the authors' released reference configuration (``reference_P.yaml``).

- Generator: a 7x7 stem (32 filters), two stride-2 3x3 convolutions (64, 128), seven ResNet blocks
  at 128, two nearest-upsample + 3x3 convolutions back up (each fed the encoder's features at its
  scale), a 7x7 convolution over the upsampled features, the stem's features and the input, two
  3x3 "smoothing" convolutions, and a 1x1 to RGB with tanh. BatchNorm, LeakyReLU 0.2 going down,
  ReLU elsewhere. H and W must be multiples of 4 (frames are reflect-padded and cropped back).
- Discriminator: a small patch discriminator on the output alone (12 filters, two stride-2 layers,
  InstanceNorm, LeakyReLU 0.2), least-squares GAN loss.
- Training: batches of 40 random 32 x 32 patches of the keyframes; loss
  ``4 x L1 + 6 x perceptual + 0.5 x adversarial`` (the reference configuration's weights); Adam,
  lr 4e-4, betas (0.9, 0.999), weight decay 1e-5, for both networks, no schedule.
- Test time: the whole frame at once, BatchNorm on its running statistics.

Deviation: the paper's perceptual loss is the mean squared difference of ImageNet VGG-19 features
(``conv1_1``, ``relu1_2``, ``conv2_1``). No VGG-19 weights can be loaded here (no torchvision, nothing
downloads), so the perceptual term uses the only ImageNet features available offline: the first two
feature stacks (``conv1`` and ``conv2``, after ReLU) of the pretrained AlexNet trunk inside shotfit's
LPIPS (:mod:`shotfit.losses.lpips`), compared the same way (mean squared difference of the raw
features). The weight 6 is kept, though AlexNet's features are not on VGG-19's scale.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.peers.training import crop_padding, pad_to_multiple, random_crops
from shotfit.losses.lpips import load_lpips

PATCH, BATCH = 32, 40
WEIGHTS = {"l1": 4.0, "perceptual": 6.0, "adversarial": 0.5}
LR, BETAS, WEIGHT_DECAY = 4e-4, (0.9, 0.999), 1e-5
FILTERS = (32, 64, 128, 128, 64)  # stem, down 1, down 2 (and ResNet blocks), up, output features


def _conv(inputs: int, outputs: int, kernel: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(inputs, outputs, kernel, stride, kernel // 2, bias=bias)


class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), _conv(width, width, 3), nn.BatchNorm2d(width), nn.ReLU(),
                                  _conv(width, width, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TexlerGenerator(nn.Module):
    """The few-shot patch-based generator: (B, C, H, W) -> (B, C, H, W) in [-1, 1], H, W multiples of 4.

    Args:
        filters: widths of the stem, the two downsamplings (also the ResNet blocks'), the upsampling
            layers and the output features: (32, 64, 128, 128, 64) as released.
        blocks: ResNet blocks at the lowest scale (7 as released).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, filters: tuple[int, ...] = FILTERS,
                 blocks: int = 7) -> None:
        super().__init__()
        stem, down1, down2, up, features = filters

        def down(inputs: int, outputs: int, kernel: int, stride: int) -> nn.Sequential:
            return nn.Sequential(_conv(inputs, outputs, kernel, stride), nn.BatchNorm2d(outputs), nn.LeakyReLU(0.2))

        def upsample(inputs: int, outputs: int) -> nn.Sequential:
            return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(inputs, outputs, 3, bias=False),
                                 nn.BatchNorm2d(outputs), nn.ReLU())

        self.stem = down(in_channels, stem, 7, 1)
        self.down1 = down(stem, down1, 3, 2)
        self.down2 = down(down1, down2, 3, 2)
        self.blocks = nn.Sequential(*(ResidualBlock(down2) for _ in range(blocks)))
        self.up2 = upsample(2 * down2, up)
        self.up1 = upsample(up + down1, up)
        self.merge = nn.Sequential(_conv(up + stem + in_channels, features, 7), nn.ReLU())
        self.smooth = nn.Sequential(_conv(features, features, 3), nn.ReLU(), nn.BatchNorm2d(features),
                                    _conv(features, features, 3), nn.ReLU())
        self.to_rgb = nn.Sequential(nn.Conv2d(features, out_channels, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(f"the patch-based generator needs H and W multiples of 4, got {tuple(x.shape)}")
        s0 = self.stem(x)
        s1 = self.down1(s0)
        s2 = self.down2(s1)
        y = self.up2(torch.cat([self.blocks(s2), s2], 1))
        y = self.up1(torch.cat([y, s1], 1))
        y = self.merge(torch.cat([y, s0, x], 1))
        return self.to_rgb(self.smooth(y))


class TexlerDiscriminator(nn.Module):
    """The small patch discriminator on output patches: (B, C, 32, 32) -> (B, 1, 6, 6) scores."""

    def __init__(self, in_channels: int = 3, filters: int = 12, n_layers: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, filters, 4, 2, 1), nn.LeakyReLU(0.2)]
        width = filters
        for i in range(1, n_layers + 1):
            wider = filters * min(2 ** i, 8)
            layers += [nn.Conv2d(width, wider, 4, 2 if i < n_layers else 1, 1), nn.InstanceNorm2d(wider),
                       nn.LeakyReLU(0.2)]
            width = wider
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class AlexNetFeatureLoss(nn.Module):
    """Mean squared difference of pretrained ImageNet AlexNet features (the ``conv1`` and ``conv2``
    stacks of shotfit's LPIPS trunk), standing in for the paper's VGG-19 features.

    Inputs are (B, 3, H, W) in [-1, 1], H, W >= 21; the trunk's own input scaling is applied. The
    trunk is frozen; gradients flow to ``pred``.
    """

    def __init__(self) -> None:
        super().__init__()
        lpips = load_lpips(input_range=(-1.0, 1.0))
        self.scaling = lpips.scaling_layer
        self.stacks = nn.ModuleList([lpips.net.slice1, lpips.net.slice2])
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> AlexNetFeatureLoss:
        return super().train(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        found = []
        x = self.scaling(x)
        for stack in self.stacks:
            x = stack(x)
            found.append(x.flatten(1))
        return torch.cat(found, dim=1)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (self.features(pred) - self.features(target).detach()).pow(2).mean()


class Texler:
    """The few-shot patch-based baseline on keyframe pairs (network space, (K, C, H, W) in [-1, 1]).

    ``filters``, ``blocks``, ``patch`` and ``batch`` shrink it for tests; the defaults are the released ones.
    """

    name = "texler"

    def __init__(self, sources: torch.Tensor, targets: torch.Tensor, device: torch.device, *,
                 filters: tuple[int, ...] = FILTERS, blocks: int = 7, patch: int = PATCH, batch: int = BATCH) -> None:
        channels = sources.shape[1]
        if channels != 3:
            raise ValueError("the patch-based baseline's perceptual term needs RGB keyframes")
        self.sources, self.targets, self.device = sources, targets, device
        self.patch, self.batch = patch, batch
        self.generator = TexlerGenerator(channels, channels, tuple(filters), blocks).to(device)
        self.discriminator = TexlerDiscriminator(channels).to(device)
        self.perceptual = AlexNetFeatureLoss().to(device)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY)
        self.options = {"filters": list(filters), "blocks": blocks}

    def recipe(self) -> dict[str, Any]:
        return {"paper": "Texler et al. 2020 (few-shot patch-based training)", "batch": self.batch,
                "patch": self.patch, "loss": dict(WEIGHTS), "adversarial": "least squares, output-only patch D",
                "perceptual": "MSE of pretrained AlexNet conv1+conv2 features (LPIPS trunk) instead of VGG-19",
                "optimiser": {"adam_lr": LR, "betas": list(BETAS), "weight_decay": WEIGHT_DECAY},
                "schedule": "constant", **self.options}

    def train_step(self, rng: torch.Generator, progress: float) -> dict[str, float]:
        source, target = random_crops(self.sources, self.targets, self.patch, self.batch, rng)
        self.generator.train()
        self.discriminator.train()
        fake = self.generator(source)

        fake_scores = self.discriminator(fake.detach())
        real_scores = self.discriminator(target)
        loss_d = (F.mse_loss(fake_scores, torch.zeros_like(fake_scores))
                  + F.mse_loss(real_scores, torch.ones_like(real_scores)))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        l1 = F.l1_loss(fake, target)
        perceptual = self.perceptual(fake, target)
        fooled = self.discriminator(fake)
        adversarial = F.mse_loss(fooled, torch.ones_like(fooled))
        total = WEIGHTS["l1"] * l1 + WEIGHTS["perceptual"] * perceptual + WEIGHTS["adversarial"] * adversarial
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        return {"d": loss_d.item(), "l1": l1.item(), "perceptual": perceptual.item(),
                "adversarial": adversarial.item(), "total": total.item()}

    @torch.no_grad()
    def predict(self, x: torch.Tensor, frame: int) -> torch.Tensor:
        self.generator.eval()
        padded, padding = pad_to_multiple(x, 4)
        return crop_padding(self.generator(padded), padding)
