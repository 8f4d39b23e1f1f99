"""Comparing networks on one shot (``shotfit bench archs``): every network on the same keyframes, loss
and budget, scored against a truth, with what each costs.

:mod:`~shotfit.compare.archs` runs the comparison as sweeps and writes its report;
:mod:`~shotfit.compare.costs` measures parameters, FLOPs, training step time and render throughput.
"""
