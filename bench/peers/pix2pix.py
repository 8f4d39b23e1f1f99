"""pix2pix (Isola et al., "Image-to-Image Translation with Conditional Adversarial Networks", CVPR 2017)
as a peer baseline, written here from the paper's design.

- Generator ``unet_256``: eight stride-2 4x4 convolutions down (64, 128, 256, 512, 512, 512, 512, 512
  filters; LeakyReLU 0.2 before each but the first; BatchNorm on all but the first and the innermost),
  eight 4x4 transposed convolutions up (ReLU before each; BatchNorm on all but the last), each
  concatenated with the encoder's output at its scale, tanh at the end. Dropout 0.5 in the first three
  decoder layers after the bottleneck (the paper's ``CD512-CD1024-CD1024``). Convolutions followed by
  BatchNorm have no bias.
- Discriminator: the 70x70 PatchGAN (``n_layers=3``, 64 filters) on the (input, output) pair.
- Loss: the conditional GAN loss (binary cross-entropy on logits) + 100 x L1; the discriminator's
  loss is halved. Adam, lr 2e-4, betas (0.5, 0.999); weights from N(0, 0.02); batch 1.
- Data: random 256 x 256 crops of the keyframes with random horizontal flips (the paper's jitter
  resizes to 286 first; frames here are scored at their own scale, so only the crop is random).
  The learning rate is constant for the first half of the budget and decays linearly to 0 over the
  second half, the paper's schedule stretched to the budget.
- Test time: as in the paper, dropout stays on and BatchNorm uses the test image's own statistics;
  that is pix2pix's noise z. Here the dropout masks are drawn from a generator seeded by the frame
  number, so a frame renders the same every time. Frames are reflect-padded to a multiple of 256 and
  cropped back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.peers.training import crop_padding, init_normal, pad_to_multiple, random_crops

CROP = 256
L1_WEIGHT = 100.0
LR, BETAS = 2e-4, (0.5, 0.999)


class UNetGenerator(nn.Module):
    """pix2pix's U-Net generator (``unet_256`` with the defaults): (B, C, H, W) -> (B, C, H, W) in [-1, 1].

    Args:
        in_channels, out_channels: image channels.
        ngf: filters of the first layer (64 in the paper).
        downs: stride-2 steps; H and W must be multiples of ``2 ** downs`` (256 for 8).
        dropout: dropout probability of the first three decoder layers.

    Shape:
        x: (B, in_channels, H, W) with H, W multiples of ``2 ** downs``.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, downs: int = 8,
                 dropout: float = 0.5) -> None:
        super().__init__()
        if downs < 5:
            raise ValueError(f"the U-Net needs at least 5 downsamplings, got {downs}")
        widths = [ngf * min(2 ** i, 8) for i in range(downs)]
        self.multiple = 2 ** downs
        self.down = nn.ModuleList([nn.Conv2d(in_channels, widths[0], 4, 2, 1, bias=False)])
        for i in range(1, downs):
            innermost = i == downs - 1
            layers = [nn.LeakyReLU(0.2), nn.Conv2d(widths[i - 1], widths[i], 4, 2, 1, bias=False)]
            self.down.append(nn.Sequential(*layers) if innermost else nn.Sequential(*layers, nn.BatchNorm2d(widths[i])))
        self.up = nn.ModuleList()
        for i in range(downs - 1, 0, -1):  # from the bottleneck outwards
            inputs = widths[i] if i == downs - 1 else 2 * widths[i]
            layers = [nn.ReLU(), nn.ConvTranspose2d(inputs, widths[i - 1], 4, 2, 1, bias=False),
                      nn.BatchNorm2d(widths[i - 1])]
            if i >= downs - 3:
                layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        self.up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(2 * widths[0], out_channels, 4, 2, 1), nn.Tanh()))
        self.apply(init_normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] % self.multiple or x.shape[3] % self.multiple:
            raise ValueError(f"pix2pix's U-Net needs H and W multiples of {self.multiple}, got {tuple(x.shape)}")
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        skips.pop()  # the bottleneck feeds the first decoder layer directly
        for layer in self.up[:-1]:
            x = torch.cat([skips.pop(), layer(x)], dim=1)
        return self.up[-1](x)


class PatchDiscriminator(nn.Module):
    """The 70x70 PatchGAN: a logit per overlapping 70x70 patch of the (input, output) pair.

    Shape:
        pair: (B, in_channels, H, W), H, W >= 32 -> (B, 1, H / 8 - 2, W / 8 - 2).
    """

    def __init__(self, in_channels: int = 6, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        width = ndf
        for i in range(1, n_layers + 1):
            wider = ndf * min(2 ** i, 8)
            layers += [nn.Conv2d(width, wider, 4, 2 if i < n_layers else 1, 1, bias=False), nn.BatchNorm2d(wider),
                       nn.LeakyReLU(0.2)]
            width = wider
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        self.apply(init_normal)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        return self.net(pair)


class Pix2Pix:
    """The pix2pix baseline on keyframe pairs (network space, (K, C, H, W) in [-1, 1], on ``device``).

    ``ngf``, ``ndf`` and ``downs`` shrink it for tests; the defaults are the paper's.
    """

    name = "pix2pix"

    def __init__(self, sources: torch.Tensor, targets: torch.Tensor, device: torch.device, *, ngf: int = 64,
                 ndf: int = 64, downs: int = 8) -> None:
        channels = sources.shape[1]
        self.sources, self.targets, self.device = sources, targets, device
        self.crop = 2 ** downs
        self.generator = UNetGenerator(channels, channels, ngf, downs).to(device)
        self.discriminator = PatchDiscriminator(2 * channels, ndf).to(device)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=LR, betas=BETAS)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=LR, betas=BETAS)
        self.options = {"ngf": ngf, "ndf": ndf, "downs": downs}

    def recipe(self) -> dict[str, Any]:
        return {"paper": "Isola et al. 2017 (pix2pix)", "generator": "unet_256", "discriminator": "70x70 PatchGAN",
                "batch": 1, "crop": self.crop, "augment": "random crop + horizontal flip",
                "loss": {"gan": 1.0, "l1": L1_WEIGHT}, "optimiser": {"adam_lr": LR, "betas": list(BETAS)},
                "schedule": "constant, then linear decay to 0 over the second half of the budget",
                "test_time": "dropout on and BatchNorm on the frame's own statistics, seeded by frame number",
                **self.options}

    def train_step(self, rng: torch.Generator, progress: float) -> dict[str, float]:
        lr = LR * min(1.0, 2.0 * (1.0 - progress))
        for group in (*self.opt_g.param_groups, *self.opt_d.param_groups):
            group["lr"] = lr
        source, target = random_crops(self.sources, self.targets, self.crop, 1, rng, flip=True)
        self.generator.train()
        self.discriminator.train()
        fake = self.generator(source)

        real_logits = self.discriminator(torch.cat([source, target], 1))
        fake_logits = self.discriminator(torch.cat([source, fake.detach()], 1))
        loss_d = 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                        + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        fooled = self.discriminator(torch.cat([source, fake], 1))
        loss_gan = F.binary_cross_entropy_with_logits(fooled, torch.ones_like(fooled))
        loss_l1 = F.l1_loss(fake, target)
        loss_g = loss_gan + L1_WEIGHT * loss_l1
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        return {"d": loss_d.item(), "gan": loss_gan.item(), "l1": loss_l1.item(), "total": loss_g.item()}

    @torch.no_grad()
    def predict(self, x: torch.Tensor, frame: int) -> torch.Tensor:
        """The paper's test-time behaviour, made repeatable: dropout seeded by ``frame``."""
        padded, padding = pad_to_multiple(x, self.crop)
        devices = [padded.device] if padded.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), _train_mode_frozen_statistics(self.generator):
            torch.manual_seed(int(frame))
            return crop_padding(self.generator(padded), padding)


@contextlib.contextmanager
def _train_mode_frozen_statistics(network: nn.Module) -> Iterator[None]:
    """Train mode (dropout on, BatchNorm on the batch's statistics) without updating running statistics."""
    norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    was_training = network.training
    try:
        for m in norms:
            m.track_running_stats = False  # in train mode: the batch's statistics, nothing stored
        network.train()
        yield
    finally:
        for m in norms:
            m.track_running_stats = True
        network.train(was_training)
