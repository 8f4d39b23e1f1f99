"""The quality benchmark's combined report: every trial's scores side by side, and how long each
method took to reach the others' final quality.

"Time to reach" reads the snapshot curves: for a method A and another method B under the same
budget on the same task, it is the training seconds at which A's probe LPIPS first fell to B's final
probe LPIPS or below (None if it never did). The identity has no curve, but its LPIPS is a target too
(how long until a method beats the untouched plate).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SCORE_KEYS = ("psnr", "psnr_edited", "ssim", "lpips", "warping_error")


def seconds_to_reach(curve: Sequence[Mapping[str, float]], target: float) -> float | None:
    """Training seconds of the first point of ``curve`` whose LPIPS is at most ``target``; None if none."""
    for point in sorted(curve, key=lambda p: p["elapsed_s"]):
        if point["lpips"] <= target:
            return point["elapsed_s"]
    return None


def combine(results: Iterable[Mapping[str, Any]], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Trial results (``result.json`` contents) -> the combined ``quality.json`` document.

    Layout: ``results[task][budget][method]`` holds the scores, the steps and seconds trained and the
    final probe LPIPS; ``time_to_reach[task][budget][method]["<other>"]`` the seconds (or None);
    ``mean_over_tasks[budget][method]`` the scores averaged over the tasks where every method finished.
    """
    rows = list(results)
    identity = {r["spec"]["task"]: r for r in rows if r["spec"]["method"] == "identity"}
    budgets = sorted({_budget(r) for r in rows if r["spec"]["method"] != "identity"})
    table: dict[str, dict[str, dict[str, Any]]] = {}
    curves: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    recipes: dict[str, Any] = {}
    for r in rows:
        spec = r["spec"]
        if spec["method"] == "identity":
            continue
        entry = {**_scores(r), "steps": r["train"]["steps"], "train_seconds": r["train"]["seconds"],
                 "predict_s_per_frame": r.get("timing", {}).get("predict_s_per_frame"),
                 "probe_lpips": r["probe"]["final_lpips"], "curve": r["probe"]["curve"]}
        table.setdefault(spec["task"], {}).setdefault(_budget(r), {})[spec["method"]] = entry
        curves[(spec["task"], _budget(r), spec["method"])] = r["probe"]["curve"]
        recipes.setdefault(spec["method"], r.get("recipe"))
    for task, r in identity.items():
        for budget in budgets or ["none"]:
            table.setdefault(task, {}).setdefault(budget, {})["identity"] = {
                **_scores(r), "steps": 0, "train_seconds": 0.0, "probe_lpips": r["probe"]["final_lpips"]}

    reach: dict[str, dict[str, dict[str, dict[str, float | None]]]] = {}
    for task, by_budget in table.items():
        for budget, methods in by_budget.items():
            for method in methods:
                if (task, budget, method) not in curves:
                    continue
                targets = {other: m["probe_lpips"] for other, m in methods.items() if other != method}
                reach.setdefault(task, {}).setdefault(budget, {})[method] = {
                    other: seconds_to_reach(curves[(task, budget, method)], target) for other, target in targets.items()}
    return {
        "benchmark": "quality",
        "settings": dict(settings),
        "methods": {**recipes, "identity": {"what": "the untouched source frame"}},
        "results": table,
        "time_to_reach": reach,
        "mean_over_tasks": _means(table),
    }


def _means(table: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Any]]]]) -> dict[str, Any]:
    """Per budget and method, the scores averaged over the tasks where every method of that budget finished."""
    out: dict[str, Any] = {}
    budgets = {budget for by_budget in table.values() for budget in by_budget}
    for budget in sorted(budgets):
        present = [table[task][budget] for task in table if budget in table[task]]
        methods = set.intersection(*(set(m) for m in present)) if present else set()
        complete = [m for m in present if methods <= set(m)]
        out[budget] = {"tasks": len(complete), **{method: {key: _mean(m[method].get(key) for m in complete)
                                                           for key in SCORE_KEYS}
                                                  for method in sorted(methods)}}
    return out


def _scores(result: Mapping[str, Any]) -> dict[str, Any]:
    scores = result["scores"]
    return {**{key: scores.get(key) for key in (*SCORE_KEYS, "warping_error_truth")}, "frames": scores.get("frames")}


def _budget(result: Mapping[str, Any]) -> str:
    spec = result["spec"]
    return f"steps-{spec['steps']}" if spec.get("steps") else f"minutes-{spec['minutes']:g}"


def _mean(values: Iterable[Any]) -> float | None:
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return sum(kept) / len(kept) if kept else None


def markdown(combined: Mapping[str, Any]) -> str:
    """The combined report as Markdown tables: per budget, every task's scores by method, the means
    over tasks, and how long shotfit took to reach each other method's final quality (and they its)."""
    lines = ["# Quality against peers", ""]
    settings = combined.get("settings", {})
    if settings:
        lines += [", ".join(f"{key} {value}" for key, value in settings.items() if not isinstance(value, (dict, list))),
                  ""]
        if settings.get("overrides"):
            lines += ["shotfit's overrides: " + " ".join(f"`{o}`" for o in settings["overrides"]), ""]
    budgets = sorted({budget for by_budget in combined["results"].values() for budget in by_budget})
    for budget in budgets:
        lines += [f"## {budget}", "", "| task | method | PSNR | PSNR edited | SSIM | LPIPS | warping error | steps | train s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for task, by_budget in combined["results"].items():
            for method, row in sorted(by_budget.get(budget, {}).items()):
                lines.append(f"| {task} | {method} | {_cell(row.get('psnr'), 2)} | {_cell(row.get('psnr_edited'), 2)} | "
                             f"{_cell(row.get('ssim'), 3)} | "
                             f"{_cell(row.get('lpips'), 3)} | {_cell(row.get('warping_error'), 6)} | "
                             f"{row.get('steps', '')} | {_cell(row.get('train_seconds'), 0)} |")
        means = combined.get("mean_over_tasks", {}).get(budget, {})
        if means:
            lines += ["", f"Means over the {means['tasks']} tasks where every method finished:", "",
                      "| method | PSNR | PSNR edited | SSIM | LPIPS | warping error |", "|---|---|---|---|---|---|"]
            for method, row in sorted((m, r) for m, r in means.items() if m != "tasks"):
                lines.append(f"| {method} | {_cell(row.get('psnr'), 2)} | {_cell(row.get('psnr_edited'), 2)} | "
                             f"{_cell(row.get('ssim'), 3)} | {_cell(row.get('lpips'), 3)} | "
                             f"{_cell(row.get('warping_error'), 6)} |")
        lines += ["", "Training seconds until a method's probe LPIPS reached another's final one (- never):", "",
                  "| task | method | " + " | ".join(f"to {m}" for m in ("shotfit", "pix2pix", "texler", "identity")) + " |",
                  "|---|---|---|---|---|---|"]
        for task, by_budget in combined.get("time_to_reach", {}).items():
            for method, targets in sorted(by_budget.get(budget, {}).items()):
                cells = [("" if other == method or other not in targets else _cell(targets[other], 0))
                         for other in ("shotfit", "pix2pix", "texler", "identity")]
                lines.append(f"| {task} | {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if digits < 6 else f"{value:.2e}"
