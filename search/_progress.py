"""A live progress line: evaluations, evaluations/s, best fitness, cache hit rate, redundancy."""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from typing import TextIO

RATE_WINDOW_SECONDS = 30.0


class Progress:
    """Rewrites one status line on a terminal (or prints a line every few seconds elsewhere).

    The evaluation rate is measured over the last ``RATE_WINDOW_SECONDS``, so start-up
    (Ray, compilation) does not drag it down for the whole run.

    Args:
      quiet: print nothing (for logs and tests).
      stream: where to write; default stderr.
      interval: seconds between two updates.
    """

    def __init__(self, quiet: bool = False, stream: TextIO | None = None, interval: float | None = None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.5 if self.live else 10.0)
        self._last = -math.inf
        self._history: deque[tuple[float, int]] = deque()  # (time, evaluations) over the rate window

    def update(self, stats: dict, force: bool = False) -> None:
        """Show ``stats`` (the ``Search.stats()`` dict) if enough time has passed."""
        if self.quiet:
            return
        now = time.monotonic()
        self._history.append((now, stats["evaluated"]))
        while len(self._history) > 2 and now - self._history[1][0] > RATE_WINDOW_SECONDS:
            self._history.popleft()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        (start, first), (end, last) = self._history[0], self._history[-1]
        rate = (last - first) / (end - start) if end > start else 0.0
        line = format_stats(stats, rate)
        if self.live:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (a restart, a meta-validation...)."""
        if self.quiet:
            return
        self.stream.write(("\r\x1b[2K" if self.live else "") + text + "\n")
        self.stream.flush()
        self._last = -math.inf

    def close(self) -> None:
        if not self.quiet and self.live:
            self.stream.write("\n")
            self.stream.flush()


def format_stats(stats: dict, evaluations_per_second: float) -> str:
    """One line: ``evals 120 (2.1/s)  programs 800  best 0.9312  cache 84.0%  redundant 61.2%``."""
    best = stats["best_fitness"]
    redundant = stats["redundant_fraction"]
    return (
        f"evals {stats['evaluated']} ({evaluations_per_second:.2f}/s)  "
        f"programs {stats['individuals']}  failed {stats['failed']}  "
        f"best {best:.4f}  "
        f"cache {100 * stats['cache_hit_rate']:.1f}%  "
        f"redundant {'n/a' if math.isnan(redundant) else f'{100 * redundant:.1f}%'}"
    )
