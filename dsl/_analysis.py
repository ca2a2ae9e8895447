"""Abstract execution: type/shape check, functional hash and liveness, with no numerics.

``analyze`` runs on every child the search produces, so it is one pass of pure Python
over the statement list (no JAX tracing, no graph library):

1. *resolve*: each argument becomes a reference to the statement that last assigned
   it, an input, or a constant; kinds are looked up in tables built once per op from
   ``Op.result_kind``;
2. *liveness*, across steps: a statement is live if it reaches the update, directly
   or through a state slot whose incoming value a live statement reads at the next
   step; slots and statements are marked to a fixed point by one worklist;
3. *hash* of the live computation (``dsl._hash``).

Shapes: every tree in a program has the parameters' structure, so once the example
is a tree of float arrays (or shapes) the kinds determine every shape.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from typing import Any

from ._hash import functional_hash_of_resolved
from ._ops import OPS
from ._program import Program, ProgramError, Statement, infer_kinds, parse, quote
from ._refs import FIRST_SLOT, LR, STEP, G, W
from ._resolved import Resolved
from ._types import Kind

# Kinds are small ints in the hot loop (Enum hashing runs Python code).
_KINDS = (Kind.SCALAR, Kind.PER_ARRAY, Kind.TREE)
_SCALAR, _TREE = 0, 2


def _result_table(op) -> list[int]:
    """Result kind code (or -1: does not type-check) indexed by the argument kind codes in base 3."""
    table = []
    for combo in itertools.product(_KINDS, repeat=op.arity):
        try:
            table.append(_KINDS.index(op.result_kind(combo)))
        except TypeError:
            table.append(-1)
    return table


# Built once from the registry: op name -> result kind code by argument kind codes.
_RESULT_KIND = {name: _result_table(op) for name, op in OPS.items()}


def resolve(program: Program) -> Resolved:
    """Resolve arguments to references and infer kinds in one pass."""
    # name -> (reference, kind code)
    env: dict[str, tuple[int, int]] = {
        "w": (W, _TREE),
        "g": (G, _TREE),
        "lr": (LR, _SCALAR),
        "step": (STEP, _SCALAR),
    }
    for i, name in enumerate(program.state):
        env[name] = (FIRST_SLOT - i, _TREE)
    refs = []
    kinds: list[Kind | None] = []
    well_typed = True
    table = _RESULT_KIND
    for index, statement in enumerate(program.statements):
        args = statement.args
        arity = len(args)
        # Unrolled by arity: this loop is most of analyze's time.
        if arity == 2:
            a, b = args
            ra, ka = env[a] if type(a) is str else (a, _SCALAR)
            rb, kb = env[b] if type(b) is str else (b, _SCALAR)
            refs.append((ra, rb))
            code = 3 * ka + kb
        elif arity == 1:
            a = args[0]
            ra, code = env[a] if type(a) is str else (a, _SCALAR)
            refs.append((ra,))
        elif arity == 3:
            a, b, c = args
            ra, ka = env[a] if type(a) is str else (a, _SCALAR)
            rb, kb = env[b] if type(b) is str else (b, _SCALAR)
            rc, kc = env[c] if type(c) is str else (c, _SCALAR)
            refs.append((ra, rb, rc))
            code = 9 * ka + 3 * kb + kc
        else:
            refs.append(())
            code = 0
        kind = table[statement.op][code] if well_typed else -1
        if kind < 0:
            well_typed = False
            kinds.append(None)
        else:
            kinds.append(_KINDS[kind])
        env[statement.target] = (index, kind)
    if well_typed:
        well_typed = all(env[name][1] == _TREE for name in program.outputs)
    return Resolved(
        tuple(refs),
        env[program.update][0],
        tuple(env[name][0] for name in program.state),
        tuple(kinds),
        well_typed,
    )


def liveness(resolved: Resolved, n_slots: int) -> tuple[bytearray, list[bool]]:
    """Live statements and live state slots, to a fixed point across steps.

    A slot is live when a live statement (or the update itself) reads its incoming
    value; then whatever computes its returned value is live too.
    """
    refs, slot_refs = resolved.refs, resolved.slot_refs
    live = bytearray(len(refs))
    live_slot = [False] * n_slots
    stack = [resolved.update_ref]
    while stack:
        ref = stack.pop()
        if ref >= 0:
            if not live[ref]:
                live[ref] = 1
                stack.extend(r for r in refs[ref] if type(r) is int)
        elif ref <= FIRST_SLOT:
            slot = FIRST_SLOT - ref
            if not live_slot[slot]:
                live_slot[slot] = True
                stack.append(slot_refs[slot])
    return live, live_slot


@dataclass(frozen=True)
class Analysis:
    """What abstract execution knows about a program.

    Attributes:
      program: the analysed program (None if text did not parse).
      valid: whether it parses and type-checks (a bad params example raises instead).
      error: the ``ProgramError`` (with its line) when not valid.
      kinds: the kind of each statement's result (empty when not valid).
      hash: the functional hash (hex), None when not valid; see ``dsl._hash``.
      redundant: indices of statements that cannot affect any update, across steps.
      live_state_slots: slots whose incoming value is read by live code (the
        program's true memory).
      unused_state_slots: the other slots: never read, or overwritten before being
        read; what is returned for them does not matter.
      leaf_shapes: the parameter array shapes, when a params example was given.
    """

    program: Program | None
    valid: bool
    error: ProgramError | None = None
    kinds: tuple[Kind, ...] = ()
    hash: str | None = None
    redundant: tuple[int, ...] = ()
    live_state_slots: tuple[str, ...] = ()
    unused_state_slots: tuple[str, ...] = ()
    leaf_shapes: tuple[tuple[int, ...], ...] | None = None
    _resolved: Resolved | None = field(default=None, repr=False, compare=False)

    @property
    def redundant_fraction(self) -> float:
        """Share of statements that are redundant (0.0 for an empty body)."""
        if self.program is None or not self.program.statements:
            return 0.0
        return len(self.redundant) / len(self.program.statements)

    @property
    def redundant_lines(self) -> tuple[int, ...]:
        """The text lines of the redundant statements."""
        if self.program is None:
            return ()
        return tuple(self.program.line_of(i) for i in self.redundant)

    def raise_if_invalid(self) -> None:
        """Raise ``error`` (a ``ProgramError``) if the program is not valid."""
        if not self.valid:
            raise self.error

    def shape_of(self, index: int) -> Any:
        """The shape of statement ``index``'s result given the params example.

        ``()`` for a scalar, a tuple of ``()`` (one per array) for per-array scalars,
        the tuple of leaf shapes for a tree.
        """
        self.raise_if_invalid()
        if self.leaf_shapes is None:
            raise ValueError("no params example was given to analyze()")
        kind = self.kinds[index]
        if kind is Kind.SCALAR:
            return ()
        if kind is Kind.PER_ARRAY:
            return tuple(() for _ in self.leaf_shapes)
        return self.leaf_shapes

    @functools.cached_property
    def pruned(self) -> Program:
        """The program without its redundant statements; same signature, same updates.

        Decision: the signature is kept (so a pruned program drops into the same
        optimizer state), and unused state slots are simply never assigned: a kept
        statement that assigned an unused slot's name as a temporary is renamed to a
        fresh variable. So unused slots stay zero forever, while every update and every
        live slot's value is computed by exactly the same operations as before (bit
        identical). Only the values returned for unused slots may differ, and they are
        never read. (A slot that is also the returned update, ``return m, m``, keeps
        its assignments; a program without redundant statements is returned as is.)
        """
        self.raise_if_invalid()
        program = self.program
        if not self.redundant:
            return program
        redundant = set(self.redundant)
        unused = set(self.unused_state_slots)
        # Every variable read is an input or an earlier target (checked on construction).
        taken = {s.target for s in program.statements} | set(program.inputs)
        renamed: dict[int, str] = {}  # kept statement index -> fresh target
        statements = []
        for index, statement in enumerate(program.statements):
            if index in redundant:
                continue
            args = tuple(
                renamed.get(ref, arg) if type(arg) is str else arg
                for arg, ref in zip(statement.args, self._resolved.refs[index], strict=True)
            )
            target = statement.target
            if target in unused and target != program.update:
                target = _fresh_name(target, taken)
                taken.add(target)
                renamed[index] = target
            statements.append(Statement(target, statement.op, args))
        return program.replace_statements(statements)


def _fresh_name(base: str, taken: set[str]) -> str:
    for suffix in itertools.count(1):
        name = f"{base}_{suffix}"
        if name not in taken:
            return name
    raise AssertionError("unreachable")


def analyze(program: Program | str, params_example: Any = None) -> Analysis:
    """Abstractly execute ``program``: validity, functional hash, redundancy, pruning.

    Args:
      program: a ``Program``, or program text (a parse error makes it invalid).
      params_example: optional parameter tree (float arrays, ``jax.ShapeDtypeStruct``
        or shape tuples as leaves); checked, and its leaf shapes give every value's
        shape (``Analysis.shape_of``).

    Returns:
      An ``Analysis``. An invalid program is not an exception: ``valid`` is False and
      ``error`` names the line and the reason.

    Raises:
      ValueError: if ``params_example`` is not a tree of float arrays or shapes (that
        is the caller's mistake, not the program's).
    """
    leaf_shapes = None if params_example is None else param_leaf_shapes(params_example)
    if isinstance(program, str):
        try:
            program = parse(program)
        except ProgramError as error:
            return Analysis(None, False, error, leaf_shapes=leaf_shapes)
    resolved = resolve(program)
    if not resolved.well_typed:
        try:
            infer_kinds(program)
        except ProgramError as error:
            return Analysis(program, False, error, leaf_shapes=leaf_shapes)
        raise AssertionError(f"kind tables and infer_kinds disagree on:\n{program}")
    live, live_slot = liveness(resolved, len(program.state))
    state = program.state
    # Fill Program.kinds' cache (a functools.cached_property) so that mutating this
    # child later (scope_kinds) does not infer its kinds a second time.
    program.__dict__.setdefault("kinds", resolved.kinds)
    return Analysis(
        program,
        True,
        kinds=resolved.kinds,
        hash=functional_hash_of_resolved(program, resolved, live, live_slot),
        redundant=tuple(i for i, flag in enumerate(live) if not flag),
        live_state_slots=tuple(name for name, flag in zip(state, live_slot, strict=True) if flag),
        unused_state_slots=tuple(name for name, flag in zip(state, live_slot, strict=True) if not flag),
        leaf_shapes=leaf_shapes,
        _resolved=resolved,
    )


def prune(program: Program | str) -> Program:
    """``program`` without its redundant statements (see ``Analysis.pruned``).

    Raises:
      ProgramError: if the program is not valid.
    """
    return analyze(program).pruned


def functional_hash(program: Program | str) -> str:
    """The functional hash of ``program`` (see ``dsl._hash``).

    Raises:
      ProgramError: if the program is not valid.
    """
    analysis = analyze(program)
    analysis.raise_if_invalid()
    return analysis.hash


# ----------------------------------------------------------------------------- shapes


def _is_shape(x: Any) -> bool:
    return isinstance(x, tuple) and all(type(d) is int for d in x)


def param_leaf_shapes(params_example: Any) -> tuple[tuple[int, ...], ...]:
    """The leaf shapes of a parameter tree whose leaves are float arrays or shapes.

    A tuple of ints is read as a shape (so ``()`` is a scalar parameter).

    Raises:
      ValueError: naming the key path of the first bad leaf, or if there is none.
    """
    import jax

    # Fast path (every call of analyze): leaves only; key paths only to explain an error.
    shapes = []
    for leaf in jax.tree_util.tree_leaves(params_example, is_leaf=_is_shape):
        shape = _leaf_shape(leaf)
        if shape is None:
            break
        shapes.append(shape)
    else:
        if shapes:
            return tuple(shapes)
        raise ValueError("the params example has no arrays")
    for path, leaf in jax.tree_util.tree_flatten_with_path(params_example, is_leaf=_is_shape)[0]:
        if _leaf_shape(leaf) is None:
            raise ValueError(f"params_example{jax.tree_util.keystr(path)}: {_leaf_problem(leaf)}")
    raise AssertionError("unreachable")


@functools.lru_cache(maxsize=64)
def _is_float_dtype(dtype: Any) -> bool:
    import jax.numpy as jnp

    return bool(jnp.issubdtype(dtype, jnp.floating))


def _leaf_shape(leaf: Any) -> tuple[int, ...] | None:
    if _is_shape(leaf):
        return leaf if all(d >= 0 for d in leaf) else None
    dtype = getattr(leaf, "dtype", None)
    shape = getattr(leaf, "shape", None)
    if dtype is None or shape is None or not _is_float_dtype(dtype):
        return None
    return tuple(int(d) for d in shape)


def _leaf_problem(leaf: Any) -> str:
    if _is_shape(leaf):
        return f"shape {quote(leaf, 60)} has a negative dimension"
    if getattr(leaf, "dtype", None) is None or getattr(leaf, "shape", None) is None:
        return f"{quote(leaf)} is neither an array nor a shape (a tuple of ints)"
    return f"parameters must be float arrays, got dtype {leaf.dtype}"
