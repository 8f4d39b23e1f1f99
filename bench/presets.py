"""Shots the benchmarks know by name: the built-in sample, and clips of the team's shared footage.

The shared clips are third-party and partly non-commercial, so they are never copied into the repo
or the benchmark folder: a preset links the frames it needs from where the footage lives
(``--shared-data``, ``$SHOTFIT_SHARED_DATA``, or ``../shared/data`` from the working folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from shotfit.compare.archs import SAMPLE_SHOT, BenchShot
from shotfit.errors import ShotfitError, quoted

# name -> (folder under the shared data, input subfolder, processed subfolder, keyframes, frames used).
# Keyframes as SOURCES.md suggests. The bedroom clip (800x450) keeps every other frame: half the
# render and scoring time, and consecutive frames 1/12 s apart still show any flicker.
_SHARED = {
    "bedroom-whitebalance": ("dvp_bedroom_whitebalance/demo/consistency/spatial_white_balance",
                             "Bedroom_input", "Bedroom_processed", (0, 30, 60, 90, 120), range(0, 121, 2)),
    "bike-enhancement": ("dvp_bike_packing/demo/consistency/Enhancement", "bike-packing-input",
                         "bike-packing-processed", (0, 17, 34, 51, 68), range(0, 69)),
}
PRESETS = ("sample", *_SHARED)


def shared_data_folder(given: Path | None = None) -> Path:
    """Where the shared footage lives: ``given``, else ``$SHOTFIT_SHARED_DATA``, else ``../shared/data``."""
    return Path(given or os.environ.get("SHOTFIT_SHARED_DATA") or Path("..", "shared", "data")).resolve()


def preset_shot(name: str, out: Path, shared_data: Path | None = None) -> BenchShot:
    """The preset ``name`` as a shot; a shared clip's frames are linked into ``out/shot``.

    The per-frame processed clips (deep-video-prior's white balance and enhancement) flicker, since
    an image algorithm made each frame on its own; they are the truth here all the same, so no
    network can score perfectly on them.

    Raises:
        ShotfitError: unknown preset, or the shared footage is not there.
    """
    if name == "sample":
        return SAMPLE_SHOT
    if name not in _SHARED:
        raise ShotfitError(f"unknown benchmark shot {name!r} (known: {', '.join(PRESETS)})")
    folder, inputs, processed, keyframes, frames = _SHARED[name]
    root = shared_data_folder(shared_data) / folder
    if not (root / inputs).is_dir() or not (root / processed).is_dir():
        raise ShotfitError(f"shot {name!r} needs the shared footage at {quoted(root)}, which is not there "
                           "(give --shared-data or set SHOTFIT_SHARED_DATA)")
    shot = out / "shot" / name
    for sub, wanted in (("source", frames), ("keyframes", keyframes), ("truth", frames)):
        origin = root / (inputs if sub == "source" else processed)
        target = shot / sub
        target.mkdir(parents=True, exist_ok=True)
        for frame in wanted:
            matches = sorted(origin.glob(f"{frame:05d}.*"))
            if not matches:
                raise ShotfitError(f"{quoted(origin)} has no frame {frame:05d}")
            link = target / matches[0].name
            if not link.is_symlink():
                link.symlink_to(matches[0])
    return BenchShot(name, source=shot / "source", keyframes=shot / "keyframes", truth=shot / "truth")


def footage(path: Path, what: str = "clip", folder: bool = False) -> Path:
    """``path`` in the shared data, checked before anything is written: a file (or, with ``folder``, a file
    or a folder of frames); else one line saying where the benchmarks look."""
    if not (path.exists() if folder else path.is_file()):
        raise ShotfitError(f"the {what} {quoted(path)} is not there (give --shared-data or set SHOTFIT_SHARED_DATA)")
    return path
