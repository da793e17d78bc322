"""How far a run has come, on stderr: tqdm's bar in a terminal, a plain line every few seconds elsewhere.

A bar redraws itself many times a second, which a terminal overwrites in place; sent to a file or
a pipe (a job scheduler's log, `2> train.log`), every redraw stays, and a 5-minute run leaves about
80 KB of bar. Away from a terminal the run therefore writes one line, with a newline, every
`interval` seconds and when it ends.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

LOG_INTERVAL_S = 30.0  # between progress lines in a log: ten lines for a 5-minute run


class ProgressLines:
    """The part of tqdm's interface the loop uses (update, set_postfix, n, refresh, close), written
    as "step 120/300 (40%) 9.8 step/s, 18 s left, d=0.693 g=0.701" lines at most every `interval` s."""

    def __init__(self, total: int, initial: int = 0, *, interval: float = LOG_INTERVAL_S,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.total, self.n, self.interval = total, initial, interval
        self.stream, self.clock = stream or sys.stderr, clock
        self._start_n, self._start = initial, clock()
        self._last_line = self._start
        self._postfix = ""

    def update(self, steps: int = 1) -> None:
        self.n += steps
        if self.clock() - self._last_line >= self.interval:
            self._write()

    def set_postfix(self, refresh: bool = False, **values: str) -> None:
        self._postfix = " ".join(f"{k}={v}" for k, v in values.items())

    def refresh(self) -> None:
        """A rollback moved `n` back: the next line says so; nothing is written now."""

    def close(self) -> None:
        if self.n != self._start_n:
            self._write()

    def _write(self) -> None:
        now = self.clock()
        rate = (self.n - self._start_n) / max(now - self._start, 1e-9)
        left = f", {(self.total - self.n) / rate:.0f} s left" if rate > 0 and self.n < self.total else ""
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        postfix = f", {self._postfix}" if self._postfix else ""
        self.stream.write(f"step {self.n}/{self.total}{share} {rate:.1f} step/s{left}{postfix}\n")
        self.stream.flush()
        self._last_line = now


def progress_display(total: int, initial: int, stream: TextIO | None = None):
    """tqdm's bar where `stream` (stderr by default) is a terminal, ProgressLines elsewhere."""
    stream = stream or sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        from tqdm import tqdm
        return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, smoothing=0.1, file=stream)
    return ProgressLines(total, initial, stream=stream)
