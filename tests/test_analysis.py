"""Abstract execution: validity with line numbers, liveness across steps, pruning."""

from __future__ import annotations

import ast
from pathlib import Path

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import dsl
from dsl._random import random_program


def analyze_text(text: str, params=None) -> dsl.Analysis:
    return dsl.analyze(text, params)


# ----------------------------------------------------------------------------- liveness

CROSS_STEP_DEAD = """\
def train(w, g, m, v, lr):
  v = square(g)
  m = interp(g, m, 0.9)
  update = m / v
  v = sqrt(m)
  update = update * lr
  return update, m, v
"""


def test_state_overwritten_before_it_is_read_is_dead_across_steps():
    analysis = analyze_text(CROSS_STEP_DEAD)
    assert analysis.valid
    # line 5 computes the returned v, but the next step overwrites v (line 2) first.
    assert analysis.redundant == (3,)
    assert analysis.redundant_lines == (5,)
    assert analysis.live_state_slots == ("m",)
    assert analysis.unused_state_slots == ("v",)
    assert analysis.redundant_fraction == pytest.approx(1 / 5)


def test_unused_state_slot_is_reported_and_does_not_change_the_hash():
    adamw = dsl.library.load("adamw_paper")
    text = adamw.to_text().replace("def train(w, g, m, v, lr)", "def train(w, g, m, v, s, lr)")
    text = text.replace("return update, m, v", "return update, m, v, s")
    with_spare_slot = dsl.parse(text)
    analysis = dsl.analyze(with_spare_slot)
    assert analysis.live_state_slots == ("m", "v")
    assert analysis.unused_state_slots == ("s",)
    assert analysis.redundant == ()
    assert analysis.hash == dsl.analyze(adamw).hash


def test_slot_feeding_only_itself_is_dead():
    text = """\
def train(w, g, m, v, lr):
  g2 = square(g)
  v = interp(g2, v, 0.999)
  m = interp(g, m, 0.9)
  update = m * lr
  return update, m, v
"""
    analysis = analyze_text(text)
    assert analysis.redundant == (0, 1)
    assert analysis.live_state_slots == ("m",)
    assert analysis.unused_state_slots == ("v",)


def test_liveness_reaches_a_fixed_point_through_slots():
    # The update reads m; m's new value reads v; so v is live too, one step later.
    text = """\
def train(w, g, m, v, lr):
  update = m * lr
  m = interp(v, m, 0.9)
  v = square(g)
  return update, m, v
"""
    analysis = analyze_text(text)
    assert analysis.redundant == ()
    assert analysis.live_state_slots == ("m", "v")
    # Without the read of m, neither slot is live.
    dead = analyze_text(text.replace("update = m * lr", "update = g * lr"))
    assert dead.redundant == (1, 2)
    assert dead.live_state_slots == ()


def _run_steps(program, params, steps=3, seed=0):
    """Updates and states of ``steps`` eager steps of ``dsl.execute`` from zero state."""
    rng = np.random.default_rng(seed)
    state = tuple(jax.tree_util.tree_map(jnp.zeros_like, params) for _ in program.state)
    trace = []
    for step in range(1, steps + 1):
        g = jax.tree_util.tree_map(lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), params)
        update, state = dsl.execute(program, params, g, state, 0.5, step)
        trace.append((update, state))
    return trace


PARAMS = {"a": jnp.linspace(-1.0, 1.0, 5, dtype=jnp.float32), "b": jnp.ones((2, 3), jnp.float32) * 0.3}


def _bits_equal(x, y) -> bool:
    leaves_x, leaves_y = jax.tree_util.tree_leaves(x), jax.tree_util.tree_leaves(y)
    return len(leaves_x) == len(leaves_y) and all(
        np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
        for a, b in zip(leaves_x, leaves_y, strict=True)
    )


def _assert_same_updates(program, pruned, live_slots):
    for (u1, s1), (u2, s2) in zip(_run_steps(program, PARAMS), _run_steps(pruned, PARAMS), strict=True):
        assert _bits_equal(u1, u2)
        for name in live_slots:
            i = program.state.index(name)
            assert _bits_equal(s1[i], s2[i])


def test_pruning_renames_a_dead_slot_used_as_a_temporary():
    # m is only a temporary here: its incoming value is never read, so the slot is
    # unused and line 4 is dead. Dropping line 4 alone would return norm(g) (not a
    # tree) as m; the pruned program assigns that temporary to a fresh name instead.
    text = """\
def train(w, g, m, lr):
  m = norm(g)
  update = g / m
  m = abs(g)
  update = update * lr
  return update, m
"""
    analysis = analyze_text(text)
    assert analysis.redundant == (2,)
    assert analysis.unused_state_slots == ("m",)
    pruned = analysis.pruned
    assert pruned.state == ("m",)
    assert [s.target for s in pruned.statements] == ["m_1", "update", "update"]
    assert len(pruned.kinds) == 3  # type-checks
    assert dsl.analyze(pruned).hash == analysis.hash
    _assert_same_updates(analysis.program, pruned, ())


def test_pruning_keeps_a_slot_that_is_also_the_returned_update():
    text = """\
def train(w, g, m, lr):
  t = abs(g)
  m = sign(g)
  return m, m
"""
    analysis = analyze_text(text)
    assert analysis.redundant == (0,)
    assert analysis.unused_state_slots == ("m",)
    pruned = analysis.pruned
    assert pruned.to_text() == "def train(w, g, m, lr):\n  m = sign(g)\n  return m, m\n"
    _assert_same_updates(analysis.program, pruned, ())


def test_prune_of_a_clean_program_is_the_program():
    lion = dsl.library.load("lion")
    assert dsl.prune(lion) is lion


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(2, 25), slots=st.integers(0, 3))
def test_pruning_preserves_updates_bit_for_bit(seed, length, slots):
    program = random_program(np.random.default_rng(seed), length, slots)
    analysis = dsl.analyze(program)
    assume(analysis.redundant)  # else the pruned program is the program
    pruned = analysis.pruned
    assert len(pruned.statements) == length - len(analysis.redundant)
    assert pruned.state == program.state
    again = dsl.analyze(pruned)
    assert again.redundant == ()
    assert again.hash == analysis.hash
    assert again.live_state_slots == analysis.live_state_slots
    _assert_same_updates(program, pruned, analysis.live_state_slots)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(1, 40), slots=st.integers(0, 4))
def test_analysis_is_consistent_on_random_programs(seed, length, slots):
    program = random_program(np.random.default_rng(seed), length, slots)
    analysis = dsl.analyze(program)
    assert analysis.valid
    assert analysis.kinds == dsl.infer_kinds(program)
    assert length - 1 not in analysis.redundant  # the last statement assigns the update
    assert set(analysis.live_state_slots) | set(analysis.unused_state_slots) == set(program.state)
    assert 0.0 <= analysis.redundant_fraction < 1.0


# ----------------------------------------------------------------------------- type errors

_TYPE_ERRORS = {
    "norm of a scalar": ("  t = norm(lr)", 3, "norm reduces a tree, got a scalar"),
    "global_norm of a scalar": ("  t = global_norm(2.0)", 3, "global_norm reduces a tree"),
    "dot with a scalar": ("  t = dot(g, lr)", 3, "dot needs trees, argument 2 is a scalar"),
    "cosine_sim with a scalar": ("  t = cosine_sim(lr, g)", 3, "argument 1 is a scalar"),
    "clip of a scalar": ("  t = clip(lr, 1.0)", 3, "clip needs a tree as its first argument"),
    "clip by a tree": ("  t = clip(g, w)", 3, "clip needs a scalar threshold, got a tree"),
    "clip by per-array scalars": ("  n = norm(g)\n  t = clip(g, n)", 4, "clip needs a scalar threshold"),
    "norm of a computed scalar": ("  n = global_norm(g)\n  t = norm(n)", 4, "norm reduces a tree"),
}


@pytest.mark.parametrize("case", sorted(_TYPE_ERRORS))
def test_every_type_error_names_its_line(case):
    body, line, message = _TYPE_ERRORS[case]
    text = f"# a comment line\ndef train(w, g, m, lr):\n{body}\n  update = g * lr\n  return update, m\n"
    analysis = analyze_text(text)
    assert not analysis.valid
    assert analysis.error.line == line
    assert message in analysis.error.problem
    assert analysis.hash is None
    with pytest.raises(dsl.ProgramError, match=f"line {line}"):
        _ = analysis.pruned


_RETURN_ERRORS = {
    "scalar update": ("  update = lr * 2.0", "the returned update must be a tree", "a scalar"),
    "per-array update": ("  update = norm(g)", "the returned update must be a tree", "per-array"),
    "scalar state": ("  update = g * lr\n  m = dot(g, g)", "state slot 'm' must be a tree", "a scalar"),
    "per-array state": ("  update = g * lr\n  m = norm(g)", "state slot 'm' must be a tree", "per-array"),
}


@pytest.mark.parametrize("case", sorted(_RETURN_ERRORS))
def test_returned_values_must_be_trees(case):
    body, message, kind = _RETURN_ERRORS[case]
    text = f"def train(w, g, m, lr):\n{body}\n  return update, m\n"
    analysis = analyze_text(text)
    assert not analysis.valid
    assert analysis.error.line == text.count("\n")  # the return line
    assert message in analysis.error.problem and kind in analysis.error.problem


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("  update = g * x", 2, "variable 'x' is read before it is assigned"),
        ("  update = fancy(g)", 2, "unknown function 'fancy'"),
        ("  update = interp(g, w)", 2, "interp takes 3 argument(s), got 2"),
        ("  update = g * (w * lr)", 2, "one call per statement"),
    ],
)
def test_malformed_text_is_invalid_with_its_line(body, line, message):
    analysis = analyze_text(f"def train(w, g, lr):\n{body}\n  return update\n")
    assert not analysis.valid and analysis.program is None
    assert analysis.error.line == line
    assert message in analysis.error.problem


def test_analyze_fills_the_program_kinds_cache():
    program = random_program(np.random.default_rng(5), 15, 2)
    fresh = dsl.Program(program.state, program.statements, uses_step=program.uses_step)
    assert "kinds" not in fresh.__dict__
    analysis = dsl.analyze(fresh)
    assert fresh.__dict__["kinds"] is analysis.kinds
    assert fresh.kinds == dsl.infer_kinds(fresh)


def test_a_type_error_after_a_valid_prefix_matches_infer_kinds():
    rng = np.random.default_rng(3)
    program = random_program(rng, 12, 2)
    broken = program.replace_statements(
        (*program.statements[:5], dsl.Statement("bad", "norm", ("lr",)), *program.statements[5:])
    )
    analysis = dsl.analyze(broken)
    with pytest.raises(dsl.ProgramError) as expected:
        dsl.infer_kinds(broken)
    assert str(analysis.error) == str(expected.value)
    assert analysis.error.line == 7


# ----------------------------------------------------------------------------- shapes


def test_params_example_gives_every_shape():
    program = dsl.parse(
        "def train(w, g, m, lr):\n  n = norm(g)\n  s = dot(g, m)\n  update = g / n\n  return update, m\n"
    )
    params = {"kernel": jnp.zeros((3, 2)), "bias": np.zeros(2, np.float32)}
    analysis = dsl.analyze(program, params)
    assert analysis.valid
    # jax flattens dict keys in sorted order: bias, kernel
    assert analysis.leaf_shapes == ((2,), (3, 2))
    assert analysis.shape_of(0) == ((), ())
    assert analysis.shape_of(1) == ()
    assert analysis.shape_of(2) == ((2,), (3, 2))


@pytest.mark.parametrize(
    "params",
    [
        [(3, 2), (4,), ()],
        {"w": jax.ShapeDtypeStruct((5,), jnp.bfloat16)},
        (np.zeros((2, 2)),),
    ],
)
def test_params_example_may_be_shapes_or_abstract_arrays(params):
    assert dsl.analyze(dsl.library.load("lion"), params).valid


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"a": {"b": np.zeros(3, np.int32)}},
            r"params_example\['a'\]\['b'\]: parameters must be float arrays",
        ),
        ({"a": "weights"}, r"params_example\['a'\]: 'weights' is neither an array nor a shape"),
        ({}, "has no arrays"),
        ([(3, -1)], r"params_example\[0\]: shape \(3, -1\) has a negative dimension"),
        ({"a": "w" * 100_000}, r"params_example\['a'\]: 'wwww* \.\.\. w*' is neither an array"),
    ],
)
def test_bad_params_example_names_the_key_path(params, message):
    with pytest.raises(ValueError, match=message) as info:
        dsl.analyze(dsl.library.load("lion"), params)
    assert len(str(info.value)) < 200


def test_shape_of_needs_a_params_example():
    with pytest.raises(ValueError, match="no params example"):
        dsl.analyze(dsl.library.load("lion")).shape_of(0)


# ----------------------------------------------------------------------------- module structure

REPO = Path(__file__).resolve().parent.parent


def _relative_imports(package: str) -> nx.DiGraph:
    """Module -> module it imports within ``package``: every ``from .x import``, at any
    depth (function-local and ``TYPE_CHECKING`` imports hide a cycle, they do not break it)."""
    graph = nx.DiGraph()
    for file in (REPO / package).glob("*.py"):
        graph.add_node(file.stem)
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                targets = [node.module] if node.module else [alias.name for alias in node.names]
                graph.add_edges_from((file.stem, target.split(".")[0]) for target in targets)
    return graph


@pytest.mark.parametrize("package", ["dsl", "proxy_tasks"])
def test_no_import_cycles(package):
    graph = _relative_imports(package)
    assert graph.number_of_edges() > 5  # the walk found the package's imports
    assert list(nx.simple_cycles(graph)) == []
