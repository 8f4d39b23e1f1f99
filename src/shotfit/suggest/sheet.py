"""The contact sheet ``suggest`` writes after a run: the frames predicted worst, one row each —
source | render | where the network is unsure (its flip disagreement as a heat map over the render)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from shotfit.engine.preview import labelled_grid
from shotfit.files import SHEET_MARK, write_bytes_atomic

CELL_WIDTH = 320
HEADER = ("source", "render", "flip disagreement")


@dataclass(frozen=True)
class SheetRow:
    """One frame: images float32 (H, W, C) in [0, 1], C = 1 or 3; ``heat`` (H, W) >= 0 at any scale."""

    label: str
    source: np.ndarray
    render: np.ndarray
    heat: np.ndarray


def heat_sheet(rows: Sequence[SheetRow], cell_width: int = CELL_WIDTH) -> np.ndarray:
    """Lay ``rows`` out as a uint8 RGB image, every frame ``cell_width`` wide. The heat maps share one scale
    (the rows' 99th percentile maps to the hottest colour), so a hotter row is a less certain frame."""
    if not rows:
        raise ValueError("a contact sheet needs at least one row")
    top = max(float(np.percentile(np.concatenate([r.heat.ravel() for r in rows]), 99)), 1e-6)
    # small plates scaled up too: the heat map has to be readable
    return labelled_grid(HEADER, [(row.label, (row.source, row.render, _overlay(row.render, row.heat / top)))
                                  for row in rows], cell_width, upscale=True)


def save_heat_sheet(rows: Sequence[SheetRow], path: Path, cell_width: int = CELL_WIDTH) -> Path:
    """Write the sheet as an 8-bit PNG, atomically, carrying shotfit's mark (so a later suggest may replace it)."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(heat_sheet(rows, cell_width), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("OpenCV could not encode the contact sheet")
    write_bytes_atomic(path, _with_text(encoded.tobytes(), "Software", SHEET_MARK))
    return path


def _with_text(png: bytes, key: str, text: str) -> bytes:
    """A PNG with a tEXt chunk after its header (OpenCV writes none)."""
    data = key.encode("latin-1") + b"\0" + text.encode("latin-1")
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    header_end = 8 + 8 + 13 + 4  # signature, IHDR length and type, its 13 bytes, its CRC
    return png[:header_end] + chunk + png[header_end:]


def _overlay(render: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The heat map (0 cold .. 1 hot, any size) in colour over the render in grey: float RGB in [0, 1]."""
    height, width = render.shape[:2]
    level = cv2.resize(np.clip(heat, 0.0, 1.0).astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    colours = cv2.cvtColor(cv2.applyColorMap((level * 255 + 0.5).astype(np.uint8), cv2.COLORMAP_INFERNO),
                           cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    grey = np.repeat(render[..., :3].mean(axis=2, keepdims=True), 3, axis=2)
    return np.clip(0.35 * grey + 0.65 * colours, 0.0, 1.0)
