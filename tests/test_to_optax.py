"""dsl.to_optax: a program is a drop-in optax optimizer (jit, optax.chain, any tree)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dsl


class Block(NamedTuple):
    kernel: jax.Array
    bias: jax.Array


def _params():
    rng = np.random.default_rng(0)
    return {
        "blocks": (Block(jnp.asarray(rng.normal(size=(3, 4)), jnp.float32), jnp.zeros(4, jnp.float32)),),
        "scale": jnp.asarray(1.5, jnp.float32),  # a 0-d leaf
        "empty": None,  # not a leaf
    }


def _run(optimizer, params, steps=30):
    @jax.jit
    def step(params, state, key):
        grads = jax.tree_util.tree_map(lambda p: jax.random.normal(key, p.shape, p.dtype), params)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    state = optimizer.init(params)
    for key in jax.random.split(jax.random.PRNGKey(1), steps):
        params, state = step(params, state, key)
    return params


def test_in_a_chain_equals_optax_lion_in_the_same_chain():
    schedule = optax.cosine_decay_schedule(1.0, 30)
    ours = optax.chain(optax.clip_by_global_norm(1.0), dsl.to_optax(dsl.library.load("lion"), schedule))
    theirs = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.lion(lambda t: 1e-4 * schedule(t), b1=0.9, b2=0.99, weight_decay=0.01),
    )
    got, want = _run(ours, _params()), _run(theirs, _params())
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_state_has_one_zero_tree_per_slot_and_counts_steps():
    params = _params()
    optimizer = dsl.to_optax(dsl.library.load("adamw"))
    state = optimizer.init(params)
    assert len(state.slots) == 2 and int(state.count) == 0
    for slot in state.slots:
        assert jax.tree_util.tree_structure(slot) == jax.tree_util.tree_structure(params)
        assert all(float(jnp.abs(leaf).sum()) == 0.0 for leaf in jax.tree_util.tree_leaves(slot))
    _, state = optimizer.update(params, state, params)
    assert int(state.count) == 1


def test_update_without_params_is_a_clear_error():
    optimizer = dsl.to_optax(dsl.library.load("lion"))
    params = _params()
    with pytest.raises(ValueError, match="pass params"):
        optimizer.update(params, optimizer.init(params))


def test_an_invalid_program_fails_at_construction_not_in_a_trace():
    program = dsl.parse("def train(w, g, lr):\n  update = global_norm(g)\n  return update\n")
    with pytest.raises(dsl.ProgramError, match="line 3"):
        dsl.to_optax(program)
