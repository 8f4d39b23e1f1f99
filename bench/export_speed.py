#!/usr/bin/env python
"""How long the end of a training run spends logging its network to MLflow (torch.export, pt2); JSON out.

    python bench/export_speed.py                                # the default NAFNet, and without TLC pooling
    python bench/export_speed.py --nets "nafnet;unet_attn"     # registered names with their defaults
    python bench/export_speed.py --nets "nafnet:width=8 enc_blocks=[1] dec_blocks=[1]"  # JSON values

Each network is built with its default options and a random last layer (so its output is not its
input), logged as the trainer logs it (:meth:`MlflowTracker.log_model` with a (1, C, 64, 64) example,
into a fresh sqlite store under a temporary folder), loaded back with ``mlflow.pytorch.load_model``
and compared with the eager network on frames of other sizes: the export must stay dynamic in H and W
and give the same numbers. Prints one JSON object: seconds to log, the largest difference per size,
the process's CPU seconds for the same call (torch.export runs on one core, so on a busy box they
stay near the quiet wall time while the wall time grows), and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# An entry point run as `python bench/export_speed.py`: the checkout's own shotfit first.
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(path) for path in (_ROOT / "src", _ROOT) if path.is_dir()]

import torch  # noqa: E402
from torch import nn  # noqa: E402

from shotfit.archs import build_network  # noqa: E402
from shotfit.engine.tracking import TrackingOptions, start_tracking  # noqa: E402

SIZES = ((37, 53), (270, 480))


def _network(spec: str) -> nn.Module:
    """``NAME`` or ``NAME:key=value key=value`` (JSON values) built with a seeded random last layer, in eval mode."""
    name, _, rest = spec.partition(":")
    options = {key: json.loads(value) for key, value in (item.split("=", 1) for item in rest.split())}
    torch.manual_seed(0)
    network = build_network(name, in_channels=3, out_channels=3, **options)
    last = [m for m in network.modules() if isinstance(m, nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.normal_(0, 0.05)
    return network.eval()


def measure(spec: str) -> dict[str, object]:
    """Seconds to log ``spec`` as the trainer does, and the loaded model's largest difference from eager."""
    import mlflow.pytorch  # only a bench of MLflow logging needs it

    network = _network(spec)
    with tempfile.TemporaryDirectory(prefix="shotfit-bench-export-") as tmp:
        os.environ["HOME"] = tmp  # MLflow writes into $HOME
        tracker, ids = start_tracking(TrackingOptions(), Path(tmp) / "run1", {}, {})
        start, cpu_start = time.perf_counter(), time.process_time()
        tracker.log_model(network, torch.zeros(1, 3, 64, 64))
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        tracker.finish({}, {})
        os.environ["MLFLOW_TRACKING_URI"] = ids["mlflow_tracking_uri"]
        try:
            loaded = mlflow.pytorch.load_model(f"runs:/{ids['mlflow_run_id']}/model")
        except Exception as err:  # a failed export leaves no model: say so in the JSON
            return {"log_model_s": round(seconds, 1), "log_model_cpu_s": round(cpu_seconds, 1),
                    "error": f"{type(err).__name__}: {err}"[:300]}
        finally:
            del os.environ["MLFLOW_TRACKING_URI"]
        differences: dict[str, object] = {}
        with torch.no_grad():
            for height, width in SIZES:
                x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(1)) * 2 - 1
                try:
                    got, expected = loaded(x), network(x)
                    differences[f"{height}x{width}"] = float((got - expected).abs().max())
                except Exception as err:  # a graph fixed to the example's size refuses others
                    differences[f"{height}x{width}"] = f"{type(err).__name__}: {err}"[:200]
    return {"log_model_s": round(seconds, 1), "log_model_cpu_s": round(cpu_seconds, 1),
            "max_abs_difference": differences}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", default="nafnet;nafnet:pool_window=0",
                        help="networks separated by ';', each NAME or NAME:key=value key=value")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    specs = [spec.strip() for spec in args.nets.split(";") if spec.strip()]
    result: dict[str, object] = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                                 "load_before": os.getloadavg(), "code": str(_ROOT), "nets": {}}
    for spec in specs:
        result["nets"][spec] = measure(spec)  # type: ignore[index]
    result["load_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
