#!/usr/bin/env python
"""What counting a key's requests in the store adds to each request, on SQLite and PostgreSQL; JSON out.

    python bench/service_rate.py                          # SQLite, and a throw-away PostgreSQL when installed
    python bench/service_rate.py --postgres postgresql://USER@HOST/DB

Every API request runs ``deps.admit``: the key's row (one SELECT) and, when the key has a rate limit, its
count for the minute (one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``), in one connection and one
transaction. This times ``admit`` with the count and without it (a key with no limit), back to back in
``--rounds`` alternating rounds of ``--requests`` calls; the best round of each is reported (a busy machine
only ever makes a round slower). Wall-clock p50/p99 per call and the process's CPU per call.

``sqlite_threads``: ``--threads`` threads (the server's thread pool under as many pollers) counting at once,
with the store's write turn (``Store.write_turn``: one writer per process, the others woken as it frees) and
without it (every thread left to SQLite's busy handler, which sleeps up to 100 ms between tries, as before
the turn existed), alternating, in the same run.

The throw-away PostgreSQL server is the tests' (``tests/service/postgres.py``: Debian's postgresql, its own
cluster in a temporary folder, ``fsync=off``); a real server with fsync on makes the count cheaper relative to
a plain commit, since the count's transaction does not wait for the disk.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from shotfit.service.deps import admit
from shotfit.service.keys import create_key
from shotfit.service.store import Store, open_store

_ROOT = Path(__file__).resolve().parents[1]


def _round(store: Store, key: str, rate: int, requests: int) -> dict:
    walls = []
    cpu = time.process_time()
    for _ in range(requests):
        start = time.perf_counter()
        admit(store, key, rate, time.time())
        walls.append(time.perf_counter() - start)
    walls.sort()
    return {"p50_us": round(statistics.median(walls) * 1e6), "p99_us": round(walls[int(0.99 * (len(walls) - 1))] * 1e6),
            "cpu_us": round((time.process_time() - cpu) / requests * 1e6)}


def _threads_round(store: Store, key: str, threads: int, requests: int, interval: float) -> list[float]:
    walls: list[float] = []
    start_together = threading.Barrier(threads)

    def one(index: int) -> None:
        start_together.wait()
        time.sleep(interval * index / threads)  # paced callers start spread over one interval
        for _ in range(requests):
            start = time.perf_counter()
            admit(store, key, 10**9, time.time())
            walls.append(time.perf_counter() - start)
            time.sleep(max(0.0, interval - (time.perf_counter() - start)))

    pool = [threading.Thread(target=one, args=(index,)) for index in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return walls


def measure_threads(url: str, rounds: int, threads: int, requests: int, interval: float) -> dict:
    """Calls by ``threads`` threads at once, each every ``interval`` s (0: back to back), with the write turn
    and without it (all rounds pooled)."""
    store = open_store(url)
    turn = store._writer  # noqa: SLF001 - the bench switches the turn off to measure what it saves
    try:
        _, key = create_key(store, "bench")
        _threads_round(store, key, threads, 20, 0)
        walls: dict[str, list[float]] = {"with_turn": [], "without_turn": []}
        for _ in range(rounds):
            for label in walls:
                store._writer = turn if label == "with_turn" else None  # noqa: SLF001
                walls[label] += _threads_round(store, key, threads, requests, interval)
    finally:
        store._writer = turn  # noqa: SLF001
        store.close()
    return {"threads": threads, "interval_s": interval, **{label: _latencies(values) for label, values in walls.items()}}


def _latencies(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"calls": len(ordered), "p50_ms": round(statistics.median(ordered) * 1e3, 2),
            "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1e3, 2), "max_ms": round(ordered[-1] * 1e3, 2)}


def measure(url: str, rounds: int, requests: int) -> dict:
    store = open_store(url)
    try:
        _, key = create_key(store, "bench")
        for rate in (0, 10**9):  # warm: connections in the pool, statements compiled
            _round(store, key, rate, 100)
        best: dict[str, dict] = {}
        for _ in range(rounds):
            for label, rate in (("key_only", 0), ("key_and_count", 10**9)):
                result = _round(store, key, rate, requests)
                if label not in best or result["p50_us"] < best[label]["p50_us"]:
                    best[label] = result
    finally:
        store.close()
    added = {f"added_{name}": best["key_and_count"][name] - best["key_only"][name] for name in ("p50_us", "cpu_us")}
    return {**best, **added}


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str | None]:
    sys.path.insert(0, str(_ROOT / "tests" / "service"))
    try:
        from postgres import postgres_bin, postgres_server  # the tests' helper; absent from an installed wheel
    except ImportError:
        yield None
        return
    if postgres_bin() is None:
        yield None
        return
    with postgres_server() as url:
        yield url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL to measure on (default: a throw-away server)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000, help="calls a round")
    parser.add_argument("--threads", type=int, default=50, help="threads counting at once (0: skip)")
    parser.add_argument("--thread-requests", type=int, default=20, help="calls per thread a round")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between one paced thread's calls")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the JSON there")
    args = parser.parse_args(argv)
    result: dict = {"machine": {"cpus": os.cpu_count(), "load_before": [round(x, 2) for x in os.getloadavg()]}}
    with tempfile.TemporaryDirectory(prefix="shotfit-bench-rate-") as folder:
        result["sqlite"] = measure(f"sqlite:///{folder}/store.db", args.rounds, args.requests)
        if args.threads:
            for interval in (args.interval, 0.0):
                result[f"sqlite_threads_{'paced' if interval else 'back_to_back'}"] = measure_threads(
                    f"sqlite:///{folder}/threads-{interval}.db", args.rounds, args.threads, args.thread_requests,
                    interval)
    if args.skip_postgres:
        pass
    elif args.postgres:
        result["postgresql"] = measure(args.postgres, args.rounds, args.requests)
    else:
        with throwaway_postgres() as url:
            result["postgresql"] = measure(url, args.rounds, args.requests) if url else "skipped: no PostgreSQL here"
    result["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
