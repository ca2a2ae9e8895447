"""dsl.from_hero and ``symdisc convert``: programs in the authors' released notation."""

from __future__ import annotations

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dsl
from dsl import library
from symdisc.cli import main

# Written in their notation (def train(w, <state...>, gradient), interpolate, constant
# assignments, get_*() constants, a tuple return); checked by hand against the DSL texts.
HERO_ADAMW = """
def train(w, m, v, gradient):
  m = interpolate(m, gradient, 0.1)
  g2 = gradient * gradient
  v = interpolate(v, g2, 0.001)
  sqrt_v = sqrt(v)
  step = m / sqrt_v
  decay = 0.01
  wd = w * decay
  update = step + wd
  lr = 0.001
  update = update * lr
  return (update, m, v)
"""
# Its hand translation: adamw_paper.txt, whose interp(g, m, 0.9) is their interpolate(m, g, 0.1).
HAND_ADAMW = library.load("adamw_paper")

HERO_LION = """
def train(weights, momentum, gradient):
  c = interpolate(momentum, gradient, 0.1)
  direction = sign(c)
  momentum = interpolate(momentum, gradient, 0.01)
  update = direction + weights * 0.01
  update = update * 0.0001
  return update, momentum
"""

HERO_MIXED = """
def train(w, m, v, gradient):
  two_pi = get_pi() * 2
  eps = get_eps()
  g = clip_by_global_norm(gradient, 1.0)
  scale = 0.5
  scale = scale * two_pi
  m2 = interpolate(m, g, 0.2)
  v2 = v
  v2 = max(v2, abs(g))
  update = m2 / (v2 + eps)
  update = update * scale
  return (update, v2, m2)
"""
# By hand: their local 'g' is not the gradient (renamed g_2), a variable may share a
# function's name (eps), nested calls become statements, 'v2 = v' is an exact copy, and
# the returned values go into the slots in return order (slot m gets v2).
HAND_MIXED = """
def train(w, g, m, v, lr):
  t1 = pi()
  two_pi = t1 * 2.0
  eps = eps()
  g_2 = clip(g, 1.0)
  scale = 0.5 * two_pi
  m2 = interp(m, g_2, 0.2)
  v2 = v * 1.0
  t2 = abs(g_2)
  v2 = max(v2, t2)
  t3 = v2 + eps
  update = m2 / t3
  update = update * scale
  update = update * lr
  m = v2 * 1.0
  v = m2 * 1.0
  return update, m, v
"""

# Returning the slots swapped: both must be staged before either is overwritten.
HERO_SWAP = """
def train(w, m, v, gradient):
  m = interpolate(m, gradient, 0.1)
  v = v + gradient
  return (m, v, m)
"""
HAND_SWAP = """
def train(w, g, m, v, lr):
  m = interp(m, g, 0.1)
  v = v + g
  update = m * lr
  m_next = v * 1.0
  v_next = m * 1.0
  m = m_next * 1.0
  v = v_next * 1.0
  return update, m, v
"""


def run(program: dsl.Program, steps: int = 12, seed: int = 0) -> list[np.ndarray]:
    """The updates of ``steps`` steps on a small tree with correlated gradients, lr = 1."""
    rng = np.random.default_rng(seed)
    w = {
        "a": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
        "b": jnp.asarray(rng.normal(size=(5,)), jnp.float32),
    }
    state = tuple(jax.tree_util.tree_map(jnp.zeros_like, w) for _ in program.state)
    mean = jax.tree_util.tree_map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), w)
    updates = []
    for t in range(steps):
        g = jax.tree_util.tree_map(lambda m: m + jnp.asarray(rng.normal(size=m.shape), jnp.float32), mean)
        update, state = dsl.execute(program, w, g, state, 1.0, t + 1)
        updates.append(np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(update)]))
        w = jax.tree_util.tree_map(lambda a, b: a - b, w, update)
    return updates


def numpy_hero_adamw(steps: int = 12, seed: int = 0) -> list[np.ndarray]:
    """Their semantics written out in NumPy float32: interpolate(x, y, a) = (1-a)x + ay, x / (y + 1e-8)."""
    rng = np.random.default_rng(seed)
    w = [rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(5,)).astype(np.float32)]
    m, v = [np.zeros_like(x) for x in w], [np.zeros_like(x) for x in w]
    mean = [rng.normal(size=x.shape).astype(np.float32) for x in w]
    f = np.float32
    updates = []
    for _ in range(steps):
        g = [a + rng.normal(size=a.shape).astype(np.float32) for a in mean]
        step_updates = []
        for i in range(2):
            m[i] = (f(1) - f(0.1)) * m[i] + f(0.1) * g[i]
            v[i] = (f(1) - f(0.001)) * v[i] + f(0.001) * (g[i] * g[i])
            update = (m[i] / (np.sqrt(np.abs(v[i])) + f(1e-8)) + w[i] * f(0.01)) * f(0.001)
            step_updates.append(update)
            w[i] = w[i] - update
        updates.append(np.concatenate([np.ravel(x) for x in step_updates]))
    return updates


def test_their_adamw_runs_with_the_hand_translations_updates():
    program = dsl.from_hero(HERO_ADAMW)
    assert program.state == ("m", "v") and not program.uses_step
    for ours, hand, numpy_reference in zip(run(program), run(HAND_ADAMW), numpy_hero_adamw(), strict=True):
        np.testing.assert_allclose(ours, hand, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(ours, numpy_reference, rtol=2e-5, atol=1e-10)


def test_their_lion_runs_with_lions_updates():
    program = dsl.from_hero(HERO_LION)
    assert program.state == ("momentum",)
    for ours, lion in zip(run(program), run(library.load("lion")), strict=True):
        np.testing.assert_allclose(ours, lion, rtol=1e-6, atol=1e-12)
    assert dsl.closest_optimizer(program).name == "lion"


@pytest.mark.parametrize("hero,hand", [(HERO_MIXED, HAND_MIXED), (HERO_SWAP, HAND_SWAP)])
def test_names_constants_nesting_and_returned_slots(hero, hand):
    program = dsl.from_hero(hero)
    hand = dsl.parse(textwrap.dedent(hand))
    assert program.to_text() == hand.to_text()
    for ours, theirs in zip(run(program), run(hand), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_the_learning_rate_scales_the_update_unless_asked_not_to():
    scaled = dsl.from_hero(HERO_LION)
    assert scaled.statements[-1] == dsl.Statement("update", "multiply", ("update", "lr"))
    plain = dsl.from_hero(HERO_LION, scale_by_lr=False)
    assert "lr" not in plain.to_text().split("):", 1)[1]


def test_error_lines_point_at_the_source():
    program = dsl.from_hero(
        "\n\ndef train(w, m, gradient):\n  m = interpolate(m, gradient, 0.1)\n  u = log(m)\n  return u, m\n"
    )
    assert program.signature_line() == 3 and program.line_of(0) == 4 and program.line_of(1) == 5


@pytest.mark.parametrize(
    "body,line,words",
    [
        ("  g2 = compute_grad(w, gradient, 1.0)\n", 3, "'compute_grad' has no equivalent"),
        ("  g2 = invert(gradient)\n", 3, "bitwise NOT"),
        ("  x = 1.0\n  if x > 0:\n    m = m * 2\n", 4, "an 'if' statement has no equivalent"),
        ("  for i in range(3):\n    m = m * 2\n", 3, "a 'for' loop"),
        ("  g2 = gradient ** 2\n", 3, "the operator '**' is not in the released space"),
        ("  g2 = softmax(gradient)\n", 3, "'softmax' is not a function of the released space"),
        ("  g2 = ~gradient\n", 3, "'~' (bitwise NOT)"),
        ("  g2 = gradient * missing\n", 3, "'missing' is read before it is assigned"),
        ("  a, b = m, v\n", 3, "assign to exactly one variable name"),
    ],
)
def test_constructs_without_equivalent_name_themselves_and_their_line(body, line, words):
    text = f"def train(w, m, v, gradient):\n  m = interpolate(m, gradient, 0.1)\n{body}  return (m, m, v)\n"
    with pytest.raises(dsl.ProgramError) as error:
        dsl.from_hero(text)
    assert error.value.line == line and words in str(error.value), str(error.value)


def test_other_functions_and_bad_returns_are_rejected():
    with pytest.raises(dsl.ProgramError, match="only 'def train"):
        dsl.from_hero(HERO_LION + "\ndef _main_():\n  return train(1, 2, 3)\n")
    with pytest.raises(dsl.ProgramError, match="return the update and the 1 state value"):
        dsl.from_hero("def train(w, m, gradient):\n  return (gradient,)\n")
    with pytest.raises(dsl.ProgramError, match="is the constant 0.5"):
        dsl.from_hero("def train(w, m, gradient):\n  x = 0.5\n  return (gradient, x)\n")


def test_convert_command(tmp_path, capsys):
    source = tmp_path / "adamw_hero.py"
    source.write_text(HERO_ADAMW)
    assert main(["convert", str(source), "--from", "hero"]) == 0
    captured = capsys.readouterr()
    assert dsl.parse(captured.out) == dsl.from_hero(HERO_ADAMW)
    assert captured.out.startswith("# Converted from adamw_hero.py")
    out = tmp_path / "adamw.txt"
    assert main(["convert", str(source), "--from", "hero", "--out", str(out)]) == 0
    assert dsl.parse(out.read_text()) == dsl.from_hero(HERO_ADAMW)
    assert main(["check", str(out)]) == 0


def test_convert_notes_functions_whose_rules_differ_and_reports_errors(tmp_path, capsys):
    source = tmp_path / "p.py"
    source.write_text(
        "def train(w, m, gradient):\n  m = interpolate(m, gradient, 0.1)\n  u = arcsin(m)\n  return u, m\n"
    )
    assert main(["convert", str(source), "--from", "hero"]) == 0
    assert "note: arcsin: theirs is NaN outside [-1, 1]" in capsys.readouterr().err
    source.write_text("def train(w, m, gradient):\n  g2 = compute_grad(w)\n  return g2, m\n")
    assert main(["convert", str(source), "--from", "hero"]) == 2
    captured = capsys.readouterr()
    assert "line 2: 'compute_grad' has no equivalent" in captured.err and captured.out == ""
    assert main(["convert", str(tmp_path / "missing.py"), "--from", "hero"]) == 2
    assert "No such file" in capsys.readouterr().err
