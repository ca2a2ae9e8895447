"""A live progress line: evaluations, evaluations/s, best fitness, cache hit rate, redundancy."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO


class Progress:
    """Rewrites one status line on a terminal (or prints a line every few seconds elsewhere).

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
        self._start = time.monotonic()
        self._start_evaluations: int | None = None

    def update(self, stats: dict, force: bool = False) -> None:
        """Show ``stats`` (the ``Search.stats()`` dict) if enough time has passed."""
        if self.quiet:
            return
        now = time.monotonic()
        if self._start_evaluations is None:
            self._start_evaluations = stats["evaluated"]
        if not force and now - self._last < self.interval:
            return
        self._last = now
        line = format_stats(
            stats, (stats["evaluated"] - self._start_evaluations) / max(now - self._start, 1e-9)
        )
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
