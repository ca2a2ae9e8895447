"""Mutations of immutable programs, one per child (arXiv:2302.06675, section 2.2).

Six kinds, chosen with configurable weights:

- ``insert``: a statement at a random position, with a random function and type-valid
  random arguments (variables in scope or constants), assigned to a new variable or to
  an existing one;
- ``delete``: remove a random statement;
- ``modify_argument``: replace one argument of a random statement by another variable of
  the same kind, or by a constant (a constant argument may also be perturbed);
- ``mutate_constant``: change one constant: a fresh N(0, 1) draw, or multiplication by
  2^a with a ~ N(0, 1). The only kind used by the constants-only baseline;
- ``wrap``: pass the value of a random statement through a random one-argument function
  of the same kind (``x = tanh(x)``, ``x = sign(x)``, ``x = sqrt(x)``...), inserted right
  after it. Not in the paper: an ``insert`` rarely lands on a value that reaches the
  update and reads it, so a nonlinearity on a live path takes two mutations, of which
  the first alone is neutral (``docs/rediscovery_analysis.md``). Off by default;
- ``duplicate``: copy a random statement into a new variable, inserted just before it, point
  one later reader of the statement's value at the copy, and change one argument of the
  copy (a constant is perturbed as by ``mutate_constant``; with no constant, an argument
  is changed as by ``modify_argument``), so the child differs from its parent. Not in
  the paper: gene duplication followed by divergence. An unchanged copy would be
  functionally identical, and such children are rejected, so a value with two readers
  (a momentum that is both stored and read by the update) could only split into two
  different values by a specific insert followed by a specific argument change
  (``docs/rediscovery_analysis.md``). Off by default.

A single ``mutate`` call may produce an invalid program (a deleted statement was read
later, a new type breaks a later call); ``mutate_until_valid`` re-mutates the parent until
the child is valid and differs from it, as the paper does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsl import (
    OP_NAMES,
    OPS,
    Kind,
    Op,
    Program,
    ProgramError,
    Statement,
    random_constant,
    random_statement,
    scope_kinds,
)

MUTATION_KINDS = ("insert", "delete", "modify_argument", "mutate_constant", "wrap", "duplicate")


@dataclass(frozen=True)
class MutationSettings:
    """How children are made from a parent.

    Attributes:
      weights: relative weight of each mutation kind (keys from ``MUTATION_KINDS``).
      max_length: programs never grow beyond this many statements.
      constant_probability: chance that a new argument is a constant instead of a variable.
      constant_reset_probability: when a constant changes, chance of a fresh N(0, 1) draw
        instead of multiplication by 2^a, a ~ N(0, 1).
      op_names: the functions ``insert`` and ``wrap`` may call (``duplicate`` copies a
        statement's function, whatever it is).
      update_scales_with_lr: only children whose update is proportional to ``lr``
        (``dsl.update_scales_with_lr``) are accepted.
    """

    weights: dict[str, float]
    max_length: int = 30
    constant_probability: float = 0.2
    constant_reset_probability: float = 0.5
    op_names: tuple[str, ...] = OP_NAMES
    update_scales_with_lr: bool = False


def mutate_constant_value(rng: np.random.Generator, value: float, reset_probability: float) -> float:
    """A fresh N(0, 1) draw, or ``value * 2**a`` with a ~ N(0, 1)."""
    if rng.random() < reset_probability:
        return random_constant(rng)
    return float(value * 2.0 ** rng.standard_normal())


def mutate(rng: np.random.Generator, program: Program, settings: MutationSettings) -> tuple[Program, str]:
    """One random mutation of ``program`` (which must type-check).

    Returns:
      The child and the name of the mutation kind. The child may be invalid (raises no
      error by itself: ``Program`` construction errors are caught and the unchanged parent
      is returned, which the caller rejects as identical).
    """
    kinds = [
        k for k in MUTATION_KINDS if settings.weights.get(k, 0.0) > 0 and _applicable(k, program, settings)
    ]
    if not kinds:
        return program, "none"
    weights = np.array([settings.weights[k] for k in kinds], dtype=float)
    kind = kinds[rng.choice(len(kinds), p=weights / weights.sum())]
    try:
        return _MUTATIONS[kind](rng, program, settings), kind
    except ProgramError:
        return program, kind


def _applicable(kind: str, program: Program, settings: MutationSettings) -> bool:
    n = len(program.statements)
    if kind in ("insert", "wrap"):  # both add a statement
        return n < settings.max_length
    if kind == "duplicate":
        return n < settings.max_length and bool(_duplicable(program))
    if kind == "delete":
        return n > 1
    if kind == "mutate_constant":
        return any(not isinstance(a, str) for s in program.statements for a in s.args)
    return any(s.args for s in program.statements)


def _insert(rng: np.random.Generator, program: Program, settings: MutationSettings) -> Program:
    position = int(rng.integers(len(program.statements) + 1))
    scope = scope_kinds(program, position)
    # A new variable or an existing one, half and half, so both kinds of edit are common.
    if rng.random() < 0.5:
        targets = [_fresh_name(program)]
    else:
        targets = sorted({s.target for s in program.statements} | set(program.state) | {program.update, "lr"})
    statement, _ = random_statement(rng, scope, targets, settings.op_names, settings.constant_probability)
    statements = list(program.statements)
    statements.insert(position, statement)
    return program.replace_statements(statements)


def _fresh_name(program: Program) -> str:
    used = {s.target for s in program.statements} | set(program.inputs)
    index = len(program.statements)
    while f"t{index}" in used:
        index += 1
    return f"t{index}"


def _delete(rng: np.random.Generator, program: Program, settings: MutationSettings) -> Program:
    statements = list(program.statements)
    del statements[int(rng.integers(len(statements)))]
    return program.replace_statements(statements)


def _modify_argument(rng: np.random.Generator, program: Program, settings: MutationSettings) -> Program:
    candidates = [i for i, s in enumerate(program.statements) if s.args]
    index = candidates[int(rng.integers(len(candidates)))]
    position = int(rng.integers(len(program.statements[index].args)))
    return program.with_argument(index, position, _new_argument(rng, program, index, position, settings))


def _new_argument(
    rng: np.random.Generator, program: Program, index: int, position: int, settings: MutationSettings
) -> str | float:
    """Another variable of the same kind in scope, or a constant (a constant may be perturbed)."""
    old = program.statements[index].args[position]
    scope = scope_kinds(program, index)
    old_kind = scope[old] if isinstance(old, str) else Kind.SCALAR
    same_kind = [name for name, kind in scope.items() if kind is old_kind and name != old]
    if rng.random() < settings.constant_probability or not same_kind:
        if isinstance(old, str):
            return random_constant(rng)
        return mutate_constant_value(rng, old, settings.constant_reset_probability)
    return same_kind[int(rng.integers(len(same_kind)))]


def _mutate_constant(rng: np.random.Generator, program: Program, settings: MutationSettings) -> Program:
    places = [
        (i, j)
        for i, s in enumerate(program.statements)
        for j, a in enumerate(s.args)
        if not isinstance(a, str)
    ]
    index, position = places[int(rng.integers(len(places)))]
    old = program.statements[index].args[position]
    return program.with_argument(
        index, position, mutate_constant_value(rng, old, settings.constant_reset_probability)
    )


def _wrap(rng: np.random.Generator, program: Program, settings: MutationSettings) -> Program:
    index = int(rng.integers(len(program.statements)))
    target = program.statements[index].target
    kind = program.kinds[index]
    functions = [name for name in settings.op_names if _maps_kind_to_itself(OPS[name], kind)]
    statement = Statement(target, functions[int(rng.integers(len(functions)))], (target,))
    statements = list(program.statements)
    statements.insert(index + 1, statement)
    return program.replace_statements(statements)


def _duplicate(rng: np.random.Generator, program: Program, settings: MutationSettings) -> Program:
    originals = _duplicable(program)
    index = originals[int(rng.integers(len(originals)))]
    readers = _readers(program, index)
    reader, reader_position = readers[int(rng.integers(len(readers)))]
    original = program.statements[index]
    copy = _fresh_name(program)
    statements = list(program.statements)
    # The copy goes just before the original, so it reads the same values the original reads.
    statements.insert(index, Statement(copy, original.op, original.args))
    child = program.replace_statements(statements).with_argument(reader + 1, reader_position, copy)
    constants = [j for j, a in enumerate(original.args) if not isinstance(a, str)]
    if constants:
        position = constants[int(rng.integers(len(constants)))]
        value = mutate_constant_value(rng, original.args[position], settings.constant_reset_probability)
    else:
        position = int(rng.integers(len(original.args)))
        value = _new_argument(rng, child, index, position, settings)
    return child.with_argument(index, position, value)


def _duplicable(program: Program) -> list[int]:
    """The statements that take arguments and whose value some later statement reads."""
    return [i for i, s in enumerate(program.statements) if s.args and _readers(program, i)]


def _readers(program: Program, index: int) -> list[tuple[int, int]]:
    """The (statement, argument) places that read the value statement ``index`` assigns:
    later reads of its target up to and including the statement that next reassigns it."""
    target = program.statements[index].target
    places = []
    for later in range(index + 1, len(program.statements)):
        statement = program.statements[later]
        places += [(later, j) for j, a in enumerate(statement.args) if a == target]
        if statement.target == target:
            break
    return places


def _maps_kind_to_itself(op: Op, kind: Kind) -> bool:
    if op.arity != 1:
        return False
    try:
        return op.result_kind((kind,)) is kind
    except TypeError:
        return False


_MUTATIONS = {
    "insert": _insert,
    "delete": _delete,
    "modify_argument": _modify_argument,
    "mutate_constant": _mutate_constant,
    "wrap": _wrap,
    "duplicate": _duplicate,
}
