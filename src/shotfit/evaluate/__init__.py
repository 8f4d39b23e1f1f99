"""Evaluation: PSNR / SSIM / LPIPS per frame, the temporal warping error, and reports over a shot."""

from shotfit.evaluate.metrics import high_frequency_error, lpips, psnr, ssim
from shotfit.evaluate.report import EvalReport, FrameScores, PairScores, evaluate_frames
from shotfit.evaluate.warping import (
    FlowPair,
    compute_flows,
    flow_between,
    iter_flows,
    pair_warping_error,
    visibility_mask,
    warp_back,
    warping_error,
)

__all__ = [
    "EvalReport",
    "FlowPair",
    "FrameScores",
    "PairScores",
    "compute_flows",
    "evaluate_frames",
    "flow_between",
    "high_frequency_error",
    "iter_flows",
    "lpips",
    "pair_warping_error",
    "psnr",
    "ssim",
    "visibility_mask",
    "warp_back",
    "warping_error",
]
