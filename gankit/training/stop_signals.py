"""Stopping a run cleanly on SIGINT or SIGTERM: finish the step, checkpoint, exit.

The first SIGINT/SIGTERM asks the loop to finish its step, checkpoint and exit; a second one stops
at once (KeyboardInterrupt)."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator


class StopRequest:
    """Set by a signal; the loop reads it after every step (and all ranks act on it together)."""

    def __init__(self) -> None:
        self.signalled = False


@contextmanager
def stop_signals() -> Iterator[StopRequest]:
    request, previous = StopRequest(), {}

    def handler(signum, frame):
        if request.signalled:
            signal.signal(signum, previous.get(signum, signal.SIG_DFL))
            raise KeyboardInterrupt
        request.signalled = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread (e.g. inside a test runner thread)
            pass
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
