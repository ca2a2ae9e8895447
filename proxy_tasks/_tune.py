"""The paper's fair comparison: a log grid over a program's learning rate and weight decay.

The grid starts at ``LR_STEPS x WD_STEPS`` multipliers of the program's own constants
(half-decade steps) and grows while the best point sits on its edge: in the learning
rate and in the weight decay independently, one step at a time, at most
``MAX_EXTENSION`` steps beyond the initial grid on each side. ``TuneResult.bound_hit``
names a constant whose best value is still on the edge when that bound stops the growth.
A grid point's fitness is the mean validation fitness over the tuning seeds (0, 1, 2 by
default); test metrics play no part in tuning. ``tuned`` caches results on disk.

Where the constants are, found by dataflow (not by name):

* the **learning-rate constant** is the float argument of a ``multiply`` whose other
  argument is the input ``lr`` or a scalar computed from ``lr`` and constants alone
  (``lr = lr * 0.001``);
* the **weight-decay constant** is the float argument of a ``multiply`` whose other
  argument is the input ``w`` itself (``wd = w * 0.01``).

A program must have exactly one learning-rate constant (else ``ValueError``); the
weight-decay constant is optional (at most one), and only the learning rate is tuned
without it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dsl
from dsl import Program

POINTS_PER_DECADE = 2
"""Grid points per decade: neighbouring multipliers differ by 10^(1/2)."""

LR_STEPS = (-4, 4)
"""The initial learning-rate multipliers, in grid steps: 10^(k/2) for k = -4..4 (10^-2 .. 10^2)."""

WD_STEPS = (-2, 2)
"""The initial weight-decay multipliers, in grid steps: 10^-1 .. 10^1."""

MAX_EXTENSION = 4
"""Grid steps (two decades) the grid may grow beyond its initial range on each side."""

DEFAULT_SEEDS = (0, 1, 2)

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "symdisc" / "tuned"

_CACHE_FORMAT = 1

EvaluateBatch = Callable[[list[tuple[Program, int]]], list]


@dataclass(frozen=True)
class ConstantSite:
    """Statement ``index``, argument ``position``: where a tunable constant sits."""

    index: int
    position: int

    def value(self, program: Program) -> float:
        return float(program.statements[self.index].args[self.position])


def _multiply_sites(program: Program, is_other: Callable) -> list[ConstantSite]:
    sites = []
    lr_derived = {"lr"}
    current_w_is_input = True
    for index, statement in enumerate(program.statements):
        if statement.op == "multiply":
            for position, arg in enumerate(statement.args):
                other = statement.args[1 - position]
                if (
                    not isinstance(arg, str)
                    and isinstance(other, str)
                    and is_other(other, lr_derived, current_w_is_input)
                ):
                    sites.append(ConstantSite(index, position))
        variables = statement.variables()
        if variables and all(v in lr_derived for v in variables):
            lr_derived.add(statement.target)
        else:
            lr_derived.discard(statement.target)
        if statement.target == "w":
            current_w_is_input = False
    return sites


def find_lr_constant(program: Program) -> ConstantSite:
    """The learning-rate constant (see the module docstring).

    Raises:
      ValueError: if there is none or more than one.
    """
    sites = _multiply_sites(program, lambda other, lr_derived, _: other in lr_derived)
    if len(sites) != 1:
        found = "no" if not sites else f"{len(sites)}"
        raise ValueError(
            f"cannot tune: the program has {found} learning-rate constant(s) (a 'multiply' of lr, "
            "or of a scalar computed from lr alone, by a float constant); exactly one is needed"
        )
    return sites[0]


def find_wd_constant(program: Program) -> ConstantSite | None:
    """The weight-decay constant, or None if the program has none.

    Raises:
      ValueError: if there is more than one.
    """
    sites = _multiply_sites(program, lambda other, _, w_is_input: other == "w" and w_is_input)
    if len(sites) > 1:
        raise ValueError(
            f"cannot tune: the program has {len(sites)} weight-decay constants (w * c); at most one"
        )
    return sites[0] if sites else None


def with_constant(program: Program, site: ConstantSite, value: float) -> Program:
    """A copy of ``program`` with the constant at ``site`` replaced by ``value``."""
    return program.with_argument(site.index, site.position, float(value))


@dataclass(frozen=True)
class TuneResult:
    """The best grid point and the grid that found it.

    Attributes:
      lr: the tuned learning-rate constant.
      weight_decay: the tuned weight-decay constant (None if the program has none).
      fitness: the best grid point's mean validation fitness over ``seeds``.
      program: the program with the tuned constants.
      grid: every evaluated point ``(lr, weight_decay, mean fitness)``, sorted.
      seeds: the tuning seeds.
      bound_hit: the constants (``"lr"``, ``"weight_decay"``) whose best value is on the
        edge of the final grid because ``max_extension`` stopped its growth.
      evaluations: training runs spent (grid points x seeds).
    """

    lr: float
    weight_decay: float | None
    fitness: float
    program: Program
    grid: tuple[tuple[float, float | None, float], ...]
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    bound_hit: tuple[str, ...] = ()
    evaluations: int = 0


def tune(
    task,
    program: Program,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    *,
    lr_steps: tuple[int, int] = LR_STEPS,
    wd_steps: tuple[int, int] = WD_STEPS,
    max_extension: int = MAX_EXTENSION,
    evaluate_batch: EvaluateBatch | None = None,
) -> TuneResult:
    """Tune the learning rate (and weight decay) of ``program`` on ``task``.

    Grid point ``(i, j)`` multiplies the learning-rate constant by ``10^(i/2)`` and the
    weight-decay constant by ``10^(j/2)``. The initial grid is ``lr_steps x wd_steps``
    (inclusive ranges); while the best point has the smallest (largest) ``i`` of the
    grid, a column at ``i - 1`` (``i + 1``) is added, and likewise for ``j``, up to
    ``max_extension`` steps beyond the initial range. Each point's fitness is the mean
    over ``seeds``; a failed seed makes it -inf. Ties go to the point nearest the
    program's own constants, then to the smaller multipliers.

    Args:
      task: a ``Task`` (only used by the default ``evaluate_batch``).
      program: the program to tune.
      seeds: training seeds averaged per grid point.
      lr_steps: the initial learning-rate range, in grid steps.
      wd_steps: the initial weight-decay range, in grid steps (ignored without one).
      max_extension: how far the grid may grow past each end of its initial range.
      evaluate_batch: ``jobs -> results`` for a list of ``(program, seed)`` jobs, in
        order (e.g. on Ray workers); the default evaluates them one by one on ``task``.

    Raises:
      ValueError: if the program has no (or an ambiguous) learning-rate constant, or a
        range is empty.
    """
    if isinstance(program, str):
        program = dsl.parse(program)
    seeds = tuple(int(seed) for seed in seeds)
    if not seeds:
        raise ValueError("tune: at least one seed is needed")
    for name, (low, high) in (("lr_steps", lr_steps), ("wd_steps", wd_steps)):
        if low > high:
            raise ValueError(f"tune: {name} {(low, high)} is empty")
    if max_extension < 0:
        raise ValueError(f"tune: max_extension must be >= 0, got {max_extension}")
    if evaluate_batch is None:
        evaluate_batch = lambda jobs: [task.evaluate(job, seed) for job, seed in jobs]  # noqa: E731
    lr_site = find_lr_constant(program)
    wd_site = find_wd_constant(program)
    lr0 = lr_site.value(program)
    wd0 = wd_site.value(program) if wd_site else None

    def constants(i: int, j: int) -> tuple[float, float | None]:
        lr = lr0 * 10.0 ** (i / POINTS_PER_DECADE)
        return lr, (wd0 * 10.0 ** (j / POINTS_PER_DECADE) if wd_site else None)

    def candidate(i: int, j: int) -> Program:
        lr, wd = constants(i, j)
        tuned = with_constant(program, lr_site, lr)
        return with_constant(tuned, wd_site, wd) if wd_site else tuned

    fitness: dict[tuple[int, int], float] = {}

    def evaluate(points: list[tuple[int, int]]) -> None:
        jobs = [(candidate(*point), seed) for point in points for seed in seeds]
        results = list(evaluate_batch(jobs))
        if len(results) != len(jobs):
            raise RuntimeError(f"evaluate_batch returned {len(results)} results for {len(jobs)} jobs")
        for k, point in enumerate(points):
            values = [r.fitness for r in results[k * len(seeds) : (k + 1) * len(seeds)]]
            finite = all(math.isfinite(v) for v in values)
            fitness[point] = sum(values) / len(values) if finite else -math.inf

    ranges = {"lr": list(lr_steps), "weight_decay": list(wd_steps) if wd_site else [0, 0]}
    limits = {name: (low - max_extension, high + max_extension) for name, (low, high) in ranges.items()}
    if not wd_site:
        limits["weight_decay"] = (0, 0)

    def best_point() -> tuple[int, int]:
        return min(fitness, key=lambda p: (-fitness[p], abs(p[0]) + abs(p[1]), p))

    while True:
        grid_points = [
            (i, j)
            for i in range(ranges["lr"][0], ranges["lr"][1] + 1)
            for j in range(ranges["weight_decay"][0], ranges["weight_decay"][1] + 1)
        ]
        new = [point for point in grid_points if point not in fitness]
        if new:
            evaluate(new)
        best = best_point()
        grew = False
        for axis, name in enumerate(ranges):
            low, high = ranges[name]
            if best[axis] == low and low > limits[name][0]:
                ranges[name][0] -= 1
                grew = True
            if best[axis] == high and high < limits[name][1]:
                ranges[name][1] += 1
                grew = True
        if not grew:
            break
    tuned_axes = ["lr", "weight_decay"] if wd_site else ["lr"]
    bound_hit = tuple(name for axis, name in enumerate(tuned_axes) if best[axis] in limits[name])
    grid = tuple(sorted((*constants(*point), value) for point, value in fitness.items()))
    lr, wd = constants(*best)
    return TuneResult(
        lr, wd, fitness[best], candidate(*best), grid, seeds, bound_hit, len(fitness) * len(seeds)
    )


def tuned(
    program: Program | str,
    task_name: str,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    *,
    cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR,
    lr_steps: tuple[int, int] = LR_STEPS,
    wd_steps: tuple[int, int] = WD_STEPS,
    max_extension: int = MAX_EXTENSION,
    evaluate_batch: EvaluateBatch | None = None,
) -> TuneResult:
    """``tune`` on the registered task ``task_name``, cached in a JSON file under ``cache_dir``.

    The cache key is the task's name and config, a digest of its data, the program's
    text, the seeds and the grid settings; a second call with the same key reads the file
    and trains nothing. Files are written atomically (a temporary file, then a rename),
    so concurrent callers at worst tune twice. Arguments as for ``tune``.
    """
    from ._registry import config, dataset, get

    if isinstance(program, str):
        program = dsl.parse(program)
    task_config = config(task_name)
    key = {
        "format": _CACHE_FORMAT,
        "task": task_name,
        "task_config": repr(task_config),
        "data": dataset(task_config).digest(),
        "program": program.to_text(),
        "seeds": [int(seed) for seed in seeds],
        "lr_steps": list(lr_steps),
        "wd_steps": list(wd_steps),
        "max_extension": max_extension,
        "points_per_decade": POINTS_PER_DECADE,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"{task_name}-{digest}.json"
    cached = _read_cache(path, key)
    if cached is not None:
        return cached
    task = get(task_name) if evaluate_batch is None else None
    result = tune(
        task,
        program,
        seeds,
        lr_steps=lr_steps,
        wd_steps=wd_steps,
        max_extension=max_extension,
        evaluate_batch=evaluate_batch,
    )
    _write_cache(path, key, result)
    return result


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _write_cache(path: Path, key: dict, result: TuneResult) -> None:
    data = {
        "key": key,
        "lr": result.lr,
        "weight_decay": result.weight_decay,
        "fitness": _finite_or_none(result.fitness),
        "program": result.program.to_text(),
        "grid": [[lr, wd, _finite_or_none(f)] for lr, wd, f in result.grid],
        "seeds": list(result.seeds),
        "bound_hit": list(result.bound_hit),
        "evaluations": result.evaluations,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as file:
        json.dump(data, file, indent=1)
    os.replace(file.name, path)


def _read_cache(path: Path, key: dict) -> TuneResult | None:
    """The cached result, or None if there is no (readable, matching) file."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if data.get("key") != key:
        return None

    def fitness(value):
        return -math.inf if value is None else float(value)

    return TuneResult(
        lr=data["lr"],
        weight_decay=data["weight_decay"],
        fitness=fitness(data["fitness"]),
        program=dsl.parse(data["program"]),
        grid=tuple((lr, wd, fitness(f)) for lr, wd, f in data["grid"]),
        seeds=tuple(data["seeds"]),
        bound_hit=tuple(data["bound_hit"]),
        evaluations=data["evaluations"],
    )
