"""The optimizer library: every program against optax or a NumPy formula, plus one contract.

Equivalence runs 100 jitted steps of ``dsl.to_optax(program, schedule)`` and of the
reference on the same parameter tree (nested dict + list, arrays of several shapes), with
gradients ``scale * (0.5 * w + noise)`` (a quadratic plus noise, one scale per array), so
the weights feed back into the gradients and into the weight decay.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dsl
from dsl import library

NUM_STEPS = 100
SCHEDULE = optax.warmup_cosine_decay_schedule(
    init_value=0.0, peak_value=1.0, warmup_steps=10, decay_steps=NUM_STEPS, end_value=0.1
)
# Per-array gradient scales: at 1e-6 Adam's epsilon (1e-8) changes the step by 1%, so a
# misplaced or wrong epsilon shows up; large ones check nothing saturates.
SHAPES_AND_SCALES = {
    "dense": {"kernel": ((4, 3), 1.0), "bias": ((3,), 1e-3)},
    "blocks": [((2, 3, 2), 10.0), ((), 0.1), ((5,), 1e-6)],
}


def lr_constant(program: dsl.Program) -> float:
    """The learning rate a library program bakes in: its statement ``lr = lr * C``."""
    constants = [
        s.args[1]
        for s in program.statements
        if s.target == "lr" and s.op == "multiply" and s.args[0] == "lr" and isinstance(s.args[1], float)
    ]
    assert len(constants) == 1, "a library program scales the schedule once: 'lr = lr * C'"
    return constants[0]


def is_leaf(x):
    return isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], tuple)


def make_problem(seed: int = 0, dtype=jnp.float32):
    """Initial parameters and a (NUM_STEPS, ...) noise tree, same structure."""
    rng = np.random.default_rng(seed)
    params = jax.tree.map(
        lambda spec: jnp.asarray(rng.normal(size=spec[0]), dtype), SHAPES_AND_SCALES, is_leaf=is_leaf
    )
    noise = jax.tree.map(
        lambda spec: jnp.asarray(rng.normal(size=(NUM_STEPS, *spec[0])), dtype),
        SHAPES_AND_SCALES,
        is_leaf=is_leaf,
    )
    return params, noise


GRADIENT_SCALES = jax.tree.leaves(jax.tree.map(lambda spec: spec[1], SHAPES_AND_SCALES, is_leaf=is_leaf))


def gradient(params, noise):
    leaves = [
        (scale * (0.5 * w + n)).astype(w.dtype)
        for scale, w, n in zip(GRADIENT_SCALES, jax.tree.leaves(params), jax.tree.leaves(noise), strict=True)
    ]
    return jax.tree.unflatten(jax.tree.structure(params), leaves)


@functools.partial(jax.jit, static_argnums=0)
def run_optax(optimizer: optax.GradientTransformation, params, noise):
    """NUM_STEPS steps of ``optimizer`` in one jitted scan; the final parameters."""

    def body(carry, step_noise):
        params, state = carry
        updates, state = optimizer.update(gradient(params, step_noise), state, params)
        return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(body, (params, optimizer.init(params)), noise)
    return params


def scaled_schedule(constant: float):
    return lambda count: constant * SCHEDULE(count)


def lion_k(mode: str, learning_rate) -> optax.GradientTransformation:
    """optax.lion with another sign (optax.lion itself has no ``mode``); weight decay 0.01 as lion.txt."""
    return optax.chain(
        optax.scale_by_lion(b1=0.9, b2=0.99, mode=mode),
        optax.add_decayed_weights(0.01),
        optax.scale_by_learning_rate(learning_rate),
    )


# The optax optimizer each program must equal, given its learning rate (a schedule).
OPTAX_EQUIVALENTS = {
    "sgd": optax.sgd,
    "momentum": lambda lr: optax.sgd(lr, momentum=0.9),
    "nesterov": lambda lr: optax.sgd(lr, momentum=0.9, nesterov=True),
    "adam": optax.adam,
    "adamw": optax.adamw,
    "nadam": optax.nadam,
    "amsgrad": optax.amsgrad,
    "adabelief": optax.adabelief,
    "radam": optax.radam,
    # lion.txt is the paper's program: weight decay 0.01, not optax's default 1e-3.
    "lion": lambda lr: optax.lion(lr, weight_decay=0.01),
    "lion_smooth": lambda lr: lion_k("smooth", lr),
    "lion_refined": lambda lr: lion_k("refined", lr),
    "signsgd": optax.sign_sgd,
    "signum": lambda lr: optax.signum(lr, beta=0.9),
    # One beta: Lion with b1 = b2 takes the sign of the very average it stores.
    "ablation_0.9": lambda lr: optax.lion(lr, b1=0.9, b2=0.9, weight_decay=0.01),
    "ablation_0.99": lambda lr: optax.lion(lr, b1=0.99, b2=0.99, weight_decay=0.01),
}


def assert_trajectories_agree(actual, expected, initial, rtol=1e-5):
    """Parameters agree, and so do the distances travelled (the part an optimizer sets).

    The parameters are O(1) and the steps O(lr), so comparing parameters alone would
    hide a relative error in the updates; the displacement ``final - initial`` is
    compared with ``atol`` at float32 resolution of the parameters (cancellation).
    """
    for path, a, e, w0 in zip(
        [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(expected)[0]],
        jax.tree.leaves(actual),
        jax.tree.leaves(expected),
        jax.tree.leaves(initial),
        strict=True,
    ):
        a, e, w0 = (np.asarray(x, np.float64) for x in (a, e, w0))
        np.testing.assert_allclose(a, e, rtol=rtol, atol=1e-7, err_msg=f"parameters at {path}")
        resolution = 4 * np.finfo(np.float32).eps * np.maximum(np.abs(w0), np.abs(e))
        np.testing.assert_allclose(
            a - w0, e - w0, rtol=10 * rtol, atol=float(resolution.max()), err_msg=f"displacement at {path}"
        )


@pytest.mark.parametrize("name", sorted(OPTAX_EQUIVALENTS))
def test_program_equals_optax(name):
    program = library.load(name)
    learning_rate = scaled_schedule(lr_constant(program))
    params, noise = make_problem()
    ours = run_optax(dsl.to_optax(program, SCHEDULE), params, noise)
    theirs = run_optax(OPTAX_EQUIVALENTS[name](learning_rate), params, noise)
    assert jax.tree.structure(ours) == jax.tree.structure(params)
    assert_trajectories_agree(ours, theirs, params)


# ----------------------------------------------------------------------------- NumPy formulas


def sign_of_average(beta, weight_decay):
    def step(w, g, state, lr, t):
        (m,) = state
        m = (1 - beta) * g + beta * m
        return (np.sign(m) + weight_decay * w) * lr, (m,)

    return step, 1


def signsgd_step(w, g, state, lr, t):
    return np.sign(g) * lr, ()


def powersign_step(w, g, state, lr, t):
    (m,) = state
    m = 0.1 * g + 0.9 * m
    return np.exp(np.sign(g) * np.sign(m)) * g * lr, (m,)


def addsign_step(w, g, state, lr, t):
    (m,) = state
    m = 0.1 * g + 0.9 * m
    return (1 + np.sign(g) * np.sign(m)) * g * lr, (m,)


def adamw_paper_step(w, g, state, lr, t):
    m, v = state
    m = 0.1 * g + 0.9 * m
    v = (1 - 0.999) * g * g + 0.999 * v
    return (m / (np.sqrt(v) + 1e-8) + 0.01 * w) * lr, (m, v)


def lion_step(w, g, state, lr, t):
    (m,) = state
    update = np.sign(0.1 * g + 0.9 * m) + 0.01 * w
    return update * lr, (0.01 * g + 0.99 * m,)


NUMPY_FORMULAS = {
    "signsgd": (signsgd_step, 0),
    "signum": sign_of_average(0.9, 0.0),
    "ablation_0.9": sign_of_average(0.9, 0.01),
    "ablation_0.99": sign_of_average(0.99, 0.01),
    "powersign": (powersign_step, 1),
    "addsign": (addsign_step, 1),
    "adamw_paper": (adamw_paper_step, 2),
    "lion": (lion_step, 1),
}


def run_numpy(step_fn, num_slots, lr_const, params, noise):
    """The reference loop, leaf by leaf, in float32 NumPy."""
    leaves = [np.asarray(w, np.float32) for w in jax.tree.leaves(params)]
    noise_leaves = [np.asarray(n, np.float32) for n in jax.tree.leaves(noise)]
    states = [tuple(np.zeros_like(w) for _ in range(num_slots)) for w in leaves]
    for t in range(NUM_STEPS):
        lr = np.float32(lr_const * float(SCHEDULE(t)))
        for i, w in enumerate(leaves):
            g = np.float32(GRADIENT_SCALES[i]) * (np.float32(0.5) * w + noise_leaves[i][t])
            update, states[i] = step_fn(w, g, states[i], lr, t + 1)
            leaves[i] = (w - update).astype(np.float32)
    return jax.tree.unflatten(jax.tree.structure(params), leaves)


@pytest.mark.parametrize("name", sorted(NUMPY_FORMULAS))
def test_program_equals_numpy_formula(name):
    program = library.load(name)
    step_fn, num_slots = NUMPY_FORMULAS[name]
    assert len(program.state) == num_slots
    params, noise = make_problem(seed=1)
    ours = run_optax(dsl.to_optax(program, SCHEDULE), params, noise)
    expected = run_numpy(step_fn, num_slots, lr_constant(program), params, noise)
    assert_trajectories_agree(ours, expected, params)


def test_every_library_program_has_a_reference():
    untested = set(library.names()) - set(OPTAX_EQUIVALENTS) - set(NUMPY_FORMULAS)
    assert not untested, f"library programs without a reference implementation: {sorted(untested)}"


def test_library_has_the_baselines():
    required = {
        "sgd", "momentum", "nesterov", "adam", "adamw", "adamw_paper", "lion", "signsgd", "signum",
        "nadam", "amsgrad", "adabelief", "radam", "powersign", "addsign", "ablation_0.9", "ablation_0.99",
    }  # fmt: skip
    assert required <= set(library.names())


# ----------------------------------------------------------------------------- contract


def quadratic_loss(params):
    curvatures = iter([0.5, 1.0, 2.0, 1.5, 0.75])
    return sum(next(curvatures) * 0.5 * jnp.sum(w.astype(jnp.float32) ** 2) for w in jax.tree.leaves(params))


@pytest.mark.parametrize("name", library.names())
def test_library_program_contract(name):
    program = library.load(name)

    # Parses, round-trips, stable text, header comment, type-checks.
    text = program.to_text()
    assert dsl.parse(text) == program
    assert dsl.parse(text).to_text() == text
    assert library.path(name).read_text().startswith("#"), "each program file starts with a header comment"
    assert len(program.kinds) == len(program.statements)
    lr_const = lr_constant(program)
    assert lr_const > 0

    # A constant schedule making every program's effective learning rate 0.02 (RAdam, the
    # slowest here, is momentum SGD for its first steps: it ends at 0.2 of the initial loss).
    optimizer = dsl.to_optax(program, lambda count: 0.02 / lr_const)
    params, _ = make_problem(seed=2)
    traces = 0

    def train_step(params, state):
        nonlocal traces
        traces += 1
        updates, state = optimizer.update(jax.grad(quadratic_loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    train_step = jax.jit(train_step)
    state = optimizer.init(params)
    initial_loss = float(quadratic_loss(params))
    new_params, new_state = train_step(params, state)
    assert jax.tree.structure(new_params) == jax.tree.structure(params)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    for tree in (new_params, *new_state.slots):
        for leaf, param in zip(jax.tree.leaves(tree), jax.tree.leaves(params), strict=True):
            assert leaf.dtype == param.dtype == jnp.float32
            assert leaf.shape == param.shape
    params, state = new_params, new_state
    for _ in range(199):
        params, state = train_step(params, state)
    assert traces == 1, "the second step must reuse the compiled step"
    final_loss = float(quadratic_loss(params))
    assert np.isfinite(final_loss)
    assert final_loss < 0.5 * initial_loss, f"{name}: loss {initial_loss:.4g} -> {final_loss:.4g}"


@pytest.mark.parametrize("name", library.names())
def test_library_program_keeps_bfloat16(name):
    """Updates and state keep the parameters' bfloat16 (traced only: dtypes are static)."""
    program = library.load(name)
    optimizer = dsl.to_optax(program, lambda count: 1.0)
    params, noise = make_problem(seed=3, dtype=jnp.bfloat16)
    grads = gradient(params, jax.tree.map(lambda n: n[0], noise))
    updates, state = jax.eval_shape(optimizer.update, grads, optimizer.init(params), params)
    for tree in (updates, *state.slots):
        assert jax.tree.structure(tree) == jax.tree.structure(params)
        for leaf, param in zip(jax.tree.leaves(tree), jax.tree.leaves(params), strict=True):
            assert leaf.dtype == jnp.bfloat16
            assert leaf.shape == param.shape


def test_bfloat16_step_runs_and_moves_the_weights():
    optimizer = dsl.to_optax(library.load("adamw"), lambda count: 1.0)
    params, noise = make_problem(seed=3, dtype=jnp.bfloat16)
    grads = gradient(params, jax.tree.map(lambda n: n[0], noise))
    updates, _ = jax.jit(optimizer.update)(grads, optimizer.init(params), params)
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(updates))
    assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))
    assert all(bool(jnp.any(u != 0)) for u in jax.tree.leaves(updates)), "every array must move"
