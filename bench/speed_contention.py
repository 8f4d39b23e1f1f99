"""Training speed on a busy machine: steps/s quiet and beside a process that saturates one core, for
shotfit's CPU policy and for PyTorch's defaults (the contention part of ``bench/speed.py``).

A thread policy is a thread count and an OpenMP wait policy. The wait policy is read once, when the
OpenMP runtime starts as PyTorch is imported, so every policy trains in a process of its own (a
*probe*, this file run with ``--probe``). The bench starts one probe per policy, then in each round
asks every probe for a few seconds of steps on a quiet machine, starts the competing load (a Python
process spinning, pinned to one core), asks every probe again, and stops the load. Rounds interleave
the policies, so a drift in the machine's other work falls on all of them alike; the figures are
medians over every step of a phase kind.

Policies are named ``old`` (PyTorch's defaults: one thread per core, OpenMP's own wait policy, as
shotfit ran before it chose), ``new`` (what shotfit's entry points choose: :mod:`shotfit.cpus`),
or ``THREADS:WAIT`` with WAIT one of ``default`` (the runtime's), ``passive``, ``active`` or
``spin=N`` (GNU libgomp's spin count), e.g. ``1:passive``.

    python bench/speed_contention.py --policies old,new,1:passive,2:passive --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # run as a script: the checkout's bench package and its own shotfit
    sys.path[:0] = [str(path) for path in (_ROOT / "src", _ROOT) if path.is_dir()]

from shotfit.cpus import WAIT_VARIABLES, available_cores, default_threads, wait_environment  # noqa: E402

# Removed from every probe's environment, so each policy starts from the runtime's defaults.
POLICY_VARIABLES = (*WAIT_VARIABLES, "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# Spins until its parent (the bench) is gone, so a bench killed outright leaves no core busy behind it.
SPIN = ("import os; os.sched_setaffinity(0, {core}); parent = os.getppid(); print('spinning', flush=True)\n"
        "while os.getppid() == parent: pass")


@dataclass(frozen=True)
class Policy:
    """A thread count (0: the policy's own choice) and the environment a probe starts with."""

    name: str
    threads: int
    environment: dict[str, str] = field(default_factory=dict)
    shotfit: bool = False  # the probe applies shotfit's entry-point policy itself


def parse_policy(name: str) -> Policy:
    """``old``, ``new`` or ``THREADS:WAIT`` (see the module's docstring)."""
    if name == "old":
        return Policy(name, 0)
    if name == "new":
        return Policy(name, 0, shotfit=True)
    threads, sep, wait = name.partition(":")
    if not (sep and threads.isdigit() and int(threads) > 0):
        raise ValueError(f"policy {name!r} is not old, new or THREADS:WAIT (e.g. 1:passive)")
    if wait == "default":
        return Policy(name, int(threads))
    if wait in ("passive", "active"):
        return Policy(name, int(threads), {"OMP_WAIT_POLICY": wait.upper()})
    if wait.startswith("spin=") and wait[5:].isdigit():
        return Policy(name, int(threads), {"GOMP_SPINCOUNT": wait[5:]})
    raise ValueError(f"wait policy {wait!r} in {name!r} is not default, passive, active or spin=N")


# --- the probe: one policy's process -------------------------------------------------------------

def probe(policy: Policy, quick: bool) -> None:
    """Train in this process under ``policy``, answering ``run SECONDS`` lines on stdin with one JSON
    line of step times (at least two steps), until ``quit``."""
    if policy.shotfit:  # exactly what shotfit's main() does, before PyTorch is imported
        os.environ.update(wait_environment(os.environ))
    # PyTorch is imported only now: OpenMP reads the wait policy as it starts
    import torch

    from bench.speed_training import training_pairs
    from shotfit.archs import build_network, resolve_network_args
    from shotfit.config import Config, apply_overrides
    from shotfit.data.augment import PairedAugment
    from shotfit.device import configure_threads
    from shotfit.engine.trainer import Trainer
    from shotfit.losses import build_loss
    from shotfit.runs.folder import RunFolder

    configure_threads(default_threads(0) if policy.shotfit else policy.threads)
    cfg = Config()
    if quick:
        cfg = apply_overrides(cfg, ["model.width=8", "model.depth=2", "augment.patch_size=32", "data.batch_size=2"])
    device = torch.device("cpu")
    keyframes = training_pairs(device)
    args = resolve_network_args(cfg.model.arch, {"in_channels": 3, "out_channels": 3, **cfg.model.args})
    torch.manual_seed(cfg.train.seed)
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(build_network(cfg.model.arch, **args), {"arch": cfg.model.arch, "args": args},
                          build_loss(cfg.loss), PairedAugment(cfg.augment), keyframes,
                          RunFolder(Path(folder) / "run"), cfg.train, cfg.data, device)
        trainer.horizon = cfg.train.steps

        def steps(seconds: float) -> dict[str, Any]:
            times, cpu = [], []
            started = time.perf_counter()
            while len(times) < 2 or time.perf_counter() - started < seconds:
                wall, used = time.perf_counter(), time.process_time()
                trainer.train_step()
                trainer.step = (trainer.step + 1) % cfg.train.steps
                times.append(time.perf_counter() - wall)
                cpu.append(time.process_time() - used)
            return {"seconds": times, "cpu_seconds": cpu}

        steps(0)  # warm-up: oneDNN's kernels, the allocator
        _answer({"ready": True, "threads": torch.get_num_threads(),
                 "wait": {name: os.environ[name] for name in WAIT_VARIABLES if name in os.environ}})
        for line in sys.stdin:
            command, _, value = line.strip().partition(" ")
            if command != "run":
                break
            _answer(steps(float(value)))


def _answer(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


# --- the bench: every policy, quiet and loaded ---------------------------------------------------

class Probe:
    """A probe process for one policy."""

    def __init__(self, policy: Policy, quick: bool) -> None:
        self.policy = policy
        env = {k: v for k, v in os.environ.items() if k not in POLICY_VARIABLES}
        env.update(policy.environment)
        env["PYTHONPATH"] = os.pathsep.join([str(_ROOT / "src"), str(_ROOT), *filter(None, [env.get("PYTHONPATH")])])
        command = [sys.executable, str(Path(__file__).resolve()), "--probe", policy.name] + (["--quick"] if quick else [])
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.info = self._read()

    def run(self, seconds: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(f"run {seconds}\n")
        self.process.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the probe for policy {self.policy.name!r} ended (exit status {self.process.wait()})")
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def busy_core(core: int) -> Iterator[None]:
    """A Python process spinning on ``core`` (pinned to it) while the block runs."""
    spinner = subprocess.Popen([sys.executable, "-c", SPIN.format(core={core})], stdout=subprocess.PIPE, text=True)
    try:
        assert spinner.stdout is not None
        spinner.stdout.readline()  # pinned and spinning
        yield
    finally:
        spinner.kill()
        spinner.wait()


def measure_contention(policies: list[str], rounds: int = 3, seconds: float = 8.0, quick: bool = False,
                       core: int | None = None) -> dict[str, Any]:
    """Steps/s of each policy quiet and beside one busy core, and the share of its quiet speed it keeps.

    Args:
        policies: names as :func:`parse_policy` reads them.
        rounds: quiet and loaded phases per policy.
        seconds: the length of each phase (at least two steps).
        quick: the tiny network of ``bench/speed.py --quick`` (a smoke test: its steps are too short
            for the figures to mean much).
        core: the core the load is pinned to (default: the last one this process may use).
    """
    parsed = [parse_policy(name) for name in policies]
    core = max(os.sched_getaffinity(0)) if core is None else core
    probes: list[Probe] = []
    phases: dict[str, dict[str, list[dict[str, Any]]]] = {p.name: {"quiet": [], "loaded": []} for p in parsed}
    try:
        for policy in parsed:
            probes.append(Probe(policy, quick))
        for round_ in range(rounds):
            order = probes[round_ % len(probes):] + probes[:round_ % len(probes)]  # no policy always first
            for each in order:
                phases[each.policy.name]["quiet"].append(_phase(each, seconds, round_, "quiet"))
            with busy_core(core):
                for each in order:
                    phases[each.policy.name]["loaded"].append(_phase(each, seconds, round_, "loaded"))
    finally:
        for each in probes:
            each.close()
    result: dict[str, Any] = {
        "load": f"one Python process spinning, pinned to core {core}", "rounds": rounds, "phase_s": seconds,
        "cores_available": available_cores(), "quick": quick,
        "policies": {each.policy.name: _summary(each, phases[each.policy.name]) for each in probes},
    }
    names = [p.name for p in parsed]
    if "old" in names and "new" in names:
        old, new = result["policies"]["old"], result["policies"]["new"]
        result["new_vs_old"] = {"quiet": round(new["quiet_steps_per_s"] / old["quiet_steps_per_s"], 3),
                                "loaded": round(new["loaded_steps_per_s"] / old["loaded_steps_per_s"], 3)}
    return result


def _phase(each: Probe, seconds: float, round_: int, kind: str) -> dict[str, Any]:
    """One phase of one probe, with the machine's load average (1 minute) as it ended: what else ran."""
    steps = each.run(seconds)
    steps["load_average"] = os.getloadavg()[0]
    print(f"round {round_ + 1} {kind:6} {each.policy.name:14} {len(steps['seconds'])} steps, median "
          f"{statistics.median(steps['seconds']):.3f} s, load average {steps['load_average']:.1f}", file=sys.stderr)
    return steps


def _summary(each: Probe, phases: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians over every step of each phase kind, and the share of quiet speed kept round by round."""
    out: dict[str, Any] = {"threads": each.info["threads"], "wait": each.info["wait"] or "runtime default"}
    for kind in ("quiet", "loaded"):
        times = [t for phase in phases[kind] for t in phase["seconds"]]
        cpu = [t for phase in phases[kind] for t in phase["cpu_seconds"]]
        out[f"{kind}_steps_per_s"] = round(1 / statistics.median(times), 4)
        out[f"{kind}_steps"] = len(times)
        out[f"{kind}_cpu_per_wall"] = round(sum(cpu) / sum(times), 2)  # above 1: threads busy (or spinning)
        out[f"{kind}_load_average"] = round(statistics.median(phase["load_average"] for phase in phases[kind]), 1)
    out["kept"] = round(out["loaded_steps_per_s"] / out["quiet_steps_per_s"], 3)
    out["kept_by_round"] = [round(statistics.median(quiet["seconds"]) / statistics.median(loaded["seconds"]), 3)
                            for quiet, loaded in zip(phases["quiet"], phases["loaded"])]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", default="old,new", help="comma-separated policies (old, new, THREADS:WAIT)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each quiet or loaded phase")
    parser.add_argument("--core", type=int, help="the core the competing load is pinned to (default: the last)")
    parser.add_argument("--quick", action="store_true", help="a tiny network, for a smoke test")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        probe(parse_policy(args.probe), args.quick)
        return 0
    result = measure_contention(args.policies.split(","), args.rounds, args.seconds, args.quick, args.core)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
