"""Studio embedding networks: loading by spec, the [0, 1] RGB contract, distances, and every error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from shotfit.config import ExtraLossConfig, LossConfig
from shotfit.errors import ConfigError
from shotfit.losses import EmbeddingLoss, build_loss, embedding_distance, load_embedding_network


@pytest.fixture(autouse=True)
def helper_networks_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


@pytest.fixture
def images() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    return torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1


@pytest.mark.parametrize("distance", ["l1", "l2", "cosine"])
def test_distance_is_zero_for_equal_and_positive_for_different(images, distance):
    pred, _ = images
    loss = EmbeddingLoss("embedding_nets:tiny", distance=distance)
    assert loss(pred, pred.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(pred, 0.3 * pred + 0.5).item() > 1e-4


def test_network_sees_rgb_in_0_1_and_greyscale_as_three_channels():
    network = load_embedding_network("embedding_nets:tiny")
    loss = EmbeddingLoss(network)
    loss(-torch.ones(1, 1, 16, 16), torch.ones(1, 1, 16, 16))
    assert network.seen == [(3, 0.0, 0.0), (3, 1.0, 1.0)]


def test_network_is_frozen_and_stays_in_eval(images):
    pred, target = images
    loss = EmbeddingLoss("embedding_nets:tiny")
    parent = nn.ModuleDict({"unet": nn.Conv2d(3, 3, 1), "age": loss})
    parent.train()
    assert not any(module.training for module in loss.modules())
    pred = pred.requires_grad_()
    # Eval mode makes it deterministic despite its dropout.
    assert loss(pred, target).item() == loss(pred, target).item()
    loss(pred, target).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loss.parameters())


@pytest.mark.parametrize("spec", ["embedding_nets:two_level", "embedding_nets:as_dict"])
def test_several_outputs_are_summed(images, spec):
    pred, target = images
    loss = EmbeddingLoss(spec, distance="l2")
    network = loss.network
    with torch.no_grad():
        pooled_p = network.features((pred + 1) / 2)
        pooled_t = network.features((target + 1) / 2)
    expected = (embedding_distance(pooled_p, pooled_t, "l2")
                + embedding_distance(pooled_p.mean(dim=(2, 3)), pooled_t.mean(dim=(2, 3)), "l2"))
    assert loss(pred, target).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize(("spec", "message"), [
    ("embedding_nets", "must be written 'package.module:callable'"),
    ("embedding_nets:tiny:extra", "must be written 'package.module:callable'"),
    ("embedding_nets.:tiny", "must be written 'package.module:callable'"),
    (":tiny", "must be written 'package.module:callable'"),
    ("embedding_nets:", "must be written 'package.module:callable'"),
    ("no_such_studio_package.age:tiny", "cannot import 'no_such_studio_package.age' (ModuleNotFoundError"),
    ("embedding_nets:missing", "module 'embedding_nets' has no attribute 'missing'"),
    ("embedding_nets:NOT_CALLABLE", "'NOT_CALLABLE' is a int, not a callable"),
    ("embedding_nets:raises", "calling raises() raised FileNotFoundError: age_model.pt not found (looked in"),
    ("embedding_nets:not_a_module", "not_a_module() returned a dict, not a torch.nn.Module"),
    ("sys:exit", "calling exit() raised SystemExit"),
    ("embedding_nets:interrupts", "calling interrupts() raised KeyboardInterrupt: licence check"),
])
def test_bad_specs_are_one_line_config_errors(spec, message):
    with pytest.raises(ConfigError) as caught:
        load_embedding_network(spec)
    assert message in str(caught.value)
    assert spec in str(caught.value) and "\n" not in str(caught.value)


def test_a_module_that_fails_while_importing(tmp_path, monkeypatch):
    (tmp_path / "studio_broken_age.py").write_text("import torch\nraise RuntimeError('licence server down')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"cannot import 'studio_broken_age' \(RuntimeError: licence server down\)"):
        load_embedding_network("studio_broken_age:build")


def test_a_module_that_exits_while_importing(tmp_path, monkeypatch):
    (tmp_path / "studio_exits.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"cannot import 'studio_exits' \(SystemExit: 3\)"):
        load_embedding_network("studio_exits:build")


def test_a_plugin_the_caller_did_not_allow_is_refused_before_it_is_imported(tmp_path, monkeypatch):
    (tmp_path / "studio_marker_net.py").write_text(
        "from pathlib import Path\nPath(__file__).with_name('imported').write_text('x')\n"
        "from embedding_nets import tiny as build\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = LossConfig(extra=(ExtraLossConfig(network="studio_marker_net:build", weight=0.5),))
    for plugins in (set(), {"embedding_nets:tiny"}):
        with pytest.raises(ConfigError) as caught:
            build_loss(cfg, plugins=plugins)
        assert str(caught.value).startswith("loss.extra names the plug-in 'studio_marker_net:build', which was "
                                            "not allowed to run (allowed: ")
    assert not (tmp_path / "imported").exists()
    assert build_loss(cfg, plugins={"studio_marker_net:build"}).term_names[-1] == "build"
    assert (tmp_path / "imported").exists()


def test_bad_distance_and_bad_outputs(images):
    pred, target = images
    with pytest.raises(ConfigError, match="embedding distance 'euclid' is not one of l1, l2, cosine"):
        EmbeddingLoss("embedding_nets:tiny", distance="euclid")
    with pytest.raises(ConfigError, match="NumberEmbedding must return a tensor or a tuple, list or dict of tensors"):
        EmbeddingLoss("embedding_nets:returns_number")(pred, target)
    with pytest.raises(ValueError, match=r"\(2, 3, 16, 16\) and \(2, 3, 8, 8\)"):
        EmbeddingLoss("embedding_nets:tiny")(pred, target[..., :8, :8])
