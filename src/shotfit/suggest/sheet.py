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

from shotfit.files import SHEET_MARK, write_bytes_atomic

CELL_WIDTH = 320
LABEL_HEIGHT = 18
GAP = 4
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
    h, w = rows[0].source.shape[:2]
    scale = cell_width / w  # small plates scaled up too: the heat map has to be readable
    cw, ch = max(1, round(w * scale)), max(1, round(h * scale))
    top = max(float(np.percentile(np.concatenate([r.heat.ravel() for r in rows]), 99)), 1e-6)
    sheet = np.full((LABEL_HEIGHT + len(rows) * (ch + LABEL_HEIGHT + GAP) + GAP, 3 * cw + 4 * GAP, 3), 24, np.uint8)
    for col, name in enumerate(HEADER):
        _label(sheet, name, GAP + col * (cw + GAP), LABEL_HEIGHT - 5)
    y = LABEL_HEIGHT
    for row in rows:
        _label(sheet, row.label, GAP, y + LABEL_HEIGHT - 5)
        y += LABEL_HEIGHT
        render = _to_cell(row.render, cw, ch)
        cells = (_to_cell(row.source, cw, ch), render, _overlay(render, row.heat / top, cw, ch))
        for col, cell in enumerate(cells):
            x = GAP + col * (cw + GAP)
            sheet[y:y + ch, x:x + cw] = cell
        y += ch + GAP
    return sheet


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


def _overlay(render: np.ndarray, heat: np.ndarray, width: int, height: int) -> np.ndarray:
    level = cv2.resize(np.clip(heat, 0.0, 1.0).astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    colours = cv2.cvtColor(cv2.applyColorMap((level * 255 + 0.5).astype(np.uint8), cv2.COLORMAP_INFERNO),
                           cv2.COLOR_BGR2RGB)
    grey = np.repeat(render.mean(axis=2, keepdims=True), 3, axis=2)
    return (0.35 * grey + 0.65 * colours + 0.5).clip(0, 255).astype(np.uint8)


def _to_cell(image: np.ndarray, width: int, height: int) -> np.ndarray:
    rgb = image if image.shape[2] == 3 else np.repeat(image[..., :1], 3, axis=2)
    cell = cv2.resize(np.ascontiguousarray(rgb, dtype=np.float32), (width, height), interpolation=cv2.INTER_AREA)
    return (np.clip(cell, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _label(sheet: np.ndarray, text: str, x: int, y: int) -> None:
    cv2.putText(sheet, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (230, 230, 230), 1, cv2.LINE_AA)
