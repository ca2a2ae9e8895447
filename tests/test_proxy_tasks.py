"""Proxy tasks: one compilation for many programs, equal to optax, deterministic, failing cleanly."""

from __future__ import annotations

import math

import jax
import numpy as np
import optax
import pytest

import dsl
import proxy_tasks
from proxy_tasks import ScheduleConfig, make_schedule

TINY = "mlp_digits_tiny"


@pytest.fixture(scope="module")
def task():
    # A fresh task (not the cached registry one), so its trace counter starts at zero.
    return proxy_tasks.build(proxy_tasks.config(TINY))


def _distinct_programs() -> list[dsl.Program]:
    """More than 20 different valid programs, all short enough for the smallest bucket."""
    texts = []
    for lr in (0.01, 0.1, 0.3):
        texts.append(f"def train(w, g, m, lr):\n  lr = lr * {lr}\n  update = g * lr\n  return update, m\n")
    for beta in (0.5, 0.9, 0.99):
        texts.append(
            "def train(w, g, m, lr):\n"
            f"  m = interp(g, m, {beta})\n  lr = lr * 0.1\n  update = m * lr\n  return update, m\n"
        )
    for op in ("sign", "tanh", "arctan", "cbrt", "sinh"):
        texts.append(
            f"def train(w, g, m, lr):\n  d = {op}(g)\n  lr = lr * 0.01\n  update = d * lr\n  return update, m\n"
        )
    for clip in (0.1, 1.0):
        texts.append(
            "def train(w, g, m, lr):\n"
            f"  c = clip(g, {clip})\n  lr = lr * 0.1\n  update = c * lr\n  return update, m\n"
        )
    texts.append(
        "def train(w, g, m, lr):\n  n = norm(g)\n  d = g / n\n  lr = lr * 0.01\n  update = d * lr\n  return update, m\n"
    )
    texts.append(
        "def train(w, g, m, v, lr, step):\n  s = step * 0.001\n  d = g * s\n  update = d * lr\n  return update, m, v\n"
    )
    programs = [dsl.parse(text) for text in texts]
    programs += [
        dsl.library.load(name) for name in ("adamw_paper", "adamw", "lion", "sgd", "momentum", "signum")
    ]
    return programs


def test_twenty_distinct_programs_compile_once(task):
    programs = _distinct_programs()
    assert len({p.to_text() for p in programs}) >= 20
    before = task.trace_count
    results = [task.evaluate(program) for program in programs]
    assert task.trace_count - before <= 1
    assert task.trace_count == 1  # the whole module shares this one compilation
    assert all(r.failure is None for r in results), [r.failure for r in results]
    assert len({r.fitness for r in results}) > 5  # they really are different optimizers


def test_same_program_and_seed_is_bit_identical(task):
    lion = dsl.library.load("lion")
    first, second = task.evaluate(lion, seed=3), task.evaluate(lion, seed=3)
    assert (first.fitness, first.train_loss, first.steps) == (second.fitness, second.train_loss, second.steps)
    other = task.evaluate(lion, seed=4)
    assert other.train_loss != first.train_loss


def _assert_params_close(expected, actual, rtol):
    for e, a in zip(jax.tree_util.tree_leaves(expected), jax.tree_util.tree_leaves(actual), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=rtol * 0.1)


def test_lion_equals_optax_lion(task):
    schedule = task.schedule
    reference = optax.lion(lambda count: 1e-4 * schedule(count), b1=0.9, b2=0.99, weight_decay=0.01)
    interpreted, params = task.train(dsl.library.load("lion"))
    direct, direct_params = task.train_optax(reference)
    assert interpreted.failure is None and direct.failure is None
    _assert_params_close(direct_params, params, rtol=1e-4)
    assert interpreted.fitness == pytest.approx(direct.fitness, abs=0.01)


def test_adamw_equals_optax_adamw(task):
    schedule = task.schedule
    reference = optax.adamw(
        lambda count: 1e-3 * schedule(count), b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4, nesterov=False
    )
    interpreted, params = task.train(dsl.library.load("adamw"))
    direct, direct_params = task.train_optax(reference)
    assert interpreted.failure is None and direct.failure is None
    _assert_params_close(direct_params, params, rtol=1e-3)


def test_interpreter_equals_dsl_to_optax_in_the_same_loop(task):
    """Any program: the interpreted run equals jitting the program itself (dsl.to_optax)."""
    program = dsl.library.load("adamw_paper")
    interpreted, params = task.train(program)
    direct, direct_params = task.train_optax(dsl.to_optax(program, task.schedule))
    _assert_params_close(direct_params, params, rtol=1e-4)
    assert interpreted.steps == direct.steps == task.config.steps


def test_nan_program_fails_cleanly(task):
    program = dsl.parse("def train(w, g, m, lr):\n  z = w * 0.0\n  update = log(z)\n  return update, m\n")
    result = task.evaluate(program)
    assert result.fitness == -math.inf
    assert result.failure == "non-finite loss at step 2"
    assert result.steps == 1


def test_exploding_program_fails_as_diverged(task):
    program = dsl.parse("def train(w, g, m, lr):\n  update = g * -3.0\n  return update, m\n")
    result = task.evaluate(program)
    assert result.fitness == -math.inf
    assert result.failure.startswith("diverged: loss ")
    assert result.steps < task.config.steps


def test_invalid_program_fails_with_the_reason(task):
    result = task.evaluate("def train(w, g, m, lr):\n  update = norm(lr)\n  return update, m\n")
    assert result.fitness == -math.inf
    assert result.failure == "invalid program: line 2: norm reduces a tree, got a scalar"
    unparsable = task.evaluate("def train(w, g, m, lr):\n  update = frobnicate(g)\n  return update, m\n")
    assert unparsable.failure.startswith("invalid program: line 2: unknown function")


def test_useless_update_is_not_a_failure(task):
    program = dsl.parse("def train(w, g, m, lr):\n  update = g * 0.0\n  return update, m\n")
    result = task.evaluate(program)
    assert result.failure is None and 0.0 <= result.fitness <= 0.3


@pytest.mark.parametrize("kind", ["constant", "cosine", "warmup_cosine"])
def test_schedules(kind):
    schedule = make_schedule(ScheduleConfig(kind, warmup_fraction=0.1, final_fraction=0.0), 100)
    values = np.array([float(schedule(count)) for count in range(100)])
    assert values.max() == pytest.approx(1.0)
    assert np.all(values > 0.0)
    if kind == "constant":
        assert np.all(values == 1.0)
    if kind == "cosine":
        assert values[0] == 1.0 and np.all(np.diff(values) < 0)
    if kind == "warmup_cosine":
        assert np.all(np.diff(values[:10]) > 0) and np.all(np.diff(values[10:]) < 0)


def test_bad_schedule_is_rejected():
    with pytest.raises(ValueError, match="schedule kind 'linear'"):
        make_schedule(ScheduleConfig("linear"), 10)


def test_registry_names_and_errors():
    names = proxy_tasks.names()
    for family in ("mlp_digits", "vit_digits", "charlm"):
        assert {f"{family}_{size}" for size in "abc"} <= set(names)
    assert TINY in names
    with pytest.raises(KeyError, match="no proxy task 'nope'"):
        proxy_tasks.get("nope")


def test_digits_split_is_fixed_and_disjoint():
    data = proxy_tasks.load_digits_dataset()
    assert data.x_train.shape == (1197, 64) and data.x_val.shape == (300, 64)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    train_rows = {row.tobytes() for row in data.x_train}
    assert (
        sum(row.tobytes() in train_rows for row in data.x_val) < 10
    )  # a few digits are duplicated in the data


def test_tune_finds_the_constants_by_dataflow():
    from proxy_tasks._tune import find_lr_constant, find_wd_constant, with_constant

    lion = dsl.library.load("lion")
    assert find_lr_constant(lion).value(lion) == 1e-4
    assert find_wd_constant(lion).value(lion) == 0.01
    changed = with_constant(lion, find_lr_constant(lion), 3e-4)
    assert find_lr_constant(changed).value(changed) == 3e-4
    no_lr = dsl.parse("def train(w, g, m, lr):\n  update = g * 0.1\n  return update, m\n")
    with pytest.raises(ValueError, match="no learning-rate constant"):
        find_lr_constant(no_lr)
    assert find_wd_constant(no_lr) is None
