"""shotfit: learn an artist's edit from a few fixed keyframes and apply it to every frame of a shot."""

__version__ = "0.1.0"
