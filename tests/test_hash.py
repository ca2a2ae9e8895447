"""Functional hash: invariances, canonicalization, exact folding, sensitivity, stability."""

from __future__ import annotations

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import dsl
from dsl._program import RESERVED_INPUTS
from dsl._random import random_program, random_statement, scope_kinds

SEEDS = st.integers(0, 2**32 - 1)


def hash_of(program) -> str:
    return dsl.functional_hash(program)


def body(lines: str, signature: str = "w, g, m, lr", returns: str = "update, m") -> dsl.Program:
    text = f"def train({signature}):\n" + "".join(
        f"  {line.strip()}\n" for line in lines.strip().splitlines()
    )
    return dsl.parse(text + f"  return {returns}\n")


# ----------------------------------------------------------------------------- transformations


def renamed(program: dsl.Program, prefix: str = "x_") -> dsl.Program:
    """Every temporary and state slot renamed consistently."""

    def name(n):
        return n if n in RESERVED_INPUTS else prefix + n

    statements = [
        dsl.Statement(name(s.target), s.op, tuple(name(a) if isinstance(a, str) else a for a in s.args))
        for s in program.statements
    ]
    return dsl.Program(tuple(map(name, program.state)), statements, name(program.update), program.uses_step)


def with_dead_statements(program: dsl.Program, rng: np.random.Generator, count: int) -> dsl.Program:
    """``count`` statements inserted at random positions, assigning names nobody reads."""
    for k in range(count):
        position = int(rng.integers(len(program.statements) + 1))
        statement, _ = random_statement(rng, scope_kinds(program, position), [f"dead{k}"])
        statements = list(program.statements)
        statements.insert(position, statement)
        program = program.replace_statements(statements)
    return program


def independent(a: dsl.Statement, b: dsl.Statement) -> bool:
    return a.target != b.target and a.target not in b.variables() and b.target not in a.variables()


def with_independent_swaps(
    program: dsl.Program, rng: np.random.Generator, count: int
) -> tuple[dsl.Program, int]:
    """Swap adjacent independent statements ``count`` times (fewer if none is left)."""
    statements = list(program.statements)
    swaps = 0
    for _ in range(count):
        pairs = [i for i in range(len(statements) - 1) if independent(statements[i], statements[i + 1])]
        if not pairs:
            break
        i = pairs[int(rng.integers(len(pairs)))]
        statements[i], statements[i + 1] = statements[i + 1], statements[i]
        swaps += 1
    return program.replace_statements(statements), swaps


# ----------------------------------------------------------------------------- invariances


@settings(max_examples=100, deadline=None)
@given(seed=SEEDS, length=st.integers(1, 30), slots=st.integers(0, 4))
def test_renaming_does_not_change_the_hash(seed, length, slots):
    program = random_program(np.random.default_rng(seed), length, slots)
    assert hash_of(renamed(program)) == hash_of(program)


@settings(max_examples=100, deadline=None)
@given(seed=SEEDS, length=st.integers(1, 30), slots=st.integers(0, 4), dead=st.integers(1, 5))
def test_dead_statements_do_not_change_the_hash(seed, length, slots, dead):
    rng = np.random.default_rng(seed)
    program = random_program(rng, length, slots)
    padded = with_dead_statements(program, rng, dead)
    analysis = dsl.analyze(padded)
    assert analysis.hash == hash_of(program)
    dead_indices = [i for i, s in enumerate(padded.statements) if s.target.startswith("dead")]
    assert set(dead_indices) <= set(analysis.redundant)


@settings(max_examples=100, deadline=None)
@given(seed=SEEDS, length=st.integers(2, 30), slots=st.integers(0, 4))
def test_reordering_independent_statements_does_not_change_the_hash(seed, length, slots):
    rng = np.random.default_rng(seed)
    program = random_program(rng, length, slots)
    shuffled, swaps = with_independent_swaps(program, rng, 10)
    assume(swaps > 0)
    assert hash_of(shuffled) == hash_of(program)


@settings(max_examples=100, deadline=None)
@given(seed=SEEDS, length=st.integers(1, 30), slots=st.integers(2, 4))
def test_permuting_state_slots_does_not_change_the_hash(seed, length, slots):
    rng = np.random.default_rng(seed)
    program = random_program(rng, length, slots)
    order = rng.permutation(slots)
    while np.array_equal(order, np.arange(slots)):  # never the identity
        order = rng.permutation(slots)
    permuted = dsl.Program(
        tuple(program.state[i] for i in order), program.statements, uses_step=program.uses_step
    )
    assert permuted.state != program.state
    assert hash_of(permuted) == hash_of(program)


def test_renaming_a_state_slot_keeps_lion_s_hash():
    lion = dsl.library.load("lion")
    text = lion.to_text().replace("m", "momentum")
    assert hash_of(dsl.parse(text)) == hash_of(lion)


def test_swapped_slot_roles_are_one_program():
    adamw = dsl.library.load("adamw_paper")
    swapped = adamw.to_text().replace("m", "TMP").replace("v", "m").replace("TMP", "v")
    swapped = swapped.replace("train(w, g, v, m, lr)", "train(w, g, m, v, lr)").replace(
        "update, v, m", "update, m, v"
    )
    assert swapped != adamw.to_text()
    assert hash_of(dsl.parse(swapped)) == hash_of(adamw)


# ----------------------------------------------------------------------------- commutativity


@settings(max_examples=100, deadline=None)
@given(seed=SEEDS, length=st.integers(5, 30), slots=st.integers(0, 4))
def test_commutative_arguments_are_canonicalized(seed, length, slots):
    program = random_program(np.random.default_rng(seed), length, slots)
    swapped = [
        dsl.Statement(s.target, s.op, s.args[::-1]) if dsl.OPS[s.op].commutative else s
        for s in program.statements
    ]
    assume(swapped != list(program.statements))  # some commutative call with two different arguments
    assert hash_of(program.replace_statements(swapped)) == hash_of(program)


@pytest.mark.parametrize("op", ["add", "multiply", "max", "min", "dot", "cosine_sim"])
def test_each_commutative_function_ignores_argument_order(op):
    # dot and cosine_sim give a scalar: scale g by it to return a tree.
    a = body(f"t = {op}(g, m)\nupdate = g * t")
    b = body(f"t = {op}(m, g)\nupdate = g * t")
    assert hash_of(a) == hash_of(b)


@pytest.mark.parametrize(
    "pair",
    [
        ("update = g - m", "update = m - g"),
        ("update = g / m", "update = m / g"),
        ("update = power(g, m)", "update = power(m, g)"),
        ("update = interp(g, m, 0.9)", "update = interp(m, g, 0.9)"),
        ("update = interp(g, m, 0.9)", "update = interp(g, 0.9, m)"),
        ("update = clip(g, lr)", "update = clip(m, lr)"),
    ],
)
def test_swapped_non_commutative_operands_change_the_hash(pair):
    assert hash_of(body(pair[0])) != hash_of(body(pair[1]))


@settings(max_examples=60, deadline=None)
@given(seed=SEEDS, length=st.integers(1, 20), op=st.sampled_from(["-", "/", "**"]))
def test_swapping_operands_of_a_random_program_s_last_step_changes_the_hash(seed, length, op):
    program = random_program(np.random.default_rng(seed), length, 2)
    name = {"-": "subtract", "/": "divide", "**": "power"}[op]
    left = program.replace_statements((*program.statements, dsl.Statement("update", name, ("update", 0.37))))
    right = program.replace_statements((*program.statements, dsl.Statement("update", name, (0.37, "update"))))
    assert hash_of(left) != hash_of(right)


# ----------------------------------------------------------------------------- constants


def test_constants_are_hashed_by_exact_value():
    assert hash_of(body("update = interp(g, m, 0.9)")) != hash_of(body("update = interp(g, m, 0.90000001)"))
    assert hash_of(body("update = g * 0.5")) == hash_of(body("update = g * 0.50"))


@settings(max_examples=60, deadline=None)
@given(seed=SEEDS, length=st.integers(1, 30), slots=st.integers(0, 4))
def test_changing_a_live_constant_changes_the_hash(seed, length, slots):
    rng = np.random.default_rng(seed)
    program = random_program(rng, length, slots, constant_probability=0.4)
    analysis = dsl.analyze(program)
    live_constants = [
        (i, j)
        for i, s in enumerate(program.statements)
        if i not in analysis.redundant
        for j, a in enumerate(s.args)
        if isinstance(a, float)
    ]
    assume(live_constants)
    i, j = live_constants[int(rng.integers(len(live_constants)))]
    statement = program.statements[i]
    args = list(statement.args)
    args[j] = float(np.nextafter(args[j], np.inf))
    statements = list(program.statements)
    statements[i] = dsl.Statement(statement.target, statement.op, tuple(args))
    assert hash_of(program.replace_statements(statements)) != analysis.hash


# ----------------------------------------------------------------------------- exact folding

FOLDED = [
    ("update = g * 1.0", "update = multiply(1.0, g)"),
    ("update = g * 1.0", "update = g + 0.0"),
    ("update = g * 1.0", "update = 0.0 + g"),
    ("update = g * 1.0", "update = g - 0.0"),
    ("update = g * 1.0", "n = negative(g)\nupdate = negative(n)"),
    ("update = g * 1.0", "update = max(g, g)"),
    ("update = g * 1.0", "update = min(g, g)"),
    ("update = g * -1.0", "update = negative(g)"),
    ("update = -1.0 * g", "update = negative(g)"),
    ("update = m - g", "n = negative(g)\nupdate = m + n"),
    ("update = m - g", "n = negative(g)\nupdate = n + m"),
    ("n = negative(g)\nupdate = m - n", "update = g + m"),
    ("t = lr * 1.0\nupdate = g * t", "update = lr * g"),
]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("pair", FOLDED)
def test_exact_identities_are_folded_and_really_are_exact(pair, dtype):
    a, b = body(pair[0]), body(pair[1])
    assert hash_of(a) == hash_of(b)
    rng = np.random.default_rng(0)
    params = (jnp.asarray(rng.standard_normal(7), dtype),)
    g = (jnp.asarray(rng.standard_normal(7), dtype),)
    m = ((jnp.asarray(rng.standard_normal(7), dtype),),)
    (ua,), ((ma,),) = dsl.execute(a, params, g, m, 0.3)
    (ub,), ((mb,),) = dsl.execute(b, params, g, m, 0.3)
    assert ua.dtype == dtype
    assert np.array_equal(np.asarray(ua, np.float32), np.asarray(ub, np.float32))
    assert np.array_equal(np.asarray(ma, np.float32), np.asarray(mb, np.float32))


NOT_FOLDED = [
    # DSL division adds 1e-8 to the denominator (float64: x / 1.00000001 is not x).
    ("update = g * 1.0", "update = g / 1.0"),
    ("update = g * 1.0", "update = g * 1.0000001"),
    # 0.5 - 0.3 is Python float arithmetic in JAX execution; negative(0.3) is a float32 array.
    ("c = 0.5 - 0.3\nupdate = g * c", "n = negative(0.3)\nc = 0.5 + n\nupdate = g * c"),
    # max of Python floats is a float32 array in JAX, then float32 arithmetic follows.
    ("c = max(0.3, 0.3)\nd = c * 0.7\nupdate = g * d", "d = 0.3 * 0.7\nupdate = g * d"),
    ("update = g - m", "update = g + m"),
    ("n = negative(g)\nupdate = negative(n)", "update = abs(g)"),
    ("update = interp(g, g, 0.5)", "update = g * 1.0"),
]


@pytest.mark.parametrize("pair", NOT_FOLDED)
def test_inexact_rewrites_are_not_folded(pair):
    assert hash_of(body(pair[0])) != hash_of(body(pair[1]))


# ----------------------------------------------------------------------------- scope of the hash


def test_the_hash_covers_the_state_transition():
    # Same update at every step from zero state? No: m differs, so later updates differ.
    a = body("m = interp(g, m, 0.9)\nupdate = m * lr")
    b = body("m = interp(g, m, 0.99)\nupdate = m * lr")
    assert hash_of(a) != hash_of(b)
    # The returned state is part of the hash even when this step's update ignores it.
    c = body("update = m * lr\nm = interp(g, m, 0.9)")
    d = body("update = m * lr\nm = interp(g, m, 0.99)")
    assert hash_of(c) != hash_of(d)


def test_the_update_and_a_state_value_are_distinguished():
    a = body("update = g * lr\nm = abs(g)\nupdate = update + m")
    b = body("update = g * lr\nm = abs(w)\nupdate = update + m")
    assert hash_of(a) != hash_of(b)


def test_a_used_step_input_is_part_of_the_hash():
    a = body("t = lr * step\nupdate = g * t", signature="w, g, m, lr, step")
    b = body("t = lr * lr\nupdate = g * t", signature="w, g, m, lr, step")
    assert hash_of(a) != hash_of(b)
    unused_step = body("update = g * lr", signature="w, g, m, lr, step")
    assert hash_of(unused_step) == hash_of(body("update = g * lr"))


def test_library_programs_have_distinct_hashes():
    hashes = {name: hash_of(dsl.library.load(name)) for name in dsl.library.names()}
    assert len(set(hashes.values())) == len(hashes)


# ----------------------------------------------------------------------------- stability

LION_HASH = "a2c05c155f05f70d755b114fb54614a4"


def test_the_hash_is_a_stable_hex_string():
    # Stored in checkpoints: it must not depend on the process (PYTHONHASHSEED) or change
    # silently between versions. Update LION_HASH only on a deliberate format change.
    assert hash_of(dsl.library.load("lion")) == LION_HASH
    code = "import dsl; print(dsl.functional_hash(dsl.library.load('lion')))"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "JAX_PLATFORMS": "cpu"}
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert output.stdout.strip() == LION_HASH


def test_invalid_programs_have_no_hash():
    analysis = dsl.analyze("def train(w, g, lr):\n  update = norm(g)\n  return update\n")
    assert analysis.hash is None
    with pytest.raises(dsl.ProgramError):
        dsl.functional_hash(analysis.program)
