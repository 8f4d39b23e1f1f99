"""Benchmarks: networks against each other on real shots, with what each costs.

:mod:`~shotfit.benchmark.archs` runs the architecture battle (``shotfit bench archs``),
:mod:`~shotfit.benchmark.costs` measures parameters, FLOPs, step time and render throughput, and
:mod:`~shotfit.benchmark.presets` names the shots. The quality benchmark against peers
(``bench/quality.py``) is :mod:`~shotfit.benchmark.quality` (a trial),
:mod:`~shotfit.benchmark.quality_runner` (the trials as processes), :mod:`~shotfit.benchmark.quality_report`
(the combined JSON), :mod:`~shotfit.benchmark.quality_tasks` and :mod:`~shotfit.benchmark.face_effects`
(the shots), and :mod:`~shotfit.benchmark.peers` (pix2pix and Texler et al.'s patch-based training).
"""
