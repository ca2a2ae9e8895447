"""Tuned baselines for the funnel: a library program's learning rate and weight decay on a log grid.

``tune_baseline`` is the funnel's one call into ``proxy_tasks``' tuning (arXiv:2302.06675,
section 5: only the peak learning rate and the decoupled weight decay are tuned, on a log
grid). Every grid point's evaluations go through the funnel's evaluation log, so they run
on the funnel's workers and a killed funnel does not repeat them; the tuned result is
also kept in ``cache_dir``, keyed by program, task, seeds and grid, for later funnels.

``proxy_tasks.tune`` asks a task object for one evaluation at a time. To run the grid in
parallel, it is called with a task that answers from the log and notes what it lacks;
the missing points are trained as one batch, and ``tune`` is called again until nothing
is missing. The last call saw only real results, so its choice is exactly ``tune``'s.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from dsl import Program, analyze, library, parse
from proxy_tasks._task import Result
from proxy_tasks._tune import LR_FACTORS, WD_FACTORS, tune

from ._funnel_config import TuningSection
from ._funnel_store import FunnelEvaluations
from ._rundir import _write_atomically

MAX_TUNING_ROUNDS = 20  # a fixed grid needs 2; a grid that grows at its edges a few more


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
    """

    name: str
    task: str
    program: Program
    lr: float
    weight_decay: float | None
    tuning_fitness: float
    grid_points: int

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "task": self.task,
            "program": self.program.to_text(),
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "tuning_fitness": self.tuning_fitness if math.isfinite(self.tuning_fitness) else None,
            "grid_points": self.grid_points,
        }

    @classmethod
    def from_dict(cls, data: dict) -> TunedBaseline:
        fitness = data["tuning_fitness"]
        return cls(
            name=data["name"],
            task=data["task"],
            program=parse(data["program"]),
            lr=data["lr"],
            weight_decay=data["weight_decay"],
            tuning_fitness=-math.inf if fitness is None else fitness,
            grid_points=data["grid_points"],
        )


class _LoggedTask:
    """A stand-in for a task inside ``tune``: known results from the log; unknown ones are noted."""

    def __init__(self, evaluations: FunnelEvaluations, task_name: str):
        self.evaluations = evaluations
        self.task_name = task_name
        self.missing: list[tuple[Program, int]] = []

    def evaluate(self, program: Program, seed: int = 0) -> Result:
        known = self.evaluations.known.get((analyze(program).hash, self.task_name, seed))
        if known is not None:
            return known
        self.missing.append((program, seed))
        return Result(0.0, math.nan, math.nan, 0, None, 0.0)  # a placeholder: this round is redone


def tune_baseline(
    name: str, task_name: str, tuning: TuningSection, evaluations: FunnelEvaluations
) -> TunedBaseline:
    """Library program ``name`` tuned on ``task_name`` (from ``tuning.cache_dir`` if done before).

    Raises:
      ValueError: if the program has no tunable learning-rate constant.
    """
    program = library.load(name)
    lr_factors = tuning.lr_factors or LR_FACTORS
    wd_factors = tuning.wd_factors or WD_FACTORS
    key = json.dumps([program.to_text(), task_name, list(tuning.seeds), list(lr_factors), list(wd_factors)])
    cache_file = (
        Path(tuning.cache_dir) / f"{name}-{task_name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    )
    if cache_file.is_file():
        return TunedBaseline.from_dict(json.loads(cache_file.read_text()))
    for _ in range(MAX_TUNING_ROUNDS):
        task = _LoggedTask(evaluations, task_name)
        result = tune(task, program, seeds=tuning.seeds, lr_factors=lr_factors, wd_factors=wd_factors)
        if not task.missing:
            break
        evaluations.results([(p, task_name, seed) for p, seed in task.missing])
    else:
        raise RuntimeError(
            f"tuning {name} on {task_name} still asked for new points after {MAX_TUNING_ROUNDS} rounds"
        )
    tuned = TunedBaseline(
        name, task_name, result.program, result.lr, result.weight_decay, result.fitness, len(result.grid)
    )
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(cache_file, json.dumps(tuned.to_dict(), indent=1))
    return tuned
