"""The Python API: train, render, evaluate and benchmark. The CLI only parses arguments and calls these.

Each function builds the objects its config names (network, loss, augmentation, trackers) and hands
them to the engine; user errors surface as one-line :class:`~shotfit.errors.ShotfitError` subclasses.

Example:
    >>> from shotfit import api
    >>> api.train("plate/", "fixed/", "runs/beauty", overrides=["train.steps=1500"])  # doctest: +SKIP
    >>> api.render("runs/beauty", "plate/", "render/")  # doctest: +SKIP
"""

from shotfit.api.benchmarking import ArchBenchResult, bench_archs
from shotfit.api.rendering import evaluate, render
from shotfit.api.training import TrainSummary, build_loss, train
from shotfit.engine.tracking import TrackingOptions
from shotfit.infer.render import RenderResult

__all__ = ["ArchBenchResult", "RenderResult", "TrackingOptions", "TrainSummary", "bench_archs", "build_loss",
           "evaluate", "render", "train"]
