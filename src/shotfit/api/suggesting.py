"""Which frames to paint: ``suggest`` before painting (cover the shot's appearance, cut by cut) and after a
run (rank the unpainted frames by predicted error, with a contact sheet of the worst).

Example:
    >>> from shotfit import api
    >>> first = api.suggest(api.SuggestRequest("plate/", count=3))  # doctest: +SKIP
    >>> [f.frame for f in first.frames]  # doctest: +SKIP
    >>> later = api.suggest(api.SuggestRequest("plate/", run="runs/beauty", count=2))  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from shotfit.device import pick_device
from shotfit.errors import ConfigError, FrameError, ShotfitError, quoted
from shotfit.files import guard_output
from shotfit.io import Shot, open_shot
from shotfit.runs.folder import RunFolder, write_json
from shotfit.suggest.choose import STRATEGIES
from shotfit.suggest.request import AFTER, SuggestRequest, SuggestResult, frames_text
from shotfit.suggest.workflow import (
    Progress,
    SuggestProgress,
    choose_before,
    open_run,
    plate_colour,
    rank_after,
    read_appearance,
    write_sheet,
)

__all__ = ["SuggestProgress", "SuggestRequest", "SuggestResult", "suggest"]

SHEET_NAME = "suggest.png"


def suggest(request: SuggestRequest, on_progress: Progress | None = None) -> SuggestResult:
    """Suggest the frames to paint next (see :class:`~shotfit.suggest.request.SuggestRequest`).

    Every setting and output path is checked before a frame is read; a user error is one line whose
    ``parameter`` names the request field.

    Args:
        request: The shot, how many frames, what is painted, and where the answer goes.
        on_progress: Called after each frame of each pass (progress display).
    """
    _check_settings(request)
    sheet = _sheet_path(request)
    _guard_outputs(request, sheet)
    device = pick_device(request.device)
    with open_shot(request.source) as shot:
        painted = _painted(request, shot)
        trained = open_run(Path(request.run), shot, device) if request.run is not None else None
        if trained is not None:
            painted = tuple(sorted({*painted, *(f for f in trained.painted if f in shot)}))
        unpainted = len(shot.frames) - len(painted)
        if request.count is not None and request.count > unpainted:
            raise ShotfitError(f"count {request.count} is more than the {unpainted} frames of "
                               f"{quoted(request.source)} not painted yet", parameter="count")
        if trained is None:
            appearance = read_appearance(shot, plate_colour(shot), device, on_progress)
            assert request.count is not None  # checked above
            frames, mean_distance = choose_before(appearance, painted, request.count, request.strategy)
        else:
            if unpainted == 0:
                raise ShotfitError(f"every frame of {quoted(request.source)} is painted: nothing to rank",
                                   parameter="source")
            appearance = read_appearance(shot, trained.colour, device, on_progress)
            frames, mean_distance = rank_after(appearance, shot, trained, painted, request.count, device,
                                               on_progress)
            assert sheet is not None  # a run always has one
            write_sheet(shot, trained, frames, request.sheet_frames, sheet, device, on_progress)
    index_of = {frame: i for i, frame in enumerate(appearance.frames)}
    chosen = {appearance.segment_of(index_of[f]) for f in painted}
    if trained is None:  # after a run the ranked frames are not painted yet
        chosen |= {f.segment for f in frames}
    uncovered = tuple(n for n in range(1, len(appearance.segments) + 1) if n not in chosen)
    result = SuggestResult(request.mode, str(request.source), tuple(frames), painted, appearance.spans(), uncovered,
                           mean_distance, None if request.json_path is None else Path(request.json_path), sheet)
    if result.json_path is not None:
        write_json(result.json_path, result.to_dict())
    return result


def _check_settings(request: SuggestRequest) -> None:
    if request.count is not None and request.count < 1:
        raise ShotfitError(f"count must be at least 1 (got {request.count})", parameter="count")
    if request.count is None and request.mode != AFTER:
        raise ShotfitError("suggesting frames before a run needs how many (count)", parameter="count")
    if request.strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {request.strategy!r} (known: {', '.join(STRATEGIES)})",
                          parameter="strategy")
    if request.sheet_frames < 1:
        raise ShotfitError(f"a contact sheet needs at least 1 row (got {request.sheet_frames})",
                           parameter="sheet_frames")
    if request.sheet is not None and request.run is None:
        raise ShotfitError("a contact sheet is drawn from a run: give the run folder too", parameter="sheet")
    if request.run is not None:
        RunFolder(request.run).require_run()


def _sheet_path(request: SuggestRequest) -> Path | None:
    if request.run is None:
        return None
    return Path(request.sheet) if request.sheet is not None else Path(request.run) / SHEET_NAME


def _guard_outputs(request: SuggestRequest, sheet: Path | None) -> None:
    inputs = [("source", request.source)] + ([("painted frames", request.have)] if request.have is not None else [])
    if request.run is not None:
        inputs.append(("keyframes", RunFolder(request.run).read_info().keyframes))
    if request.json_path is not None:
        guard_output(request.json_path, "suggestions", protected=inputs, parameter="json_path")
    if sheet is not None:
        guard_output(sheet, "sheet", protected=inputs, parameter="sheet")


def _painted(request: SuggestRequest, shot: Shot) -> tuple[int, ...]:
    if request.have is None:
        return ()
    try:
        with open_shot(request.have) as have:
            frames = have.frames
    except FrameError as err:  # about the painted frames, not the shot: say which option
        raise FrameError(str(err), parameter="have") from None
    missing = [f for f in frames if f not in shot]
    if missing:
        raise FrameError(f"painted frames {quoted(request.have)} hold frames {frames_text(missing)} that "
                         f"{quoted(request.source)} lacks", parameter="have")
    return tuple(frames)
