"""The peer baselines of the quality benchmark: their networks, losses, budgets and test-time behaviour.

Tiny widths and frames, one thread: seconds on the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from shots import disc_plate as plate
from shots import grade

from bench.peers import build_peer, predict_pixels, train_peer
from bench.peers.pix2pix import PatchDiscriminator, UNetGenerator
from bench.peers.texler import AlexNetFeatureLoss, TexlerDiscriminator, TexlerGenerator
from bench.peers.training import pad_to_multiple
from shotfit.archs import count_parameters
from shotfit.compare.archs import BenchBudget
from shotfit.errors import ConfigError
from shotfit.losses.lpips import _pretrained_state
from shotfit.runs.folder import load_state

CPU = torch.device("cpu")
TINY_PIX2PIX = {"ngf": 16, "ndf": 8, "downs": 5}  # 32 x 32 crops
TINY_TEXLER = {"filters": (8, 8, 16, 16, 8), "blocks": 1, "patch": 24, "batch": 8}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def keyframes(frames=(1, 4), size=(40, 48)) -> tuple[torch.Tensor, torch.Tensor]:
    """Tiny keyframe pairs (source, graded) in network space."""
    sources = np.stack([plate(f, *size) for f in frames])
    targets = np.stack([grade(plate(f, *size)) for f in frames])
    as_tensor = lambda a: torch.from_numpy(a.transpose(0, 3, 1, 2).copy()) * 2 - 1  # noqa: E731
    return as_tensor(sources), as_tensor(targets)


def test_pix2pix_networks_are_the_papers():
    # unet_256 and the 70x70 PatchGAN as pix2pix's own training prints them: 54.414 M and 2.769 M
    generator, discriminator = UNetGenerator(), PatchDiscriminator()
    assert round(count_parameters(generator) / 1e6, 3) == 54.414
    assert round(count_parameters(discriminator) / 1e6, 3) == 2.769
    assert sum(isinstance(m, torch.nn.Dropout) for m in generator.modules()) == 3
    strided = [m for m in generator.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == 8 and all(m.kernel_size == (4, 4) for m in strided)
    assert discriminator(torch.zeros(1, 6, 256, 256)).shape == (1, 1, 30, 30)


def test_pix2pix_renders_frames_of_any_size_by_padding_to_its_multiple():
    peer = build_peer("pix2pix", *keyframes(), CPU, ngf=4, ndf=4, downs=8)
    for height, width in ((37, 45), (256, 300), (19, 260)):
        x = torch.rand(1, 3, height, width) * 2 - 1
        y = peer.predict(x, frame=1)
        assert y.shape == x.shape and y.abs().max() <= 1
    with pytest.raises(ValueError, match="multiples of 256"):
        peer.generator(torch.zeros(1, 3, 37, 45))


def test_pix2pix_test_time_dropout_is_seeded_by_the_frame():
    peer = build_peer("pix2pix", *keyframes(), CPU, **TINY_PIX2PIX)
    train_peer(peer, BenchBudget(steps=2))
    statistics = {k: v.clone() for k, v in peer.generator.state_dict().items()}
    x = torch.rand(1, 3, 40, 48) * 2 - 1
    first, again, other = peer.predict(x, 7), peer.predict(x, 7), peer.predict(x, 8)
    assert torch.equal(first, again)
    assert (first - other).abs().mean() > 1e-3  # the noise z: another frame, other dropout masks
    # rendering leaves the weights and BatchNorm's running statistics as they were
    assert all(torch.equal(v, peer.generator.state_dict()[k]) for k, v in statistics.items())


def test_texler_networks_keep_their_shapes():
    generator = TexlerGenerator()
    assert sum(isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2) for m in generator.modules()) == 2
    assert generator(torch.zeros(2, 3, 32, 32)).shape == (2, 3, 32, 32)
    assert TexlerDiscriminator()(torch.zeros(5, 3, 32, 32)).shape == (5, 1, 6, 6)
    peer = build_peer("texler", *keyframes(), CPU, **TINY_TEXLER)
    x = torch.rand(1, 3, 37, 45) * 2 - 1
    assert peer.predict(x, 0).shape == x.shape


def test_texler_perceptual_term_compares_pretrained_imagenet_features():
    loss = AlexNetFeatureLoss()
    pretrained = _pretrained_state()["net.slice1.0.weight"]
    assert torch.equal(loss.stacks[0][0].weight, pretrained)
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss(a, a).item() == 0.0
    distance = loss(a, b).item()
    assert distance > 0
    with torch.no_grad():  # other features, another distance: the weights are what is compared through
        loss.stacks[0][0].weight.mul_(0.5)
    assert loss(a, b).item() == pytest.approx(distance * 0.25, rel=0.2)
    # gradients reach the prediction, never the frozen trunk
    pred = a.clone().requires_grad_(True)
    AlexNetFeatureLoss()(pred, b).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())


@pytest.mark.parametrize("name, options", [("pix2pix", TINY_PIX2PIX), ("texler", TINY_TEXLER)])
def test_each_baseline_learns_a_grade_in_a_few_steps(name, options):
    sources, targets = keyframes()
    peer = build_peer(name, sources, targets, CPU, **options)
    before = predict_pixels(peer, plate(2), 2, CPU)
    result = train_peer(peer, BenchBudget(steps=60))  # pix2pix's lr (2e-4, batch 1) learns slowly
    assert result.history[-1]["l1"] < 0.8 * result.history[0]["l1"]
    truth = grade(plate(2))  # a frame it never saw
    after = predict_pixels(peer, plate(2), 2, CPU)
    assert np.abs(after - truth).mean() < np.abs(before - truth).mean()


def test_a_step_budget_stops_at_the_step_with_timed_snapshots(tmp_path):
    peer = build_peer("texler", *keyframes(), CPU, **TINY_TEXLER)
    result = train_peer(peer, BenchBudget(steps=7), tmp_path, snapshots=3)
    assert (result.steps, result.stopped_by) == (7, "steps")
    snapshots = sorted((tmp_path / "snapshots").glob("*.pt"))
    assert [p.name for p in snapshots] == ["step_000002.pt", "step_000004.pt", "step_000006.pt"]
    states = [load_state(p) for p in (*snapshots, tmp_path / "model.pt")]
    assert [s["step"] for s in states] == [2, 4, 6, 7]
    elapsed = [s["elapsed_s"] for s in states]
    assert elapsed == sorted(elapsed) and 0 < elapsed[0] and elapsed[-1] == pytest.approx(result.elapsed_s)


def test_a_wall_clock_budget_stops_at_the_first_step_past_it():
    peer = build_peer("texler", *keyframes(), CPU, **TINY_TEXLER)
    result = train_peer(peer, BenchBudget(minutes=0.01))
    assert result.stopped_by == "time" and result.elapsed_s >= 0.6 and result.steps > 1


def test_padding_wider_than_the_frame_is_reflected_in_rounds():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    padded, padding = pad_to_multiple(x, 16)
    assert padded.shape == (1, 1, 16, 16) and padding == (6, 6, 6, 7)
    assert torch.equal(padded[:, :, 6:9, 6:10], x)


def test_an_unknown_peer_is_one_line():
    with pytest.raises(ConfigError, match="unknown peer baseline 'cyclegan' \\(known: pix2pix, texler\\)"):
        build_peer("cyclegan", *keyframes(), CPU)
