"""The loss-term registry: every registered term passes the same checks, config and registry stay in step,
and a term registered outside shotfit's files is picked up through the config."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from shotfit.config import LossConfig, loss_weight
from shotfit.errors import ConfigError
from shotfit.losses import FRAME_PAIRS, KEYFRAMES, LOSS_TERMS, build_loss, register_loss_term

# Terms that compare an output with its keyframe, and terms that compare consecutive outputs
# (tests/losses/test_loss_temporal.py checks those).
TERMS = [name for name in LOSS_TERMS.available() if LOSS_TERMS.get(name).inputs == KEYFRAMES]
PAIR_TERMS = [name for name in LOSS_TERMS.available() if LOSS_TERMS.get(name).inputs == FRAME_PAIRS]


def only(name: str, weight: float = 1.0) -> LossConfig:
    """The default loss config with every term off but ``name``."""
    return LossConfig(**{**dict.fromkeys(LossConfig().term_weights(), 0.0), name: weight})


@pytest.fixture
def images() -> tuple[torch.Tensor, torch.Tensor]:
    """A target in [-1, 1] and a prediction that matches it on the left half and differs on the right."""
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    pred = target.clone()
    pred[..., 16:] = 0.6 * target[..., 16:] + 0.2
    return pred, target


def test_every_weight_in_the_config_has_a_registered_term_and_every_term_a_weight():
    assert sorted(LossConfig().term_weights()) == sorted(TERMS + PAIR_TERMS)


def test_the_built_in_terms_keep_their_names():
    assert TERMS == ["l1", "laplacian", "lpips", "mse", "ssim"]
    assert PAIR_TERMS == ["temporal"]


@pytest.mark.parametrize("name", TERMS)
def test_term_is_zero_for_identical_images_and_positive_for_different(name, images):
    pred, target = images
    loss = build_loss(only(name))
    _, same = loss(target.clone(), target)
    _, different = loss(pred, target)
    assert list(same) == [name]
    assert same[name].item() == pytest.approx(0.0, abs=1e-6)
    assert different[name].item() > 1e-3


@pytest.mark.parametrize("name", TERMS)
def test_term_gradients_reach_the_prediction(name, images):
    pred, target = images
    pred = pred.requires_grad_()
    total, values = build_loss(only(name, weight=2.0))(pred, target)
    assert torch.equal(total.detach(), 2.0 * values[name])
    total.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    assert pred.grad[..., 16:].abs().sum() > 0


@pytest.mark.parametrize("name", TERMS)
def test_term_follows_the_weight_map_where_it_takes_one(name, images):
    pred, target = images
    loss = build_loss(only(name))
    on_the_difference = torch.zeros(1, 1, 32, 32)
    on_the_difference[..., 16:] = 1.0
    _, plain = loss(pred, target)
    _, weighted = loss(pred, target, on_the_difference)
    _, elsewhere = loss(pred, target, 1.0 - on_the_difference)
    if LOSS_TERMS.get(name).weight_map:
        assert elsewhere[name] < plain[name] < weighted[name]
    else:
        assert torch.equal(weighted[name], plain[name]) and torch.equal(elsewhere[name], plain[name])


@pytest.mark.parametrize("name", TERMS)
def test_a_term_weighted_zero_is_not_built(name, images):
    other = "l1" if name != "l1" else "mse"
    loss = build_loss(dataclasses.replace(only(other), **{name: 0.0}))
    _, values = loss(*images)
    assert list(values) == [other] and len(loss.terms) == 1


@pytest.mark.parametrize(("name", "message"), [
    ("total", "'total' is the weighted sum's key"),
    ("Charbonnier", "lowercase identifiers"),
    ("mean-gap", "lowercase identifiers"),
    ("l1", "loss term 'l1' is registered twice"),
])
def test_term_names_are_lowercase_identifiers_registered_once(name, message):
    with pytest.raises(ValueError, match=message):
        register_loss_term(name)(lambda cfg: nn.L1Loss())


# --- a term from outside shotfit's files --------------------------------------------------------

class MeanGap(nn.Module):
    """A studio's term: the gap between mean brightnesses (it takes no weight map)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred.mean() - target.mean()).abs()


@dataclasses.dataclass(frozen=True)
class StudioLossConfig(LossConfig):
    """The loss config with the studio term's weight declared beside the built-in ones."""

    mean_gap: float = loss_weight(0.0)


@pytest.fixture
def mean_gap_builds() -> Iterator[list[LossConfig]]:
    """Registers ``mean_gap`` for one test; yields the configs its builder was called with."""
    builds: list[LossConfig] = []

    @register_loss_term("mean_gap", weight_map=False)
    def build_mean_gap(cfg: LossConfig) -> MeanGap:
        builds.append(cfg)
        return MeanGap()

    yield builds
    # Registry has no unregister: drop the term so every other test sees shotfit's terms alone.
    del LOSS_TERMS._entries["mean_gap"]


def test_a_term_registered_outside_shotfit_is_picked_up_through_the_config(mean_gap_builds, images):
    pred, target = images
    cfg = StudioLossConfig(l1=1.0, lpips=0.0, laplacian=0.5, ssim=0.0, mean_gap=2.0)
    loss = build_loss(cfg)
    assert mean_gap_builds == [cfg]
    weight = torch.ones(1, 1, 32, 32)
    total, values = loss(pred, target, weight)
    assert list(values) == ["l1", "laplacian", "mean_gap"]
    assert torch.equal(values["mean_gap"], (pred.mean() - target.mean()).abs())
    # summed in the config's field order, the studio's term last
    expected = pred.new_zeros(()) + 1.0 * values["l1"] + 0.5 * values["laplacian"] + 2.0 * values["mean_gap"]
    assert torch.equal(total, expected)


def test_a_registered_term_weighted_zero_is_not_built(mean_gap_builds, images):
    _, values = build_loss(StudioLossConfig(mean_gap=0.0))(*images)
    assert "mean_gap" not in values and mean_gap_builds == []


def test_a_weight_whose_term_is_not_registered_is_a_config_error():
    with pytest.raises(ConfigError, match=r"unknown loss term 'mean_gap' \(known: l1, laplacian, lpips, mse, ssim, "
                                          r"temporal\)"):
        build_loss(StudioLossConfig(mean_gap=1.0))
