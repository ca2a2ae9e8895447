"""Breeding one child: the tournament, mutation attempts until a valid child, random programs.

Regularized evolution (arXiv:2302.06675, section 2.2): a tournament of T members sampled
from a population picks a parent; the parent is mutated, and mutated again until the
child type-checks and its functional hash differs from the parent's. The random-search
baseline draws fresh random programs instead, until one is valid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dsl import Program, random_program, update_scales_with_lr

from ._cache import Facts, analyze_program
from ._config import Config
from ._mutation import MutationSettings, mutate
from ._state import SearchError

MAX_BREED_ATTEMPTS = 10_000


def mutation_settings(config: Config) -> MutationSettings:
    """The ``MutationSettings`` of ``config`` (constants-only mode: ``mutate_constant`` alone)."""
    mutation = config.mutation
    return MutationSettings(
        weights=(
            {"mutate_constant": 1.0} if config.search.mode == "constants_only" else dict(mutation.weights)
        ),
        max_length=mutation.max_length,
        constant_probability=mutation.constant_probability,
        constant_reset_probability=mutation.constant_reset_probability,
        update_scales_with_lr=config.search.update_scales_with_lr,
    )


def tournament(
    rng: np.random.Generator,
    member_ids: Sequence[int],
    fitness: Callable[[int], float],
    size: int,
    parsimony_tolerance: float = 0.0,
    live_statements: Callable[[int], int] | None = None,
) -> int:
    """The fittest of ``size`` members sampled without replacement (ties: the first sampled).

    With a ``parsimony_tolerance`` the winner is instead the member with the fewest live
    statements among the sampled members whose fitness is within that tolerance of the
    sample's fittest (ties: the fitter, then the first sampled). This is lexicographic
    parsimony pressure (Luke and Panait 2002), not in the paper: of programs the fitness
    cannot tell apart, the shorter one breeds.

    Args:
      rng: draws the sample.
      member_ids: the population (ids may repeat: copies of one program).
      fitness: the fitness of a member id.
      size: T, at most ``len(member_ids)``.
      parsimony_tolerance: fitness within which shorter beats fitter (0: off).
      live_statements: the live statement count of a member id (needed when the tolerance
        is positive).

    Returns:
      The winner's id.
    """
    picks = [member_ids[int(index)] for index in rng.choice(len(member_ids), size=size, replace=False)]
    scored = [(member_id, fitness(member_id)) for member_id in picks]
    fittest = max(score for _, score in scored)
    if parsimony_tolerance <= 0:
        return next(member_id for member_id, score in scored if score == fittest)
    if live_statements is None:
        raise ValueError("a parsimony tolerance needs live_statements")
    # a failed member (fitness -inf) is never close to a finite fittest, whatever the tolerance
    close = [
        (member_id, score)
        for member_id, score in scored
        if score == fittest or (score > -math.inf and score >= fittest - parsimony_tolerance)
    ]
    # min keeps the first of equal keys, so equal length and fitness falls to the first sampled
    return min(close, key=lambda pair: (live_statements(pair[0]), -pair[1]))[0]


@dataclass(frozen=True)
class Child:
    """A valid child and how it was made.

    Attributes:
      program: the child.
      mutation: the mutation kind that made it, or ``"random"``.
      facts: its validity, functional hash and redundancy.
      attempts: programs generated to get it (the invalid ones and those equal to the parent).
    """

    program: Program
    mutation: str
    facts: Facts
    attempts: int


def mutate_until_valid(
    rng: np.random.Generator, parent: Program, parent_hash: str, settings: MutationSettings
) -> Child:
    """Mutate ``parent`` until the child is valid and functionally different from it (and,
    with ``settings.update_scales_with_lr``, its update is proportional to ``lr``).

    Raises:
      SearchError: after ``MAX_BREED_ATTEMPTS`` failed attempts.
    """
    for attempt in range(1, MAX_BREED_ATTEMPTS + 1):
        child, mutation = mutate(rng, parent, settings)
        facts = analyze_program(child)
        if facts.valid and facts.hash != parent_hash and _accepted(facts, settings.update_scales_with_lr):
            return Child(program=child, mutation=mutation, facts=facts, attempts=attempt)
    raise SearchError(
        f"no valid child that differs from its parent in {MAX_BREED_ATTEMPTS} attempts "
        f"(mutation weights {settings.weights})"
    )


def _accepted(facts: Facts, require_lr_scaling: bool) -> bool:
    return not require_lr_scaling or update_scales_with_lr(facts.analysis)


def random_valid_program(
    rng: np.random.Generator, max_length: int, state_slots: int, require_lr_scaling: bool = False
) -> Child:
    """A random program of uniformly drawn length 1..``max_length``, redrawn until valid
    (and, with ``require_lr_scaling``, until its update is proportional to ``lr``).

    Raises:
      SearchError: after ``MAX_BREED_ATTEMPTS`` invalid programs.
    """
    for attempt in range(1, MAX_BREED_ATTEMPTS + 1):
        length = int(rng.integers(1, max_length + 1))
        program = random_program(rng, length, state_slots=state_slots)
        facts = analyze_program(program)
        if facts.valid and _accepted(facts, require_lr_scaling):
            return Child(program=program, mutation="random", facts=facts, attempts=attempt)
    raise SearchError(
        f"no valid random program of at most {max_length} statements in {MAX_BREED_ATTEMPTS} draws"
    )
