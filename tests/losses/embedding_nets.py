"""Stand-ins for studio embedding networks, loaded by spec ("embedding_nets:tiny") in the embedding tests."""

from __future__ import annotations

import torch
from torch import nn


class TinyEmbedding(nn.Module):
    """A 4-number embedding with dropout and batch norm (both must stay in eval); records what it was fed."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5))
        self.seen: list[tuple[int, float, float]] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen.append((images.shape[1], images.min().item(), images.max().item()))
        return self.features(images).mean(dim=(2, 3))


class TwoLevelEmbedding(TinyEmbedding):
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(images)
        return features.mean(dim=(2, 3)), features


class DictEmbedding(TinyEmbedding):
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.features(images)
        return {"map": features, "vector": features.mean(dim=(2, 3))}


class NumberEmbedding(TinyEmbedding):
    def forward(self, images: torch.Tensor) -> float:
        return 1.0


def tiny() -> nn.Module:
    return TinyEmbedding()


def two_level() -> nn.Module:
    return TwoLevelEmbedding()


def as_dict() -> nn.Module:
    return DictEmbedding()


def returns_number() -> nn.Module:
    return NumberEmbedding()


def raises() -> nn.Module:
    raise FileNotFoundError("age_model.pt not found\n(looked in /studio/models)")


def interrupts() -> nn.Module:
    raise KeyboardInterrupt("licence check")


def not_a_module() -> object:
    return {"weights": 1}


NOT_CALLABLE = 3
