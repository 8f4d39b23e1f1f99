"""Losses: one per file (a function plus a thin ``nn.Module``); :class:`HybridLoss` composes them by weight.

Every loss takes shotfit's network tensors, float (B, C, H, W) in [-1, 1], and where it can, an optional
(B, 1, H, W) non-negative weight map that steers it towards an artist's painted region.

The terms of the training loss are registered in :data:`LOSS_TERMS` under their config names (``l1``,
``mse``, ``lpips``, ``laplacian``, ``ssim``, and ``temporal``, which compares the outputs of
consecutive frames along the source's flow rather than an output with a keyframe). That one name is the
term's weight in the config (``loss.l1``, ``--set loss.l1=0.5``, a sweep's ``loss.l1``), its key in
:class:`HybridLoss`'s values, in the trainer's history and ``metrics.json``, in the progress row, and
``loss/l1`` in the trackers; the weighted sum is ``total`` (``loss/total``). Studio embedding terms
(``loss.extra``) go by their ``name``.

How to add a loss term
----------------------
1. Write ``losses/<name>.py``: a function ``<name>_loss(pred, target, weight=None) -> scalar`` with
   its shapes and ranges in the docstring, a thin ``nn.Module`` calling it, and a builder registered
   under the term's lowercase name::

       @register_loss_term("charbonnier")             # weight_map=False if it takes no weight map
       def build_charbonnier_term(cfg: LossConfig) -> CharbonnierLoss:
           return CharbonnierLoss()

   The builder runs only when the term's weight is above 0, so an expensive term (pretrained
   weights) costs nothing while it is off.
2. Import the module below, so the term registers when ``shotfit.losses`` is imported.
3. Give the term its weight in :class:`~shotfit.config.LossConfig`, ``charbonnier: float =
   loss_weight(0.0)``, with any option it reads beside it. The weight's field is where the default
   lives, where YAML and ``--set`` find it, and its place among the fields is the term's place in the
   sum. ``tests/losses/test_loss_registry.py`` fails while a weight has no registered term or a
   registered term has no weight, and runs the new term through the checks every term must pass.

Nothing else changes: :class:`HybridLoss`, the trainer, the trackers, sweeps and the CLI take the
term's name from the registry and the config. A term that compares consecutive frames rather than an
output with its keyframe registers with ``inputs="frame_pairs"`` and is called with a
:class:`~shotfit.losses.temporal.PairOutputs` (see ``losses/temporal.py``).
"""

from shotfit.losses.build import build_loss
from shotfit.losses.embedding import (
    DISTANCES,
    EmbeddingLoss,
    embedding_distance,
    embedding_terms,
    load_embedding_network,
)
from shotfit.losses.hybrid import HybridLoss
from shotfit.losses.laplacian import LaplacianLoss, laplacian_loss, laplacian_pyramid
from shotfit.losses.lpips import LPIPS, LPIPSLoss, load_lpips, lpips_loss, lpips_weights_path
from shotfit.losses.pixel import L1Loss, MSELoss, l1_loss, mse_loss
from shotfit.losses.registry import FRAME_PAIRS, KEYFRAMES, LOSS_TERMS, TOTAL, LossTerm, register_loss_term
from shotfit.losses.ssim import SSIMLoss, ssim_loss
from shotfit.losses.temporal import PairOutputs, TemporalLoss, temporal_loss

__all__ = [
    "DISTANCES",
    "FRAME_PAIRS",
    "KEYFRAMES",
    "LOSS_TERMS",
    "LPIPS",
    "TOTAL",
    "EmbeddingLoss",
    "HybridLoss",
    "L1Loss",
    "LPIPSLoss",
    "LaplacianLoss",
    "LossTerm",
    "MSELoss",
    "PairOutputs",
    "SSIMLoss",
    "TemporalLoss",
    "build_loss",
    "embedding_distance",
    "embedding_terms",
    "l1_loss",
    "laplacian_loss",
    "laplacian_pyramid",
    "load_embedding_network",
    "load_lpips",
    "lpips_loss",
    "lpips_weights_path",
    "mse_loss",
    "register_loss_term",
    "ssim_loss",
    "temporal_loss",
]
