"""When a run evaluates by the clock (--eval-at-minutes): marks of training time, not of steps.

A curve of quality against minutes is what tells which recipe gets furthest in a user's time; steps
cost different times in different recipes. The clock is the training clock (Progress.seconds and
the time since the last log line), which evaluation itself does not advance, so the marks fall at
the same training time whether or not, and how often, the run evaluates.
"""

from __future__ import annotations


class MinuteMarks:
    """The marks still ahead of a run whose training clock reads `seconds_done` (a resumed run
    skips those it passed)."""

    def __init__(self, minutes: tuple[float, ...], seconds_done: float = 0.0, scored: tuple[float, ...] = ()):
        """`scored`: marks the run's metrics already hold. A run stopped by --max-minutes at a mark
        scores it a moment before its training clock reaches it (Run.marks_at_limit), so the clock
        alone would score it again on resume."""
        self.pending = [m for m in sorted(minutes) if m * 60 > seconds_done and m not in scored]

    def due(self, seconds: float) -> float | None:
        """The latest mark the clock has passed since the last call (it is then done, and any
        earlier mark passed with it: one evaluation serves them), or None."""
        passed = None
        while self.pending and seconds >= self.pending[0] * 60:
            passed = self.pending.pop(0)
        return passed
