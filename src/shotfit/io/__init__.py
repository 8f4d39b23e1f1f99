"""Frames and shots on disk: PNG/TIFF/JPEG/EXR/DPX/video, frame numbers and patterns, and colour management.

In memory a frame is float32 (H, W, C), C in {1, 3, 4}, RGB(A) order; integer files read as
[0, 1], float files (EXR) keep their scene-linear values. Nothing here imports torch.
"""

from shotfit.io._quiet import hold_native_output
from shotfit.io.colour import ColourPipeline, ColourSettings, colour_of_run, override_colour, resolve_colour
from shotfit.io.formats import IMAGE_EXTENSIONS, FrameExtras, PixelFormat, Window
from shotfit.io.image import read_image, read_with_extras, write_image
from shotfit.io.sequence import (
                                 VIDEO_EXTENSIONS,
                                 FrameSequence,
                                 Shot,
                                 describe_gaps,
                                 frame_number,
                                 parse_frame_range,
                                 runs,
)
from shotfit.io.shots import open_shot

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "ColourPipeline",
    "ColourSettings",
    "FrameExtras",
    "FrameSequence",
    "PixelFormat",
    "Shot",
    "Window",
    "colour_of_run",
    "describe_gaps",
    "frame_number",
    "hold_native_output",
    "open_shot",
    "override_colour",
    "parse_frame_range",
    "read_image",
    "read_with_extras",
    "resolve_colour",
    "runs",
    "write_image",
]
