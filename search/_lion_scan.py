"""When a search run first produced a Lion-family program, read from its log alone.

"Lion family" is ``dsl.closest_optimizer``'s verdict, unchanged: the best fit among the
library optimizers is a Lion-family candidate (sign, tanh or clip of an interpolation of
the gradient and one momentum slot that is itself an interpolation of the gradient), the
program has at most one live state slot, the fit is good and depends on the gradient as
the program does, and at least 95% of its update signs agree with the fit (on updates of
either sign). Every valid child joins its island's population (regularized evolution,
arXiv:2302.06675, section 3), so the first such program in ``individuals.jsonl`` is the
first one in the population.

``closest_optimizer`` fits every library optimizer and costs seconds per program, so the
scan checks as few programs as it can without changing the answer:

- Programs with equal functional hashes compute the same updates, so each hash is judged
  once, at its first finite-fitness record.
- A program with more than one live state slot cannot be Lion family: ``closest_optimizer``
  requires ``len(dsl.analyze(program).live_state_slots) <= 1`` and computes it with the same
  call as ``could_be_lion_family``, which rejects only those (and programs that do not
  type-check, on which ``closest_optimizer`` raises).
- ``dsl.screen_lion_family`` then checks the rule's other necessary conditions on
  the same probe updates and the same fits (updates of both signs, a gradient-dependent
  update, a Lion-family candidate whose own fit passes), fitting only the Lion-family
  candidates and the sign-based ones only when a lower bound allows. Neither rejection is
  a heuristic; only programs that pass both get the full fit.

A cheaper structural filter (the pruned update's last op is sign, tanh or clip) is *not*
used: the verdict is behavioural, and a program such as ``m / (|m| + 1e-8)`` is fitted by
signum with every sign right while its last op is a division.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import dsl

from ._inspect import Run, read_run


@dataclass(frozen=True)
class LionFamilyHit:
    """The first Lion-family program of a run's log.

    Attributes:
      seq: its position in the log (the record's ``seq``).
      id: its individual id.
      evaluations: trainings (cache misses, the warm start's included) recorded up to and
        including it.
      programs: individuals recorded up to and including it (cache hits and the warm
        start included).
      fitness: its fitness.
      program: its program text.
      is_lion: ``closest_optimizer``'s two-beta verdict (beta2 exceeds beta1 by >= 0.04).
      beta1: the fitted beta1 (the single beta of a one-beta candidate such as signum).
      beta2: the fitted beta2 (likewise).
      error: the relative update error of the Lion-family fit (``ClosestMatch.error``).
    """

    seq: int
    id: int
    evaluations: int
    programs: int
    fitness: float
    program: str
    is_lion: bool
    beta1: float | None
    beta2: float | None
    error: float


@dataclass(frozen=True)
class _Verdict:
    lion_family: bool
    is_lion: bool = False
    beta1: float | None = None
    beta2: float | None = None
    error: float = math.inf


def could_be_lion_family(program: dsl.Program | str) -> bool:
    """False only for programs that ``dsl.closest_optimizer`` cannot call Lion family.

    Those are programs without exactly one live state slot (its own rule, with the same
    ``dsl.analyze``: the momentum, and no other) and programs that do not type-check (it
    raises on them).
    """
    analysis = dsl.analyze(program)
    return analysis.valid and len(analysis.live_state_slots) == 1


@functools.lru_cache(maxsize=4096)
def _verdict(program_text: str) -> _Verdict:
    """``closest_optimizer``'s Lion-family verdict on a program, cached by its text."""
    if not could_be_lion_family(program_text):
        return _Verdict(False)
    program = dsl.parse(program_text)
    if not dsl.screen_lion_family(program):
        return _Verdict(False)
    try:
        match = dsl.closest_optimizer(program)
    except ValueError:  # no finite update on the probe: nothing to fit, not Lion family
        return _Verdict(False)
    if not match.lion_family:
        return _Verdict(False)
    return _Verdict(True, match.is_lion, match.beta1, match.beta2, match.error)


def _trained(record: dict) -> bool:
    fitness = record.get("fitness")
    return fitness is not None and math.isfinite(fitness)


def _lion_family_records(run: Run | str | Path, max_error: float | None = None):
    """``(position, record, verdict)`` of each Lion-family record, in log order.

    Only records whose fitness is finite count: a failed training (NaN, divergence) is
    in the population but never trained to anything, and its fitness ranks it last.
    With ``max_error``, only fits with a relative update error at most that count.
    """
    run = run if isinstance(run, Run) else read_run(run)
    judged: dict[str, _Verdict] = {}
    for position, record in enumerate(run.individuals):
        if not _trained(record):
            continue
        key = record.get("hash") or record["program"]
        if key not in judged:
            judged[key] = _verdict(record["program"])
        verdict = judged[key]
        if verdict.lion_family and (max_error is None or verdict.error <= max_error):
            yield position, record, judged[key]


def first_lion_family(run: Run | str | Path, max_error: float | None = None) -> LionFamilyHit | None:
    """The first program in a run's log that ``dsl.closest_optimizer`` calls Lion family.

    A record counts only if its fitness is finite (it trained); a failed one is skipped,
    and the same program recorded later with a finite fitness counts then. Each
    functional hash is judged once; programs that fail a necessary condition of the
    rule are rejected without the full fit (see the module docstring).

    ``max_error`` adds an error bound on top of the rule's own (``LION_MAX_ERROR``; it
    never loosens it); None applies the rule alone.

    Args:
      run: a ``Run`` from ``read_run``, or a run directory.
      max_error: if given, a Lion-family program counts only if its fit's relative
        update error is at most this (Lion itself fits at about 1e-8).

    Returns:
      The hit, or None if no record of the log is Lion family.

    Raises:
      InspectError: if ``run`` is a path that is not a readable run directory.
    """
    run = run if isinstance(run, Run) else read_run(run)
    for position, record, verdict in _lion_family_records(run, max_error):
        recorded = run.individuals[: position + 1]
        return LionFamilyHit(
            seq=record["seq"],
            id=record["id"],
            evaluations=sum(r["cache_hit"] is None for r in recorded),
            programs=position + 1,
            fitness=float(record["fitness"]),
            program=record["program"],
            is_lion=verdict.is_lion,
            beta1=verdict.beta1,
            beta2=verdict.beta2,
            error=verdict.error,
        )
    return None


def count_lion_family(run: Run | str | Path, max_error: float | None = None) -> int:
    """Records of the log that are Lion family (finite fitness; cache hits count again).

    This judges every distinct hash that passes ``could_be_lion_family`` and the screen: it
    costs as much as a ``first_lion_family`` that finds nothing.
    """
    return sum(1 for _ in _lion_family_records(run, max_error))


def lion_family_line(run: Run) -> str:
    """One line for ``symdisc inspect RUN_DIR``: the first Lion-family program, or none."""
    hit = first_lion_family(run)
    if hit is None:
        return "no Lion-family program in the log"
    return (
        f"first Lion-family program: individual {hit.id} after {hit.evaluations} trainings "
        f"({hit.programs} programs), Lion: {'yes' if hit.is_lion else 'no'} "
        f"(beta1 {hit.beta1:.4g}, beta2 {hit.beta2:.4g}, relative update error {hit.error:.3g})"
    )
