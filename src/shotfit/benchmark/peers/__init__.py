"""Peer baselines for the quality benchmark, written here from their papers' designs.

:mod:`~shotfit.benchmark.peers.pix2pix` (Isola et al. 2017) and :mod:`~shotfit.benchmark.peers.texler`
(Texler et al. 2020), with the budgeted training loop and snapshots they share in
:mod:`~shotfit.benchmark.peers.training`.
"""

from __future__ import annotations

from typing import Any

import torch

from shotfit.benchmark.peers.pix2pix import Pix2Pix
from shotfit.benchmark.peers.texler import Texler
from shotfit.benchmark.peers.training import Peer, PeerTrainResult, predict_pixels, train_peer
from shotfit.errors import ConfigError

PEERS = {"pix2pix": Pix2Pix, "texler": Texler}


def build_peer(name: str, sources: torch.Tensor, targets: torch.Tensor, device: torch.device,
               **options: Any) -> Peer:
    """The baseline ``name`` on keyframe pairs in network space ((K, C, H, W), [-1, 1], on ``device``)."""
    if name not in PEERS:
        raise ConfigError(f"unknown peer baseline {name!r} (known: {', '.join(PEERS)})")
    return PEERS[name](sources, targets, device, **options)


__all__ = ["PEERS", "Peer", "PeerTrainResult", "Pix2Pix", "Texler", "build_peer", "predict_pixels", "train_peer"]
