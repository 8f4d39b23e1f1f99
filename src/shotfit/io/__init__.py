"""Frames and shots on disk: PNG/TIFF/JPEG/EXR/video, frame numbers and patterns, and colour management.

In memory a frame is float32 (H, W, C), C in {1, 3, 4}, RGB(A) order; integer files read as
[0, 1], float files (EXR) keep their scene-linear values. Nothing here imports torch.
"""

from shotfit.io.colour import ColourPipeline, ColourSettings, colour_of_run, override_colour, resolve_colour
from shotfit.io.formats import IMAGE_EXTENSIONS, PixelFormat
from shotfit.io.image import read_image, write_image
from shotfit.io.sequence import VIDEO_EXTENSIONS, FrameSequence, Shot, frame_number, open_shot, parse_frame_range

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "ColourPipeline",
    "ColourSettings",
    "FrameSequence",
    "PixelFormat",
    "Shot",
    "colour_of_run",
    "frame_number",
    "open_shot",
    "override_colour",
    "parse_frame_range",
    "read_image",
    "resolve_colour",
    "write_image",
]
