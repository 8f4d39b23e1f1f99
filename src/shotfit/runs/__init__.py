"""Run folders: what one training run writes and all that rendering, export and sweeps read back.

This package sits below both :mod:`shotfit.engine` (which writes runs) and :mod:`shotfit.infer`
(which renders them), so that rendering never imports the trainer.
"""

from shotfit.runs.folder import RunFolder, load_state, model_state, read_json, save_state, write_json
from shotfit.runs.record import RunInfo

__all__ = ["RunFolder", "RunInfo", "load_state", "model_state", "read_json", "save_state", "write_json"]
