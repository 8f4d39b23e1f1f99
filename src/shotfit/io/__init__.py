"""Frames and shots on disk: PNG/TIFF/JPEG/EXR/DPX/video, frame numbers and patterns, and colour shaping.

In memory a frame is float32 (H, W, C), C in {1, 3, 4}, RGB(A) order; integer files read as
[0, 1], float files (EXR) keep their scene-linear values.
"""

from shotfit.io.colour import TRANSFERS, from_network, to_network, transfer_for
from shotfit.io.formats import IMAGE_EXTENSIONS, FrameExtras, PixelFormat, Window
from shotfit.io.image import read_image, read_with_extras, write_image
from shotfit.io.sequence import (VIDEO_EXTENSIONS, FrameSequence, Shot, describe_gaps, frame_number, open_shot,
                                 parse_frame_range, runs)

__all__ = [
    "IMAGE_EXTENSIONS",
    "TRANSFERS",
    "VIDEO_EXTENSIONS",
    "FrameExtras",
    "FrameSequence",
    "PixelFormat",
    "Shot",
    "Window",
    "describe_gaps",
    "frame_number",
    "from_network",
    "open_shot",
    "parse_frame_range",
    "read_image",
    "read_with_extras",
    "runs",
    "to_network",
    "transfer_for",
    "write_image",
]
