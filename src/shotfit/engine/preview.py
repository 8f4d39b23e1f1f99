"""Contact sheets: one row per frame, source | prediction | target, labelled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from shotfit.files import atomic_path

CELL_WIDTH = 320
LABEL_HEIGHT = 18
GAP = 4


@dataclass(frozen=True)
class SheetRow:
    """One frame of the sheet; images are float32 (H, W, C) display values in [0, 1], C = 1 or 3."""

    label: str
    source: np.ndarray
    prediction: np.ndarray
    target: np.ndarray | None = None  # None for frames nobody fixed


def contact_sheet(rows: Sequence[SheetRow], cell_width: int = CELL_WIDTH) -> np.ndarray:
    """Lay ``rows`` out as a uint8 RGB image: columns source | prediction | target.

    Frames are scaled to ``cell_width`` (never up); a frame without a target gets a dark cell.
    """
    return labelled_grid(("source", "prediction", "target"),
                         [(row.label, (row.source, row.prediction, row.target)) for row in rows], cell_width)


def labelled_grid(header: Sequence[str], rows: Sequence[tuple[str, Sequence[np.ndarray | None]]],
                  cell_width: int = CELL_WIDTH, upscale: bool = False) -> np.ndarray:
    """Labelled rows of equal cells under a header, as a uint8 RGB image (every contact sheet's layout).

    Args:
        header: one name per column.
        rows: (label, one image per column): float (H, W, C) display values in [0, 1], C = 1 or 3, all
            the size of the first row's first image; None draws a dark cell.
        cell_width: the width of a cell; frames are scaled down to it, and up to it with ``upscale``.
    """
    if not rows:
        raise ValueError("a contact sheet needs at least one row")
    first = next(image for image in rows[0][1] if image is not None)
    h, w = first.shape[:2]
    scale = cell_width / w if upscale else min(1.0, cell_width / w)
    cw, ch = max(1, round(w * scale)), max(1, round(h * scale))
    columns = len(header)
    sheet = np.full((LABEL_HEIGHT + len(rows) * (ch + LABEL_HEIGHT + GAP) + GAP, columns * cw + (columns + 1) * GAP, 3),
                    24, np.uint8)
    for col, name in enumerate(header):
        _label(sheet, name, GAP + col * (cw + GAP), LABEL_HEIGHT - 5)
    y = LABEL_HEIGHT
    for label, images in rows:
        _label(sheet, label, GAP, y + LABEL_HEIGHT - 5)
        y += LABEL_HEIGHT
        for col, image in enumerate(images):
            x = GAP + col * (cw + GAP)
            sheet[y:y + ch, x:x + cw] = 48 if image is None else _to_cell(image, cw, ch)
        y += ch + GAP
    return sheet


def save_contact_sheet(rows: Sequence[SheetRow], path: Path, cell_width: int = CELL_WIDTH) -> Path:
    """Write the sheet as an 8-bit PNG, atomically."""
    sheet = contact_sheet(rows, cell_width)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {tmp}")
    return path


def _to_cell(image: np.ndarray, width: int, height: int) -> np.ndarray:
    rgb = image if image.shape[2] == 3 else np.repeat(image[..., :1], 3, axis=2)
    cell = cv2.resize(np.ascontiguousarray(rgb, dtype=np.float32), (width, height),
                      interpolation=cv2.INTER_AREA)
    return (np.clip(cell, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _label(sheet: np.ndarray, text: str, x: int, y: int) -> None:
    cv2.putText(sheet, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (230, 230, 230), 1, cv2.LINE_AA)
