"""How the search gets programs trained: the ``Evaluator`` interface and the in-process backend.

The search loop only talks to an ``Evaluator``: it ``submit``s at most ``capacity`` jobs,
then ``wait``s for at least one to finish, and so on. Two backends implement it:

- ``InProcessEvaluator`` (here): trains in the calling process, one job at a time, in
  submit order. For tests, debugging and determinism checks.
- the Ray worker pool (``search/_ray_pool.py``): ``capacity`` jobs spread over Ray actors,
  each holding its compiled proxy tasks.

Contract for every backend (the search relies on it):

- ``submit(job_id, program, seeds, task_name=None)`` queues one evaluation: ``program``
  trained once per seed in ``seeds`` (a tuple of ints), its result the ``mean_result`` of
  those runs; ``job_id`` is unique per evaluator and chosen by the caller. ``task_name=None`` means the evaluator's
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
- The result depends only on (program, seeds, task), never on which worker ran it, so the
  in-process backend and one Ray worker give identical results for the same seeds.
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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from dsl import Program
from proxy_tasks import WORST_FITNESS, Result


@dataclass(frozen=True)
class Completed:
    """One finished evaluation.

    Attributes:
      job_id: the id given to ``submit``.
      result: the task's result, the mean over the seeds (``fitness`` is ``-inf`` if a run failed).
      worker: which worker ran it (``"inprocess"``, or a Ray actor's name).
    """

    job_id: int
    result: Result
    worker: str


class Evaluator(Protocol):
    """Runs proxy-task evaluations for the search. See the module docstring for the contract."""

    capacity: int

    def submit(
        self, job_id: int, program: Program, seeds: tuple[int, ...], task_name: str | None = None
    ) -> None:
        """Queue the evaluation of ``program`` with each of ``seeds`` on ``task_name`` (None: main task)."""
        ...

    def wait(self) -> list[Completed]:
        """Block until at least one job is done; return every newly done job."""
        ...

    def close(self) -> None:
        """Release the workers."""
        ...


def get_task(name: str, stall=None):
    """The proxy task registered as ``name`` (``proxy_tasks.get``: built once per process).

    ``stall``: None, or a ``proxy_tasks.StallRule`` the task applies to every run.
    """
    import proxy_tasks  # late: the registry is filled by the task modules it imports

    return proxy_tasks.get(name, stall)


def job_task(task_name: str | None, main_task: str, stall=None):
    """The task a job trains on: the main task with its ``stall`` rule when the job names
    none; a task the job names (meta-validation, the funnel) without it, to the end."""
    return get_task(main_task, stall) if task_name is None else get_task(task_name)


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


def mean_result(results: Sequence[Result]) -> Result:
    """The result of one program over several seeds: the mean of its per-seed results.

    ``fitness``, ``metric``, ``train_loss``, ``test_fitness`` and ``test_metric`` are the
    means; ``steps`` the fewest; ``seconds`` the sum. If any seed failed, the mean failed
    too: ``fitness`` is ``-inf`` and ``failure`` the first failed seed's reason. One result
    is returned as it is.

    Raises:
      ValueError: for no results.
    """
    if not results:
        raise ValueError("mean_result of no results")
    if len(results) == 1:
        return results[0]

    def mean(name: str) -> float:
        return math.fsum(getattr(r, name) for r in results) / len(results)

    failure = next((r.failure for r in results if r.failed), None)
    return Result(
        fitness=WORST_FITNESS if failure is not None else mean("fitness"),
        metric=mean("metric"),
        train_loss=mean("train_loss"),
        steps=min(r.steps for r in results),
        failure=failure,
        seconds=math.fsum(r.seconds for r in results),
        test_fitness=mean("test_fitness"),
        test_metric=mean("test_metric"),
    )


def evaluate_seeds(task, program: Program, seeds: tuple[int, ...]) -> Result:
    """``mean_result`` of ``evaluate_safely`` over ``seeds`` (an int is one seed).

    Stops at the first failed seed: the mean has failed whatever the others give.
    """
    results = []
    for seed in (seeds,) if isinstance(seeds, int) else seeds:
        results.append(evaluate_safely(task, program, seed))
        if results[-1].failed:
            break
    return mean_result(results)


class InProcessEvaluator:
    """Evaluates in the calling process, one job at a time, in submit order.

    Args:
      task_name: the main proxy task (``proxy_tasks.get(task_name)``).
      stall: None, or a ``proxy_tasks.StallRule`` for the main task's runs; a job that
        names its task (meta-validation, the funnel) always trains to the end.
    """

    capacity = 1

    def __init__(self, task_name: str, stall=None):
        self.task_name = task_name
        self.stall = stall
        get_task(task_name, stall)  # build (and compile) the main task now, not in the first wait()
        self._queue: deque[tuple[int, Program, tuple[int, ...], str | None]] = deque()

    def submit(
        self, job_id: int, program: Program, seeds: tuple[int, ...], task_name: str | None = None
    ) -> None:
        self._queue.append((job_id, program, seeds, task_name))

    def wait(self) -> list[Completed]:
        if not self._queue:
            return []
        job_id, program, seeds, name = self._queue.popleft()
        result = evaluate_seeds(job_task(name, self.task_name, self.stall), program, seeds)
        return [Completed(job_id, result, "inprocess")]

    def close(self) -> None:
        self._queue.clear()
