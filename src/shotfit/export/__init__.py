"""Exporting a run's network for other hosts: TorchScript (Nuke's CatFileCreator) and ONNX (onnxruntime).

An exported file holds the network with the colour-free steps baked in: (B, C, H, W) float32 in
[0, 1] in, the same out, any H and W. Colour stays with the host, which converts frames to the run's
working space first; the file's metadata says which (:class:`~shotfit.export.metadata.ModelInfo`).

Modules: ``metadata`` and ``runtime`` (running an ONNX file through onnxruntime) import no torch, so
a machine without PyTorch renders with them; ``writers`` builds and checks the files with PyTorch.
"""

FORMATS = ("torchscript", "onnx")

__all__ = ["FORMATS"]
