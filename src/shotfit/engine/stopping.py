"""Stopping a run cleanly on SIGTERM: a spot interruption, a render farm's kill, ``docker stop``.

The signal only sets a flag; the training loop reads it after its step, writes a checkpoint and
returns, so nothing is cut in half and a resume goes on from that step. SageMaker leaves 120 s between
SIGTERM and SIGKILL, far more than one step and one checkpoint take.

Signal handlers are the process's: only entry points use this (the CLI's ``train``, the SageMaker
job in :mod:`shotfit.cloud.container`); a library call takes a ``should_stop`` callable instead.
It lives here rather than in ``cli/`` because the container, a face beside the CLI, uses it too.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)


class StopRequest:
    """Callable flag for ``TrainHooks.should_stop``: True once a stop signal has arrived."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def __call__(self) -> bool:
        return self.signal is not None


@contextlib.contextmanager
def stop_on_signals(signals: tuple[signal.Signals, ...] = (signal.SIGTERM,),
                    then: str = "stopping after this step, with a checkpoint") -> Iterator[StopRequest]:
    """Within the block, ``signals`` ask the run to stop after its step instead of killing the process.

    Off the main thread (where Python cannot install handlers) the request simply never fires.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def asked(signum: int, frame: object) -> None:
        if request.signal is None:
            request.signal = signal.Signals(signum).name
            log.warning("%s received: %s", request.signal, then)

    previous = {sig: signal.signal(sig, asked) for sig in signals}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
