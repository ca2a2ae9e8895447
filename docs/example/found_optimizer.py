"""best_simplified: an optimizer written as a symdisc program, exported as an optax optimizer.

The program (arXiv:2302.06675, section 2: the training loop applies w = w - update after
every step; ``lr`` is the learning-rate schedule's value, ``step`` the 1-based step count;
each state slot starts at zeros shaped like the parameters):

    def train(w, g, lr):
      sqrt_v = sqrt(g)
      update = g / sqrt_v
      update = update * 0.34
      return update

Its functions, with their out-of-domain rules (tree values are tuples of arrays, one per
parameter array; scalars broadcast over every array):

  sqrt: sqrt|x|
  divide: x / (y + 1e-8)
  multiply: x * y

Usage (needs only jax and optax)::

    tx = optimizer(learning_rate=1.0)  # a float or an optax schedule: the program's ``lr``
    updates, state = tx.update(grads, state, params)  # params are required
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

# ---- the DSL functions this program uses, copied from symdisc's op registry (dsl/_ops.py)


DIVISION_EPSILON = 1e-08


def _leafwise(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Lift an array function to scalars and tuples of arrays, broadcasting scalars."""

    def lifted(*args):
        width = next((len(a) for a in args if isinstance(a, tuple)), None)
        if width is None:
            return fn(*args)
        return tuple(fn(*(a[i] if isinstance(a, tuple) else a for a in args)) for i in range(width))

    return lifted


op_sqrt = _leafwise((lambda xp: lambda x: xp.sqrt(xp.abs(x)))(jnp))  # sqrt|x|
op_divide = _leafwise((lambda xp: lambda x, y: x / (y + DIVISION_EPSILON))(jnp))  # x / (y + 1e-8)
op_multiply = _leafwise((lambda xp: lambda x, y: x * y)(jnp))  # x * y

NUM_STATE_SLOTS = 0


def _train(w, g, lr, step):
    """One step of the program on tuples of arrays; returns (update, new state slots)."""
    sqrt_v = op_sqrt(g)
    update = op_divide(g, sqrt_v)
    update = op_multiply(update, 0.34)
    return update, ()


class ProgramState(NamedTuple):
    """The step count (from 0) and one tree per state slot."""

    count: jax.Array
    slots: tuple


def optimizer(learning_rate: Any = 1.0) -> optax.GradientTransformation:
    """The program as an optax GradientTransformation.

    Args:
      learning_rate: the program's ``lr`` input: a float, or an optax schedule called with
        the step count (from 0).

    Returns:
      A GradientTransformation whose ``update(grads, state, params)`` needs ``params`` and
      returns the negated program update, so ``optax.apply_updates`` subtracts it.
    """

    def init(params):
        slots = tuple(jax.tree_util.tree_map(jnp.zeros_like, params) for _ in range(NUM_STATE_SLOTS))
        return ProgramState(jnp.zeros([], jnp.int32), slots)

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("this optimizer reads the weights: pass params to update()")
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        w, treedef = jax.tree_util.tree_flatten(params)
        g = treedef.flatten_up_to(updates)
        slots = [tuple(treedef.flatten_up_to(slot)) for slot in state.slots]
        step = state.count + 1
        step_update, new_slots = _train(
            tuple(w), tuple(g), *slots, jnp.asarray(lr, jnp.float32), jnp.asarray(step, jnp.float32)
        )

        def like(values, old):
            return treedef.unflatten([v.astype(o.dtype) for v, o in zip(values, old, strict=True)])

        negated = jax.tree_util.tree_map(jnp.negative, like(step_update, w))
        new_slots = tuple(like(new, old) for new, old in zip(new_slots, slots, strict=True))
        return negated, ProgramState(optax.safe_increment(state.count), new_slots)

    return optax.GradientTransformation(init, update)
