"""Research equipment, kept in the repository and out of the wheel: benchmarks that need footage,
peer methods or measuring harnesses a user of shotfit never runs.

Entry points (run from the repository root; each prints JSON or a report):

- ``bench/quality.py``: shotfit against its peers on real shots. A trial is :mod:`bench.quality_trials`
  (run as ``python -m bench.quality_trials TRIAL.json``), :mod:`bench.quality_runner` runs the trials as
  processes, :mod:`bench.quality_report` combines them, :mod:`bench.quality_tasks`,
  :mod:`bench.face_effects`, :mod:`bench.local_edits` and :mod:`bench.restoration` make the shots,
  :mod:`bench.peers` holds pix2pix and Texler et al.'s patch-based training.
- ``bench/speed.py``: render and training speed beside a naive baseline (:mod:`bench.speed_harness`).
- ``bench/archs.py``: ``shotfit bench archs`` on the team's shared footage (:mod:`bench.presets`).

Everything here may import :mod:`shotfit`; nothing in :mod:`shotfit` imports from here.
"""
