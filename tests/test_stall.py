"""Stopping trainings that have not learned (``proxy_tasks.StallRule``, ``task.stall``)."""

from __future__ import annotations

import math

import optax
import pytest

import dsl
import proxy_tasks
from proxy_tasks import StallRule
from search import ConfigError, load_config
from search._evaluator import InProcessEvaluator

TINY = "mlp_digits_tiny"  # 100 steps: check 0.25 -> after step 25, window 0.05 -> steps 21-25
RULE = StallRule(check=0.25, window=0.05, min_drop=0.0005)
ZERO = "def train(w, g, m, v, lr):\n  update = g * 0.0\n  return update, m, v\n"
SGD = "def train(w, g, m, v, lr):\n  update = g * lr\n  return update, m, v\n"
# Learns, but barely: its loss falls by far less than half in 25 steps, and by more than nothing.
CRAWL = "def train(w, g, m, v, lr):\n  lr = lr * 0.001\n  update = g * lr\n  return update, m, v\n"


@pytest.fixture(scope="module")
def stalling():
    return proxy_tasks.get(TINY, RULE)


def test_the_plain_task_is_built_once_however_it_is_asked_for(stalling):
    # The evaluators ask for get(name, None), other code for get(name): one task, one compilation.
    assert proxy_tasks.get(TINY) is proxy_tasks.get(TINY, None) is proxy_tasks.get(TINY, stall=None)
    assert stalling is proxy_tasks.get(TINY, RULE) and stalling is not proxy_tasks.get(TINY)


def test_a_program_that_does_not_learn_stops_at_the_check(stalling):
    result = stalling.evaluate(ZERO)
    assert result.failed and result.fitness == -math.inf
    assert result.steps == 25
    assert result.failure.startswith("stalled: mean training loss ")
    assert "over steps 21-25" in result.failure
    # An update of zero leaves the params as they were: the window's loss is the untrained one.
    words = result.failure.split()
    assert words[4] == words[words.index("model's") + 1]


def test_a_program_that_learns_trains_to_the_end_with_the_same_result(stalling):
    plain = proxy_tasks.get(TINY)
    for program in (SGD, dsl.library.load("adamw_paper")):
        with_rule, without = stalling.evaluate(program), plain.evaluate(program)
        assert not with_rule.failed and with_rule.steps == 100
        assert with_rule.fitness == without.fitness
        assert with_rule.test_fitness == without.test_fitness


def test_min_drop_is_the_bar_a_slow_learner_must_clear():
    lenient = proxy_tasks.get(TINY, StallRule(check=0.25, window=0.05, min_drop=1e-5))
    strict = proxy_tasks.get(TINY, StallRule(check=0.25, window=0.05, min_drop=0.5))
    assert not lenient.evaluate(CRAWL).failed  # a little lower: passes
    assert lenient.evaluate(ZERO).failed  # the untrained loss itself
    assert strict.evaluate(CRAWL).failed  # nothing halves its loss in 25 steps at 1e-3 lr
    assert strict.evaluate(SGD).failed


def test_the_optax_loop_stalls_too(stalling):
    result, _ = stalling.train_optax(optax.sgd(0.0))
    assert result.failed and result.failure.startswith("stalled") and result.steps == 25


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        (dict(check=0.0), "check"),
        (dict(check=1.0), "check"),
        (dict(check=0.2, window=0.3), "window"),
        (dict(check=0.2, min_drop=0.0), "min_drop"),
    ],
)
def test_a_bad_rule_is_refused(kwargs, word):
    with pytest.raises(ValueError, match=word):
        StallRule(**kwargs)


def test_the_evaluator_stalls_the_main_task_only():
    """Meta-validation and funnel jobs name their task and must train to the end."""
    evaluator = InProcessEvaluator(TINY, RULE)
    evaluator.submit(0, dsl.parse(ZERO), (0,))
    evaluator.submit(1, dsl.parse(ZERO), (0,), TINY)
    main, named = evaluator.wait()[0].result, evaluator.wait()[0].result
    assert main.failed and main.failure.startswith("stalled") and main.steps == 25
    assert not named.failed and named.steps == 100


def _config(tmp_path, stall: str):
    path = tmp_path / "c.yaml"
    path.write_text(f"budget:\n  evaluations: 10\ntask:\n  name: {TINY}\n  stall:\n{stall}")
    return path


def test_config_builds_the_rule(tmp_path):
    config = load_config(_config(tmp_path, "    check: 0.2\n    min_drop: 0.001\n"))
    assert config.task.stall.rule == StallRule(check=0.2, window=0.05, min_drop=0.001)
    assert load_config(_config(tmp_path, "    window: 0.1\n")).task.stall.rule is None


@pytest.mark.parametrize(
    ("stall", "path"),
    [
        ("    check: 1.5\n", "task.stall.check"),
        ("    check: 0.1\n    window: 0.2\n", "task.stall.window"),
        ("    check: 0.2\n    min_drop: -1\n", "task.stall.min_drop"),
        ("    when: 0.2\n", "task.stall.when"),
    ],
)
def test_a_bad_stall_key_names_its_path(tmp_path, stall, path):
    with pytest.raises(ConfigError) as error:
        load_config(_config(tmp_path, stall))
    assert error.value.path.endswith(f": {path}")
