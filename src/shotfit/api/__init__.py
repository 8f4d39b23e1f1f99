"""The Python API: train, render, export, evaluate and benchmark. The CLI only parses arguments and calls these.

Each command takes a request (:class:`TrainRequest`, :class:`RenderRequest`, :class:`ExportRequest`,
:class:`EvaluateRequest`: frozen, typed; what the CLI, the SageMaker container and sweep trials build),
or, for a short call, the request's fields. User errors surface as one-line
:class:`~shotfit.errors.ShotfitError` subclasses whose ``parameter`` names the request field at fault.

Example:
    >>> from shotfit import api
    >>> request = api.TrainRequest("plate/", "fixed/", "runs/beauty", overrides=("train.steps=1500",))
    >>> summary = api.train(request)  # doctest: +SKIP
    >>> api.render(api.RenderRequest("runs/beauty", "plate/", "render/"))  # doctest: +SKIP
    >>> api.render("runs/beauty", "plate/", "render/")  # the same, as a short call  # doctest: +SKIP
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
    from shotfit.engine.trainer import StoppedBy
    from shotfit.runs.record import RunInfo
    from shotfit.workflows.requests import (EvaluateRequest, ExportRequest, RenderRequest, TrainCallbacks,
                                            TrainRequest)

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
    "StoppedBy": "shotfit.engine.trainer", "RunInfo": "shotfit.runs.record",
    "TrainRequest": "shotfit.workflows.requests", "TrainCallbacks": "shotfit.workflows.requests",
    "RenderRequest": "shotfit.workflows.requests", "ExportRequest": "shotfit.workflows.requests",
    "EvaluateRequest": "shotfit.workflows.requests",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'shotfit.api' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
