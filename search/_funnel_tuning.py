"""Tuned baselines for the funnel: a library program's learning rate and weight decay on a log grid.

``tune_baseline`` is the funnel's one call into ``proxy_tasks``' tuning (arXiv:2302.06675,
section 5: only the peak learning rate and the decoupled weight decay are tuned, on a log
grid). Every grid point goes through the funnel's evaluation log (its ``evaluate_batch``),
so it runs on the funnel's workers, in parallel, and a killed funnel does not train it
again; the tuned result is also cached on disk for later funnels.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from dsl import Program, library, parse
from proxy_tasks._task import Result
from proxy_tasks._tune import TuneResult, tune

from ._funnel_config import TuningSection
from ._funnel_store import FunnelEvaluations
from ._rundir import _write_atomically

MAX_TUNING_ROUNDS = 3  # a fixed grid needs 2
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "symdisc" / "tuned"


@dataclass(frozen=True)
class TunedBaseline:
    """A library program with its best grid constants on one task.

    Attributes:
      name: the library program.
      task: the task it was tuned on.
      program: the program with the tuned constants.
      lr: the tuned learning-rate constant.
      weight_decay: the tuned weight-decay constant (None if the program has none).
      tuning_fitness: the mean validation fitness of the chosen point over the tuning seeds.
      grid_points: how many grid points were evaluated.
      bound_hit: the constants whose best value is still on the edge of the grid.
    """

    name: str
    task: str
    program: Program
    lr: float
    weight_decay: float | None
    tuning_fitness: float
    grid_points: int
    bound_hit: tuple[str, ...] = ()


def tune_baseline(
    name: str, task_name: str, tuning: TuningSection, evaluations: FunnelEvaluations
) -> TunedBaseline:
    """Library program ``name`` tuned on ``task_name`` (read from the cache if tuned before).

    Raises:
      ValueError: if the program has no tunable learning-rate constant.
    """

    def evaluate_batch(jobs: list[tuple[Program, int]]) -> list[Result]:
        return evaluations.results([(program, task_name, seed) for program, seed in jobs])

    result = _tuned(library.load(name), task_name, tuning, evaluate_batch)
    return TunedBaseline(
        name,
        task_name,
        result.program,
        result.lr,
        result.weight_decay,
        result.fitness,
        len(result.grid),
        tuple(getattr(result, "bound_hit", ())),
    )


class _Answering:
    """A task for ``tune`` that answers from the results so far and notes what it lacks."""

    def __init__(self):
        self.known: dict[tuple[str, int], Result] = {}
        self.missing: list[tuple[Program, int]] = []

    def evaluate(self, candidate: Program, seed: int = 0) -> Result:
        result = self.known.get((candidate.to_text(), seed))
        if result is None:
            self.missing.append((candidate, seed))
            return Result(0.0, math.nan, math.nan, 0, None, 0.0)  # a placeholder: this round is redone
        return result


def _tuned(program: Program, task_name: str, tuning: TuningSection, evaluate_batch) -> TuneResult:
    """Stand-in for ``proxy_tasks.tuned(program, task_name, seeds, cache_dir=..., lr_steps=...,
    wd_steps=..., max_extension=..., evaluate_batch=...)`` until that lands (then this goes).

    The fixed grid of ``lr_steps x wd_steps`` (no growth: ``max_extension`` waits for it).
    ``tune`` asks one evaluation at a time, so it is called with a task that answers from
    the results so far and notes what it lacks; the missing points are trained as one
    batch, and ``tune`` is called again until nothing is missing. The last call saw only
    real results, so its choice is exactly ``tune``'s.
    """
    lr_factors = tuple(10.0 ** (k / 2) for k in range(tuning.lr_steps[0], tuning.lr_steps[1] + 1))
    wd_factors = tuple(10.0 ** (k / 2) for k in range(tuning.wd_steps[0], tuning.wd_steps[1] + 1))
    key = json.dumps(
        [program.to_text(), task_name, list(tuning.seeds), list(tuning.lr_steps), list(tuning.wd_steps)]
    )
    cache_dir = Path(tuning.cache_dir) if tuning.cache_dir else DEFAULT_CACHE_DIR
    cache_file = cache_dir / f"funnel-{task_name}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"
    if cache_file.is_file():
        data = json.loads(cache_file.read_text())
        fitness = -math.inf if data["fitness"] is None else data["fitness"]
        return TuneResult(
            data["lr"], data["weight_decay"], fitness, parse(data["program"]), tuple(data["grid"])
        )
    task = _Answering()
    for _ in range(MAX_TUNING_ROUNDS):
        task.missing = []
        result = tune(task, program, seeds=tuning.seeds, lr_factors=lr_factors, wd_factors=wd_factors)
        if not task.missing:
            break
        for (candidate, seed), outcome in zip(task.missing, evaluate_batch(task.missing), strict=True):
            task.known[(candidate.to_text(), seed)] = outcome
    else:
        raise RuntimeError(f"tuning on {task_name} asked for new points after {MAX_TUNING_ROUNDS} rounds")
    data = {
        "lr": result.lr,
        "weight_decay": result.weight_decay,
        "fitness": result.fitness if math.isfinite(result.fitness) else None,
        "program": result.program.to_text(),
        "grid": [[lr, wd, f if math.isfinite(f) else None] for lr, wd, f in result.grid],
    }
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(cache_file, json.dumps(data, indent=1))
    return result
