"""A resumable on-disk record of proxy-task evaluations, shared by the baseline scripts.

One JSON file holds the results of many ``(task, program, seed)`` runs. The key also
carries a digest of the task (its ``TaskConfig`` and its data), so results measured on
another configuration or split are never reused. Every new result is merged into the
file under a lock and written atomically, so an interrupted script resumes where it
stopped and several scripts can share one file.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import math
import os
from pathlib import Path

import dsl
import proxy_tasks
from proxy_tasks import Result

FIELDS = ("fitness", "metric", "test_fitness", "test_metric", "train_loss", "steps", "failure", "seconds")


@functools.cache
def task_digest(task: proxy_tasks.Task) -> str:
    """12 hex digits identifying a task's configuration and data."""
    text = repr(task.config) + task.dataset.digest()
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _to_json(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _result(entry: dict) -> Result:
    def number(name, missing):
        value = entry.get(name)
        return missing if value is None else float(value)

    return Result(
        fitness=number("fitness", -math.inf),
        metric=number("metric", math.nan),
        train_loss=number("train_loss", math.nan),
        steps=int(entry.get("steps") or 0),
        failure=entry.get("failure"),
        seconds=number("seconds", 0.0),
        test_fitness=number("test_fitness", -math.inf),
        test_metric=number("test_metric", math.nan),
    )


class Evaluations:
    """Results of ``(task, program, seed)`` runs, persisted in ``path``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.entries: dict[str, dict] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def task(self, task_name: str) -> proxy_tasks.Task:
        """The task ``task_name`` names (a registered one; subclasses may add variants)."""
        return proxy_tasks.get(task_name)

    def key(self, task_name: str, program: dsl.Program, seed: int) -> str:
        return json.dumps([task_name, task_digest(self.task(task_name)), program.to_text(), int(seed)])

    def get(self, task_name: str, program: dsl.Program, seed: int) -> Result | None:
        """The recorded result, or None."""
        entry = self.entries.get(self.key(task_name, program, seed))
        return None if entry is None else _result(entry)

    def evaluate(self, task_name: str, program: dsl.Program, seed: int) -> Result:
        """The recorded result, or a new evaluation (recorded before it is returned)."""
        key = self.key(task_name, program, seed)
        if key not in self.entries:
            result = self.task(task_name).evaluate(program, seed)
            self._record(key, {name: _to_json(getattr(result, name)) for name in FIELDS})
        return _result(self.entries[key])

    def evaluate_batch(self, task_name: str):
        """A ``proxy_tasks.tune`` ``evaluate_batch`` callback on ``task_name`` through this record."""
        return lambda jobs: [self.evaluate(task_name, program, seed) for program, seed in jobs]

    def _record(self, key: str, entry: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.path.exists():  # another process may have added entries meanwhile
                self.entries = {**json.loads(self.path.read_text()), **self.entries}
            self.entries[key] = entry
            temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(self.entries))
            os.replace(temporary, self.path)


BASELINE_GRID = {"lr_steps": (-2, 2), "wd_steps": (-1, 1), "max_extension": 4}
"""The baseline scripts' tuning grid: learning rate x 10^-1 .. 10^1 and weight decay x 10^-0.5
.. 10^0.5 of the starting constants (half-decade steps), grown up to two decades further
while the best point is on an edge (``proxy_tasks.tune``)."""

TUNE_SEEDS = (0, 1, 2)
EVAL_SEEDS = tuple(range(3, 13))
"""Ten training seeds that tuning never saw."""
