"""The Python API: train, render, export, evaluate, suggest frames to paint, and benchmark. The CLI only
parses arguments and calls these.

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
    from shotfit.api.cloud import JobsRequest, LaunchRequest, LaunchResult, fetch, launch, status, stop
    from shotfit.api.sample import DemoRequest, DemoResult, demo
    from shotfit.api.suggesting import suggest
    from shotfit.api.sweeping import SweepRequest, sweep
    from shotfit.compare.archs import SAMPLE_SHOT, BenchShot
    from shotfit.engine.tracking_options import TrackingOptions
    from shotfit.engine.trainer import StoppedBy
    from shotfit.infer.render import RenderResult
    from shotfit.losses import build_loss
    from shotfit.runs.record import RunInfo
    from shotfit.search.results import SweepResult
    from shotfit.search.spec import load_sweep
    from shotfit.suggest.request import SuggestedFrame, SuggestRequest, SuggestResult
    from shotfit.suggest.workflow import SuggestProgress
    from shotfit.workflows.exporting import ExportResult, export
    from shotfit.workflows.rendering import evaluate, render
    from shotfit.workflows.requests import EvaluateRequest, ExportRequest, RenderRequest, TrainCallbacks, TrainRequest
    from shotfit.workflows.training import TrainSummary, train

# Each name's module, imported on first use: `render --engine onnxruntime` runs where PyTorch is not
# installed, and the command line starts without importing it.
_MODULES = {
    "shotfit.workflows.requests": ('TrainRequest', 'TrainCallbacks', 'RenderRequest', 'ExportRequest', 'EvaluateRequest'),
    "shotfit.workflows.training": ('TrainSummary', 'train'),
    "shotfit.workflows.rendering": ('evaluate', 'render'),
    "shotfit.workflows.exporting": ('ExportResult', 'export'),
    "shotfit.infer.render": ('RenderResult',),
    "shotfit.engine.trainer": ('StoppedBy',),
    "shotfit.engine.tracking_options": ('TrackingOptions',),
    "shotfit.runs.record": ('RunInfo',),
    "shotfit.losses": ('build_loss',),
    "shotfit.api.sweeping": ('SweepRequest', 'sweep'),
    "shotfit.search.spec": ('load_sweep',),
    "shotfit.search.results": ('SweepResult',),
    "shotfit.api.sample": ('DemoRequest', 'DemoResult', 'demo'),
    "shotfit.api.benchmarking": ('ArchBenchResult', 'bench_archs'),
    "shotfit.compare.archs": ('BenchShot', 'SAMPLE_SHOT'),
    "shotfit.api.cloud": ('LaunchRequest', 'LaunchResult', 'JobsRequest', 'launch', 'status', 'stop', 'fetch'),
    "shotfit.suggest.request": ('SuggestRequest', 'SuggestResult', 'SuggestedFrame'),
    "shotfit.suggest.workflow": ('SuggestProgress',),
    "shotfit.api.suggesting": ('suggest',),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "ArchBenchResult",
    "BenchShot",
    "DemoRequest",
    "DemoResult",
    "EvaluateRequest",
    "ExportRequest",
    "ExportResult",
    "JobsRequest",
    "LaunchRequest",
    "LaunchResult",
    "RenderRequest",
    "RenderResult",
    "RunInfo",
    "SAMPLE_SHOT",
    "StoppedBy",
    "SuggestProgress",
    "SuggestRequest",
    "SuggestResult",
    "SuggestedFrame",
    "SweepRequest",
    "SweepResult",
    "TrackingOptions",
    "TrainCallbacks",
    "TrainRequest",
    "TrainSummary",
    "bench_archs",
    "build_loss",
    "demo",
    "evaluate",
    "export",
    "fetch",
    "launch",
    "load_sweep",
    "render",
    "status",
    "stop",
    "suggest",
    "sweep",
    "train",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'shotfit.api' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
