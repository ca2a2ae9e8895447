"""How the search gets programs trained: the ``Evaluator`` interface and the in-process backend.

The search loop only talks to an ``Evaluator``: it ``submit``s at most ``capacity`` jobs,
then ``wait``s for at least one to finish, and so on. Two backends implement it:

- ``InProcessEvaluator`` (here): trains in the calling process, one job at a time, in
  submit order. For tests, debugging and determinism checks.
- the Ray worker pool (``search/_ray_pool.py``): ``capacity`` jobs spread over Ray actors,
  each holding its compiled proxy tasks.

Contract for every backend (the search relies on it):

- ``submit(job_id, program, seed, task_name=None)`` queues one evaluation; ``job_id`` is
  unique per evaluator and chosen by the caller. ``task_name=None`` means the evaluator's
  main task (the proxy task it was built for). Any other ``task_name`` is a registry name
  (``proxy_tasks.get(name)``); the search uses it for **meta-validation**: every N
  evaluations it submits the current best program on the larger meta-validation task
  through the same evaluator, so that evaluation runs on a worker like any other. A
  backend builds (and keeps) each task it is asked for on first use.
- The caller never has more than ``capacity`` jobs in flight.
- ``wait()`` blocks until at least one submitted job is done and returns every job that
  is done and not yet returned, each exactly once, as ``Completed``. It returns ``[]``
  only when nothing is in flight.
- A candidate that fails (invalid, NaN, divergence) is a ``Result`` with ``failure`` set
  and ``fitness == -inf``, never an exception. A worker that dies is the backend's problem:
  it re-runs the job elsewhere; the caller still gets exactly one ``Completed`` per job.
- The result depends only on (program, seed, task), never on which worker ran it, so the
  in-process backend and one Ray worker give identical results for the same seed.
- ``close()`` releases the workers; calling it twice is harmless.

The search breeds a child whenever fewer than ``capacity`` jobs are in flight, so its
trajectory depends on ``capacity`` and on the order of completions: one Ray worker with
one job in flight (capacity 1) replays the in-process search exactly for the same seed;
larger capacities give other, equally valid, runs. ``resume`` replays the logged order.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Protocol

from dsl import Program
from proxy_tasks import WORST_FITNESS, Result


@dataclass(frozen=True)
class Completed:
    """One finished evaluation.

    Attributes:
      job_id: the id given to ``submit``.
      result: the task's result (``fitness`` is ``-inf`` if the run failed).
      worker: which worker ran it (``"inprocess"``, or a Ray actor's name).
    """

    job_id: int
    result: Result
    worker: str


class Evaluator(Protocol):
    """Runs proxy-task evaluations for the search. See the module docstring for the contract."""

    capacity: int

    def submit(self, job_id: int, program: Program, seed: int, task_name: str | None = None) -> None:
        """Queue the evaluation of ``program`` with ``seed`` on ``task_name`` (None: main task)."""
        ...

    def wait(self) -> list[Completed]:
        """Block until at least one job is done; return every newly done job."""
        ...

    def close(self) -> None:
        """Release the workers."""
        ...


def get_task(name: str):
    """The proxy task registered as ``name`` (``proxy_tasks.get``: built once per process)."""
    import proxy_tasks  # late: the registry is filled by the task modules it imports

    return proxy_tasks.get(name)


def sanitize(result: Result) -> Result:
    """A result whose fitness is never NaN or +-inf unless it is marked failed.

    Tasks already return ``-inf`` with a failure for diverged runs; this is the last guard
    so that a NaN fitness can never rank as best (NaN compares false to everything).
    """
    if result.failure is None and not math.isfinite(result.fitness):
        return replace(result, fitness=WORST_FITNESS, failure=f"non-finite fitness {result.fitness!r}")
    if result.failure is not None and result.fitness != WORST_FITNESS:
        return replace(result, fitness=WORST_FITNESS)
    return result


def evaluate_safely(task, program: Program, seed: int) -> Result:
    """``task.evaluate`` with any exception turned into a failed result (never a crash)."""
    start = time.perf_counter()
    try:
        result = task.evaluate(program, seed=seed)
    except Exception as error:  # a candidate must never take the search down
        return Result(
            fitness=WORST_FITNESS,
            metric=float("nan"),
            train_loss=float("nan"),
            steps=0,
            failure=f"evaluation raised {type(error).__name__}: {error}",
            seconds=time.perf_counter() - start,
        )
    return sanitize(result)


class InProcessEvaluator:
    """Evaluates in the calling process, one job at a time, in submit order.

    Args:
      task_name: the main proxy task (``proxy_tasks.get(task_name)``).
    """

    capacity = 1

    def __init__(self, task_name: str):
        self.task_name = task_name
        get_task(task_name)  # build (and compile) the main task now, not in the first wait()
        self._queue: deque[tuple[int, Program, int, str]] = deque()

    def submit(self, job_id: int, program: Program, seed: int, task_name: str | None = None) -> None:
        self._queue.append((job_id, program, seed, task_name or self.task_name))

    def wait(self) -> list[Completed]:
        if not self._queue:
            return []
        job_id, program, seed, name = self._queue.popleft()
        result = evaluate_safely(get_task(name), program, seed)
        return [Completed(job_id, result, "inprocess")]

    def close(self) -> None:
        self._queue.clear()
