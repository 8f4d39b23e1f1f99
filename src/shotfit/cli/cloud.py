"""``shotfit cloud launch|status|fetch|prices``: train the best configs on SageMaker, watch them, bring them home."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml
from rich.table import Table

from shotfit import api
from shotfit.cli.app import app, user_errors
from shotfit.cli.display import console, err_console, fmt, progress_display
from shotfit.cloud.prices import PRICE_PAGE, PRICES, PRICES_CHECKED, PRICES_REGION
from shotfit.errors import ShotfitError

cloud_app = typer.Typer(no_args_is_help=True, help="Train on AWS SageMaker (needs the aws extra): launch the "
                        "best configs of a sweep side by side, watch them, fetch the runs.")
app.add_typer(cloud_app, name="cloud")

OutOpt = Annotated[Path, typer.Option("--out", help="The launch folder: jobs.json (the record) and the fetched "
                                      "run folders.")]
JobsArg = Annotated[Optional[list[str]], typer.Argument(metavar="[JOB]...", help="Job names (default: every "
                                                        "job in OUT/jobs.json).")]


@cloud_app.command("launch")
def launch(
    sweep: Annotated[Optional[Path], typer.Option("--sweep", help="A sweep folder ('shotfit sweep --out'): "
                                                  "launch its best finished trials.")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="How many of the sweep's best trials.")] = 5,
    config: Annotated[Optional[list[Path]], typer.Option("--config", help="A config file to train (repeat "
                                                         "for several jobs); instead of --sweep.")] = None,
    source: Annotated[Optional[str], typer.Option("--source", help="The shot: folder, frame pattern or video "
                                                  "(default: the sweep's).")] = None,
    target: Annotated[Optional[str], typer.Option("--target", help="Its edited keyframes (default: the "
                                                  "sweep's).")] = None,
    mask: Annotated[Optional[str], typer.Option("--mask", help="Per-keyframe mattes, or 'alpha'.")] = None,
    image: Annotated[Optional[str], typer.Option("--image", envvar="SHOTFIT_IMAGE", help="The shotfit training "
                                                 "image in ECR (docs/cloud.md builds it).")] = None,
    role: Annotated[Optional[str], typer.Option("--role", envvar="SHOTFIT_SAGEMAKER_ROLE", help="IAM role ARN "
                                                "the jobs run as.")] = None,
    s3: Annotated[Optional[str], typer.Option("--s3", envvar="SHOTFIT_S3", help="s3://bucket/prefix for the "
                                              "shot, checkpoints and models.")] = None,
    instance_type: Annotated[str, typer.Option("--instance-type", help="SageMaker training instance "
                                               "('shotfit cloud prices' lists the known ones).")] = "ml.g5.xlarge",
    spot: Annotated[bool, typer.Option("--spot/--no-spot", help="Managed spot training (resumes from its "
                                       "checkpoint after an interruption).")] = True,
    minutes: Annotated[float, typer.Option("--minutes", help="Time budget per job, start to finish; training "
                                           "gets it less max(10%, 3 min).")] = 60.0,
    max_wait: Annotated[Optional[float], typer.Option("--max-wait", help="Spot: minutes a job may wait for "
                                                      "capacity and run, in all (default: twice --minutes).")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Stop at this step if the time budget "
                                                 "lasts (default: a config file's train.steps, else none).")] = None,
    max_cost: Annotated[Optional[float], typer.Option("--max-cost", min=0, help="Start nothing if the estimate "
                                                      "is above this many USD.")] = None,
    hourly_price: Annotated[Optional[float], typer.Option("--hourly-price", help="USD per instance-hour "
                                                          "(default: the built-in us-east-1 table).")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option("--tracking-uri", envvar="MLFLOW_TRACKING_URI",
                                                        help="MLflow server the jobs log to.")] = None,
    no_tracking: Annotated[bool, typer.Option("--no-tracking", help="Do not pass an MLflow server.")] = False,
    experiment: Annotated[str, typer.Option("--experiment", help="MLflow experiment name.")] = "shotfit",
    hold_out: Annotated[bool, typer.Option("--hold-out/--no-hold-out", help="Keep the sweep's held-out "
                                           "keyframes out of training (val/* curves), or train on all.")] = True,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config value in every job: "
                                                      "section.key=value.")] = None,
    region: Annotated[Optional[str], typer.Option("--region", help="AWS region (default: your AWS "
                                                  "configuration's).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and the requests; create "
                                          "nothing.")] = False,
    out: OutOpt = Path("cloud"),
) -> None:
    """Start one SageMaker training job per config, after printing what it may cost."""
    def say(line: str) -> None:
        console.print(line, highlight=False, markup=False, soft_wrap=True)

    request = api.LaunchRequest(sweep=sweep, top=top, configs=tuple(config or ()), source=source, keyframes=target,
                                masks=mask, hold_out=hold_out, overrides=tuple(set_ or ()), image=image, role=role,
                                s3=s3, instance_type=instance_type, spot=spot, minutes=minutes, max_wait=max_wait,
                                steps=steps, max_cost=max_cost, hourly_price=hourly_price,
                                tracking_uri=None if no_tracking else tracking_uri or None, experiment=experiment,
                                region=region, dry_run=dry_run, out=out)
    with user_errors(), file_progress() as progress_row:
        result = api.launch(request, say, on_hash=progress_row("hash"), on_upload=progress_row("upload"))
    if result.dry_run:
        console.print(yaml.safe_dump(result.summaries(), sort_keys=False, width=120), highlight=False, markup=False)
        console.print("dry run: nothing was uploaded or started", highlight=False)
        return
    started = result.started
    console.print(f"{len(started)} job{'s' if len(started) != 1 else ''} started, recorded in {out / 'jobs.json'}; "
                  f"watch: shotfit cloud status --out {out} --watch 60; then: shotfit cloud fetch --out {out}",
                  highlight=False, soft_wrap=True)


@cloud_app.command("status")
def status(
    jobs: JobsArg = None,
    out: OutOpt = Path("cloud"),
    watch: Annotated[Optional[float], typer.Option("--watch", min=1, help="Refresh every SECONDS until every "
                                                   "job has ended.")] = None,
) -> None:
    """Each job's state, time, cost so far and latest numbers (from its log)."""

    live = None

    def show(states) -> None:
        nonlocal live
        table = status_table(states)
        if watch is not None and console.is_terminal:  # redrawn in place
            if live is None:
                from rich.live import Live

                live = Live(table, console=console, auto_refresh=False)
                live.start()
            live.update(table, refresh=True)
        else:  # a log or a pipe: whole cells, however narrow its default width
            from rich.console import Console

            Console(file=console.file, width=max(console.width, 160), no_color=True).print(table)

    with user_errors():
        try:
            states = api.status(api.JobsRequest(out, tuple(jobs or ())), show, watch)
        finally:
            if live is not None:
                live.stop()
    for note in dict.fromkeys(s.note for s in states if s.note):
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    for state in states:
        if state.failure:
            console.print(f"{state.name}: {state.failure}", highlight=False, markup=False, soft_wrap=True)
    done = sum(s.status == "Completed" for s in states)
    if done:
        console.print(f"{done} of {len(states)} completed; fetch them: shotfit cloud fetch --out {out}",
                      highlight=False)


@cloud_app.command("stop")
def stop(
    jobs: JobsArg = None,
    out: OutOpt = Path("cloud"),
    every: Annotated[bool, typer.Option("--all", help="Stop every job of the launch folder that still runs.")] = False,
) -> None:
    """Stop jobs early (a losing config): each saves the weights of its current step, which fetch brings home."""

    with user_errors():
        outcomes = api.stop(api.JobsRequest(out, tuple(jobs or ())), every_job=every)
    for name, outcome in outcomes:
        console.print(f"{name}: {outcome}", highlight=False, markup=False, soft_wrap=True)
    if any(outcome == "stopping" for _, outcome in outcomes):
        console.print(f"then: shotfit cloud fetch --out {out} (jobs stopped while training keep their last "
                      "step's weights)", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def file_progress() -> Iterator[Callable[[str], Callable[[int, int], None] | None]]:
    """``row(name)``: a progress row counting files, ``update(done, total)``, shown from its first update,
    on a terminal only; the rows go when done (the lines printed say what was done)."""
    if not err_console.is_terminal:
        yield lambda name: None
        return
    with progress_display() as progress:
        progress.live.transient = True

        def row(name: str) -> Callable[[int, int], None]:
            task = None

            def update(done: int, total: int) -> None:
                nonlocal task
                if task is None:
                    task = progress.add_task(name, total=None, info="files")
                progress.update(task, completed=done, total=total)
            return update
        yield row


def status_table(states) -> Table:
    """One row per job: state, times, cost, and the numbers a TD compares (step, loss, val/*)."""
    table = Table(title="SageMaker training jobs")
    columns = ("job", "trial", "state", "elapsed", "billed", "USD", "step", "loss/total", "val/psnr", "val/lpips")
    for column in columns:
        table.add_column(column, justify="left" if column in ("job", "trial", "state") else "right",
                         no_wrap=column == "job")
    for s in states:
        cost = s.cost_usd
        table.add_row(s.name, s.trial, s.state, _duration(s.elapsed_s), _duration(s.billable_s),
                      "-" if cost is None else f"{cost:.2f}", "-" if s.step is None else str(s.step),
                      fmt(s.metrics.get("loss/total"), 4), fmt(s.metrics.get("val/psnr"), 2),
                      fmt(s.metrics.get("val/lpips"), 4))
    return table


@cloud_app.command("fetch")
def fetch(jobs: JobsArg = None, out: OutOpt = Path("cloud")) -> None:
    """Download the completed jobs' models as run folders OUT/JOB (for 'shotfit render --run')."""

    def tell(result) -> None:
        if result.outcome == "fetched":
            early = f" ({result.detail})" if result.stopped_early else ""
            line = f"{result.name}: fetched into {result.folder}{early}"
        elif result.outcome == "already fetched":
            line = f"{result.name}: already fetched ({result.folder})"
        elif result.outcome == "not finished":
            line = f"{result.name}: not finished yet ({result.detail})"
        else:
            line = f"{result.name}: {result.outcome}: {result.detail}"
        console.print(line, highlight=False, markup=False, soft_wrap=True)

    with user_errors():
        results = api.fetch(api.JobsRequest(out, tuple(jobs or ())), on_job=tell)
        bad = [r for r in results if not r.ok]
        here = [r for r in results if r.outcome in ("fetched", "already fetched")]
        if bad:
            raise ShotfitError(f"{len(bad)} of {len(results)} jobs {'has' if len(bad) == 1 else 'have'} no model "
                               f"({', '.join(f'{r.name} {r.outcome}' for r in bad)}); {len(here)} run folders "
                               f"are in {out}")
    if here:
        console.print(f"render one: shotfit render --run {here[0].folder} --source SHOT --out FOLDER",
                      highlight=False)


@cloud_app.command("prices")
def prices() -> None:
    """The built-in price table the cost estimate uses (check the AWS price page)."""
    table = Table(title=f"SageMaker training ({PRICES_REGION}, {PRICES_CHECKED})")
    table.add_column("instance type")
    table.add_column("USD / hour", justify="right")
    for name, usd in PRICES.items():
        table.add_row(name, f"{usd:.3f}")
    console.print(table)
    console.print(f"on-demand prices collected {PRICES_CHECKED}; they change and differ by region: check "
                  f"{PRICE_PAGE}, or give --hourly-price", highlight=False, soft_wrap=True)


def _duration(seconds: float | None) -> str:
    """``42s``, ``12m05s``, ``1h02m``."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
