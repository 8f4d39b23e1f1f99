"""Contact sheets: source | prediction | target per frame, scaled to the cell width, written atomically."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from shotfit.engine.preview import GAP, LABEL_HEIGHT, SheetRow, contact_sheet, save_contact_sheet


def flat(value: float, height: int = 30, width: int = 40, channels: int = 3) -> np.ndarray:
    return np.full((height, width, channels), value, np.float32)


def cell(sheet: np.ndarray, row: int, col: int, height: int, width: int) -> np.ndarray:
    """The pixels of one cell (row, col) of a sheet whose cells are height x width."""
    top = LABEL_HEIGHT + row * (height + LABEL_HEIGHT + GAP) + LABEL_HEIGHT
    left = GAP + col * (width + GAP)
    return sheet[top:top + height, left:left + width]


def test_layout_is_three_columns_and_one_row_per_frame():
    rows = [SheetRow("keyframe 1", flat(0.2), flat(0.6), flat(1.0)),
            SheetRow("frame 3", flat(0.4), flat(0.8))]
    sheet = contact_sheet(rows)
    assert sheet.dtype == np.uint8 and sheet.shape == (
        LABEL_HEIGHT + 2 * (30 + LABEL_HEIGHT + GAP) + GAP, 3 * 40 + 4 * GAP, 3)
    expected = [[0.2, 0.6, 1.0], [0.4, 0.8, None]]
    for r, values in enumerate(expected):
        for c, value in enumerate(values):
            pixels = cell(sheet, r, c, 30, 40)
            if value is None:
                assert (pixels == 48).all()  # a frame nobody fixed: a dark cell, not a black hole
            else:
                assert (pixels == round(value * 255)).all()


def test_wide_frames_are_scaled_down_to_the_cell_width_and_small_ones_never_up():
    wide = contact_sheet([SheetRow("k", flat(0.5, 100, 640), flat(0.5, 100, 640), flat(0.5, 100, 640))])
    assert wide.shape[1] == 3 * 320 + 4 * GAP
    assert wide.shape[0] == LABEL_HEIGHT + 50 + LABEL_HEIGHT + GAP + GAP  # aspect kept: 640x100 -> 320x50
    small = contact_sheet([SheetRow("k", flat(0.5, 10, 12), flat(0.5, 10, 12))], cell_width=320)
    assert small.shape[1] == 3 * 12 + 4 * GAP


def test_grey_frames_become_grey_cells_and_values_are_clipped():
    sheet = contact_sheet([SheetRow("k", flat(0.5, channels=1), flat(1.7), flat(-0.3))])
    source = cell(sheet, 0, 0, 30, 40)
    assert (source == 128).all()
    assert (cell(sheet, 0, 1, 30, 40) == 255).all()
    assert (cell(sheet, 0, 2, 30, 40) == 0).all()


def test_labels_are_drawn_above_the_cells():
    sheet = contact_sheet([SheetRow("keyframe 12", flat(0.0), flat(0.0), flat(0.0))])
    label_band = sheet[LABEL_HEIGHT:2 * LABEL_HEIGHT, GAP:GAP + 40]
    header_band = sheet[:LABEL_HEIGHT]
    assert label_band.max() > 150 and header_band.max() > 150  # light text on the dark background


def test_an_empty_sheet_is_refused():
    with pytest.raises(ValueError, match="at least one row"):
        contact_sheet([])


def test_saved_sheet_is_an_8bit_rgb_png_and_no_temporary(tmp_path):
    rows = [SheetRow("keyframe 1", flat(0.1), np.dstack([flat(1.0, channels=1), flat(0.0, channels=2)]),
                     flat(0.9))]
    path = save_contact_sheet(rows, tmp_path / "previews" / "final.png")
    assert os.listdir(tmp_path / "previews") == ["final.png"]
    on_disk = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert on_disk.dtype == np.uint8 and on_disk.shape == contact_sheet(rows).shape
    red = cv2.cvtColor(on_disk, cv2.COLOR_BGR2RGB)[LABEL_HEIGHT * 2 + 5, GAP + 40 + GAP + 5]
    assert red.tolist() == [255, 0, 0]  # channels stay RGB through OpenCV's BGR
