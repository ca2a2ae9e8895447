"""Running a program for real: one step in JAX, and as an optax optimizer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ._ops import OPS
from ._program import Program


def execute(
    program: Program,
    w: Any,
    g: Any,
    state: Sequence[Any],
    lr: Any,
    step: Any = 1,
) -> tuple[Any, tuple[Any, ...]]:
    """Run one step of ``program`` in JAX (traceable, so it works under ``jax.jit``).

    Args:
      program: the optimizer.
      w: the parameters, any pytree of float arrays.
      g: the gradient, same structure as ``w``.
      state: one pytree per state slot, same structure as ``w``.
      lr: the learning-rate schedule value, a scalar.
      step: the 1-based step count, read by programs that declare ``step``.

    Returns:
      ``(update, new_state)``: the update to subtract from ``w`` (same structure and
      dtypes as ``w``) and a tuple of new state trees. NaN or inf may appear in them;
      detecting that is the caller's job.

    Raises:
      ProgramError: if the program does not type-check.
      ValueError: if the number of state trees does not match the program.
    """
    _ = program.kinds  # type-check once per program (cached)
    if len(state) != len(program.state):
        raise ValueError(f"program has {len(program.state)} state slot(s), got {len(state)} state trees")
    w_leaves, treedef = jax.tree_util.tree_flatten(w)
    env: dict[str, Any] = {
        "w": tuple(w_leaves),
        "g": tuple(treedef.flatten_up_to(g)),
        "lr": jnp.asarray(lr, jnp.float32),
        "step": jnp.asarray(step, jnp.float32),
    }
    state_leaves = [tuple(treedef.flatten_up_to(s)) for s in state]
    env.update(zip(program.state, state_leaves, strict=True))
    for statement in program.statements:
        args = [env[a] if isinstance(a, str) else a for a in statement.args]
        env[statement.target] = OPS[statement.op].jax_fn()(*args)

    def unflatten_like(value, like):
        return treedef.unflatten([v.astype(old.dtype) for v, old in zip(value, like, strict=True)])

    update = unflatten_like(env[program.update], w_leaves)
    new_state = tuple(
        unflatten_like(env[name], old) for name, old in zip(program.state, state_leaves, strict=True)
    )
    return update, new_state


class ProgramOptimizerState(NamedTuple):
    """optax state of a program: the step count and one tree per state slot."""

    count: jax.Array
    slots: tuple[Any, ...]


def to_optax(
    program: Program, schedule: Callable[[jax.Array], Any] | None = None
) -> optax.GradientTransformation:
    """Turn a program into a drop-in optax optimizer.

    ``init`` creates zeros for every state slot; ``update`` runs the program with
    ``lr = schedule(count)`` (``count`` from 0, as in optax; constant 1.0 when no
    schedule is given) and ``step = count + 1``, and returns the negated program
    update, so ``optax.apply_updates`` subtracts it from the parameters.

    Args:
      program: the optimizer; its constants carry the learning rate and the rest.
      schedule: maps the step count to the unitless schedule value ``lr``.

    Returns:
      An ``optax.GradientTransformation`` that needs ``params`` in ``update``.
    """
    _ = program.kinds  # fail at construction, not inside a jit trace

    def init(params):
        zeros = tuple(jax.tree_util.tree_map(jnp.zeros_like, params) for _ in program.state)
        return ProgramOptimizerState(jnp.zeros([], jnp.int32), zeros)

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("a DSL program reads the weights w: pass params to update()")
        lr = 1.0 if schedule is None else schedule(state.count)
        step_update, slots = execute(program, params, updates, state.slots, lr, state.count + 1)
        negated = jax.tree_util.tree_map(jnp.negative, step_update)
        return negated, ProgramOptimizerState(optax.safe_increment(state.count), slots)

    return optax.GradientTransformation(init, update)
