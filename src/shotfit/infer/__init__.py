"""Inference: tiling, the predictor and rendering a sequence (knows no trainer)."""
