"""Frames and shots on disk: PNG/TIFF/JPEG/EXR/video, frame numbers and patterns, and colour shaping.

In memory a frame is float32 (H, W, C), C in {1, 3, 4}, RGB(A) order; integer files read as
[0, 1], float files (EXR) keep their scene-linear values.
"""

from shotfit.io.colour import TRANSFERS, from_network, to_network, transfer_for
from shotfit.io.formats import IMAGE_EXTENSIONS, PixelFormat
from shotfit.io.image import read_image, write_image
from shotfit.io.sequence import VIDEO_EXTENSIONS, FrameSequence, Shot, frame_number, open_shot, parse_frame_range

__all__ = [
    "IMAGE_EXTENSIONS",
    "TRANSFERS",
    "VIDEO_EXTENSIONS",
    "FrameSequence",
    "PixelFormat",
    "Shot",
    "frame_number",
    "from_network",
    "open_shot",
    "parse_frame_range",
    "read_image",
    "to_network",
    "transfer_for",
    "write_image",
]
