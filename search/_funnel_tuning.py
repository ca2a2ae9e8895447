"""Tuned baselines for the funnel: a library program's learning rate and weight decay on a log grid.

``tune_baseline`` is the funnel's one call into ``proxy_tasks``' tuning (arXiv:2302.06675,
section 5: only the peak learning rate and the decoupled weight decay are tuned, on a log
grid). Every grid point goes through the funnel's evaluation log (its ``evaluate_batch``),
so it runs on the funnel's workers, in parallel, and a killed funnel does not train it
again; the tuned result is also cached on disk for later funnels.
"""

from __future__ import annotations

from dataclasses import dataclass

import proxy_tasks
from dsl import Program, library
from proxy_tasks import Result

from ._funnel_config import TuningSection
from ._funnel_store import FunnelEvaluations


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
      grid_points: how many grid points were evaluated (the grid grows past an edge best).
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

    cache = {"cache_dir": tuning.cache_dir} if tuning.cache_dir else {}  # else proxy_tasks' default
    result = proxy_tasks.tuned(
        library.load(name),
        task_name,
        tuning.seeds,
        lr_steps=tuning.lr_steps,
        wd_steps=tuning.wd_steps,
        max_extension=tuning.max_extension,
        evaluate_batch=evaluate_batch,
        **cache,
    )
    return TunedBaseline(
        name,
        task_name,
        result.program,
        result.lr,
        result.weight_decay,
        result.fitness,
        len(result.grid),
        result.bound_hit,
    )
