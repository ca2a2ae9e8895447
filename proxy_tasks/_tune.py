"""The paper's fair comparison: a log grid over a program's learning rate and weight decay.

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

import math
from dataclasses import dataclass

from dsl import Program

LR_FACTORS = tuple(10.0 ** (k / 2) for k in range(-4, 5))
"""Multipliers of the program's learning-rate constant: 10^-2 .. 10^2, half-decade steps."""

WD_FACTORS = tuple(10.0 ** (k / 2) for k in range(-2, 3))
"""Multipliers of the weight-decay constant: 10^-1 .. 10^1."""


@dataclass(frozen=True)
class ConstantSite:
    """Statement ``index``, argument ``position``: where a tunable constant sits."""

    index: int
    position: int

    def value(self, program: Program) -> float:
        return float(program.statements[self.index].args[self.position])


def _multiply_sites(program: Program, is_other: callable) -> list[ConstantSite]:
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
    """The best grid point: the constants, the mean fitness over seeds, the tuned program."""

    lr: float
    weight_decay: float | None
    fitness: float
    program: Program
    grid: tuple[tuple[float, float | None, float], ...]


def tune(task, program: Program, seeds=(0,), lr_factors=LR_FACTORS, wd_factors=WD_FACTORS) -> TuneResult:
    """Evaluate the grid of ``lr x weight decay`` multipliers and return the best point.

    Each grid point's fitness is the mean over ``seeds``; a failed seed makes it -inf.
    Ties go to the first point in grid order (smallest multipliers first).

    Raises:
      ValueError: if the program has no (or an ambiguous) learning-rate constant.
    """
    lr_site = find_lr_constant(program)
    wd_site = find_wd_constant(program)
    lr0 = lr_site.value(program)
    wd0 = wd_site.value(program) if wd_site else None
    grid = []
    best = None
    for lr_factor in lr_factors:
        for wd_factor in wd_factors if wd_site else (None,):
            candidate = with_constant(program, lr_site, lr0 * lr_factor)
            wd = None
            if wd_site:
                wd = wd0 * wd_factor
                candidate = with_constant(candidate, wd_site, wd)
            fitnesses = [task.evaluate(candidate, seed).fitness for seed in seeds]
            fitness = (
                sum(fitnesses) / len(fitnesses) if all(math.isfinite(f) for f in fitnesses) else -math.inf
            )
            point = (lr0 * lr_factor, wd, fitness)
            grid.append(point)
            if best is None or fitness > best[0][2]:
                best = (point, candidate)
    (lr, wd, fitness), tuned = best
    return TuneResult(lr, wd, fitness, tuned, tuple(grid))
