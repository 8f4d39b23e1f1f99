"""Peer baselines for the quality benchmark, written here from their papers' designs.

:mod:`~bench.peers.pix2pix` (Isola et al. 2017) and :mod:`~bench.peers.texler`
(Texler et al. 2020), with the budgeted training loop and snapshots they share in
:mod:`~bench.peers.training`.
"""

from __future__ import annotations

from typing import Any

import torch

from bench.peers.pix2pix import Pix2Pix
from bench.peers.texler import Texler
from bench.peers.training import Peer, PeerTrainResult, predict_pixels, train_peer
from shotfit.errors import ConfigError

PEERS = {"pix2pix": Pix2Pix, "texler": Texler}


def build_peer(name: str, sources: torch.Tensor, targets: torch.Tensor, device: torch.device,
               **options: Any) -> Peer:
    """The baseline ``name`` on keyframe pairs in network space ((K, C, H, W), [-1, 1], on ``device``)."""
    if name not in PEERS:
        raise ConfigError(f"unknown peer baseline {name!r} (known: {', '.join(PEERS)})")
    return PEERS[name](sources, targets, device, **options)


__all__ = ["PEERS", "Peer", "PeerTrainResult", "Pix2Pix", "Texler", "build_peer", "predict_pixels", "train_peer"]
