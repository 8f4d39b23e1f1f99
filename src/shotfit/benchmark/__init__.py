"""Benchmarks: networks against each other on real shots, with what each costs.

:mod:`~shotfit.benchmark.archs` runs the architecture battle (``shotfit bench archs``),
:mod:`~shotfit.benchmark.costs` measures parameters, FLOPs, step time and render throughput, and
:mod:`~shotfit.benchmark.presets` names the shots.
"""
