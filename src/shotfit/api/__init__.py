"""The Python API: train, render, evaluate and benchmark. The CLI only parses arguments and calls these.

Each function builds the objects its config names (network, loss, augmentation, trackers) and hands
them to the engine; user errors surface as one-line :class:`~shotfit.errors.ShotfitError` subclasses.

Example:
    >>> from shotfit import api
    >>> api.train("plate/", "fixed/", "runs/beauty", overrides=["train.steps=1500"])  # doctest: +SKIP
    >>> api.render("runs/beauty", "plate/", "render/")  # doctest: +SKIP
"""


from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shotfit.api.benchmarking import ArchBenchResult, bench_archs
    from shotfit.compare.archs import SAMPLE_SHOT, BenchShot
    from shotfit.workflows.exporting import ExportResult, export
    from shotfit.workflows.rendering import evaluate, render
    from shotfit.workflows.training import TrainSummary, train
    from shotfit.losses import build_loss
    from shotfit.engine.tracking_options import TrackingOptions
    from shotfit.infer.render import RenderResult
    from shotfit.api.sweeping import SweepRequest, sweep
    from shotfit.search.spec import load_sweep
    from shotfit.search.results import SweepResult
    from shotfit.api.sample import DemoRequest, DemoResult, demo
    from shotfit.api.cloud import JobsRequest, LaunchRequest, LaunchResult, fetch, launch, status, stop

# Imported on first use, so that `render --engine onnxruntime` runs where PyTorch is not installed.
_WHERE = {
    "ArchBenchResult": "shotfit.api.benchmarking", "bench_archs": "shotfit.api.benchmarking",
    "BenchShot": "shotfit.compare.archs", "SAMPLE_SHOT": "shotfit.compare.archs",
    "ExportResult": "shotfit.workflows.exporting", "export": "shotfit.workflows.exporting",
    "evaluate": "shotfit.workflows.rendering", "render": "shotfit.workflows.rendering",
    "TrainSummary": "shotfit.workflows.training", "build_loss": "shotfit.losses", "train": "shotfit.workflows.training",
    "TrackingOptions": "shotfit.engine.tracking_options", "RenderResult": "shotfit.infer.render",
    "SweepRequest": "shotfit.api.sweeping", "sweep": "shotfit.api.sweeping", "load_sweep": "shotfit.search.spec",
    "SweepResult": "shotfit.search.results",
    "DemoRequest": "shotfit.api.sample", "DemoResult": "shotfit.api.sample", "demo": "shotfit.api.sample",
    "LaunchRequest": "shotfit.api.cloud", "LaunchResult": "shotfit.api.cloud", "JobsRequest": "shotfit.api.cloud",
    "launch": "shotfit.api.cloud", "status": "shotfit.api.cloud", "stop": "shotfit.api.cloud",
    "fetch": "shotfit.api.cloud",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'shotfit.api' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
