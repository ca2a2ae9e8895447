"""Seeded generation of random, type-valid statements and programs.

Shared by the property tests and by the search's mutations, so both explore the same
space. Everything is driven by a ``numpy.random.Generator``: same seed, same output.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._ops import OPS, Op
from ._program import Program, ProgramError, Statement, input_kinds
from ._types import Kind

OP_NAMES: tuple[str, ...] = tuple(OPS)


def scope_kinds(program: Program, position: int) -> dict[str, Kind]:
    """The variables readable before statement ``position``, with their kinds.

    Assumes ``program`` type-checks.
    """
    scope = input_kinds(program)
    for statement, kind in zip(program.statements[:position], program.kinds, strict=False):
        scope[statement.target] = kind
    return scope


def random_constant(rng: np.random.Generator) -> float:
    """A fresh constant: a draw from N(0, 1), as in the paper."""
    return float(rng.standard_normal())


def random_arguments(
    rng: np.random.Generator,
    op: Op,
    scope: dict[str, Kind],
    constant_probability: float = 0.2,
    max_tries: int = 20,
) -> tuple[tuple[str | float, ...], Kind] | None:
    """Random arguments for ``op`` drawn from ``scope`` or constants, and the result kind.

    Returns None when no type-valid choice was found in ``max_tries`` draws.
    """
    names = list(scope)
    for _ in range(max_tries):
        args: list[str | float] = []
        for _ in range(op.arity):
            if rng.random() < constant_probability:
                args.append(random_constant(rng))
            else:
                args.append(names[rng.integers(len(names))])
        kinds = tuple(scope[a] if isinstance(a, str) else Kind.SCALAR for a in args)
        try:
            return tuple(args), op.result_kind(kinds)
        except TypeError:
            continue
    return None


def random_statement(
    rng: np.random.Generator,
    scope: dict[str, Kind],
    targets: Sequence[str],
    op_names: Sequence[str] = OP_NAMES,
    constant_probability: float = 0.2,
) -> tuple[Statement, Kind]:
    """A random type-valid statement assigning one of ``targets``, and its result kind.

    Args:
      rng: the random source.
      scope: readable variables and their kinds.
      targets: the names the statement may assign (chosen uniformly).
      op_names: the functions to choose from (uniformly).
      constant_probability: chance that each argument is a fresh constant.
    """
    while True:
        op = OPS[op_names[rng.integers(len(op_names))]]
        drawn = random_arguments(rng, op, scope, constant_probability)
        if drawn is not None:
            args, kind = drawn
            target = targets[rng.integers(len(targets))]
            return Statement(target, op.name, args), kind


LAST_STATEMENT_TRIES = 100
"""Draws of the last statement to make the update a tree (none may exist: w and g reassigned)."""

REASSIGN_INPUT_PROBABILITY = 0.1
"""Chance that a statement of ``random_program`` (not the last) assigns an input."""


def random_program(
    rng: np.random.Generator,
    length: int,
    state_slots: int = 2,
    op_names: Sequence[str] = OP_NAMES,
    constant_probability: float = 0.2,
    max_tries: int = 1000,
    uses_step: bool | None = None,
) -> Program:
    """A random program of ``length`` statements that type-checks.

    Every input may be read and assigned: a statement's target is an input (``w``,
    ``g``, ``lr``, and ``step`` when the signature has it) with probability
    ``REASSIGN_INPUT_PROBABILITY``, else a fresh temporary, a state slot or ``update``;
    the last statement assigns ``update`` and is a tree; a statement whose value is not a tree
    assigns a temporary instead of a state slot. Draws until the whole program is valid.

    Args:
      rng: the random source (same state, same program).
      length: the number of statements.
      state_slots: how many state slots (``m``, ``v``, ``s``, ``r``), 0 to 4.
      op_names: the functions to choose from.
      constant_probability: chance that each argument is a fresh constant.
      max_tries: programs drawn before giving up.
      uses_step: whether the signature ends with ``step``; None draws it (half the
        programs).

    Raises:
      RuntimeError: if no valid program was drawn in ``max_tries`` attempts.
    """
    if length < 1:
        raise ValueError("a random program needs at least one statement (the update)")
    state = ("m", "v", "s", "r")[:state_slots]
    for _ in range(max_tries):
        with_step = bool(rng.random() < 0.5) if uses_step is None else uses_step
        inputs = ["w", "g", "lr", "step"] if with_step else ["w", "g", "lr"]
        scope = {name: Kind.SCALAR if name in ("lr", "step") else Kind.TREE for name in inputs}
        scope.update(dict.fromkeys(state, Kind.TREE))
        statements = []
        for index in range(length):
            if index == length - 1:
                targets = ["update"]
            elif rng.random() < REASSIGN_INPUT_PROBABILITY:
                targets = inputs
            else:
                targets = [f"t{index}", "update", *state]
            statement, kind = random_statement(rng, scope, targets, op_names, constant_probability)
            for _ in range(LAST_STATEMENT_TRIES):  # the update must be a tree (when one can be made)
                if index < length - 1 or kind is Kind.TREE:
                    break
                statement, kind = random_statement(rng, scope, targets, op_names, constant_probability)
            if kind is not Kind.TREE and statement.target in state:
                # a state slot must end as a tree: a scalar goes to a temporary instead, so
                # long programs with many slots stay valid (they almost never were)
                statement = Statement(f"t{index}", statement.op, statement.args)
            scope[statement.target] = kind
            statements.append(statement)
        program = Program(state, tuple(statements), uses_step=with_step)
        try:
            _ = program.kinds
        except ProgramError:
            continue
        return program
    raise RuntimeError(f"no valid program of length {length} in {max_tries} draws")
