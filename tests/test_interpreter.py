"""The interpreter computes what ``dsl.execute`` computes, op by op and kind by kind."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dsl
from dsl import OPS, Kind, Program, Statement
from proxy_tasks import _interpreter

# A tree of several arrays, so per-array reductions differ from whole-tree ones.
_RNG = np.random.default_rng(0)
W = {
    "a": jnp.asarray(_RNG.normal(size=(3, 4)), jnp.float32),
    "b": jnp.asarray(_RNG.normal(size=(5,)), jnp.float32),
    "c": jnp.asarray(_RNG.normal(size=(2, 2, 2)), jnp.float32),
}
G = jax.tree_util.tree_map(lambda x: jnp.asarray(_RNG.normal(size=x.shape) * 0.5, jnp.float32), W)
M = jax.tree_util.tree_map(lambda x: jnp.asarray(_RNG.uniform(0.1, 0.9, size=x.shape), jnp.float32), W)
LR = 0.37
STEP = 3

# How to produce an argument of each kind (the prelude defines per-array values).
ARGUMENTS = {
    Kind.TREE: ["g", "m"],
    Kind.PER_ARRAY: ["n"],
    Kind.SCALAR: [0.61, "lr"],
}
PRELUDE = (Statement("n", "norm", ("m",)),)


def _cases():
    for op in OPS.values():
        for kinds in itertools.product(ARGUMENTS, repeat=op.arity):
            try:
                result_kind = op.result_kind(kinds)
            except TypeError:
                continue
            variants = list(itertools.product(*(ARGUMENTS[k] for k in kinds)))
            # The first and last variant (constants vs variables, g vs m) keep the table short.
            for args in dict.fromkeys([variants[0], variants[-1]]):
                yield pytest.param(
                    op.name, args, result_kind, id=f"{op.name}-{'-'.join(map(str, args)) or 'const'}"
                )


def _program(op_name, args, result_kind) -> Program:
    statements = [*PRELUDE, Statement("r", op_name, tuple(args))]
    # The update must be a tree (add the gradient to a scalar or per-array result) and
    # must read the state, or pruning would (rightly) drop the state's statements.
    statements.append(
        Statement("u", "add", ("r", "g"))
        if result_kind is not Kind.TREE
        else Statement("u", "multiply", ("r", 1.0))
    )
    statements.append(Statement("update", "add", ("u", "m")))
    statements.append(Statement("m", "interp", ("g", "m", 0.9)))
    return Program(("m",), tuple(statements), "update")


def _assert_close(expected, actual):
    for e, a in zip(jax.tree_util.tree_leaves(expected), jax.tree_util.tree_leaves(actual), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=2e-5, atol=1e-6)


CASES = list(_cases())


def test_every_op_is_covered():
    assert {case.values[0] for case in CASES} == set(OPS)


@pytest.mark.parametrize("op_name,args,result_kind", CASES)
def test_one_step_equals_dsl_execute(op_name, args, result_kind):
    program = _program(op_name, args, result_kind)
    expected = dsl.execute(program, W, G, (M,), LR, STEP)
    actual = _interpreter.execute(program, W, G, (M,), LR, STEP)
    _assert_close(expected, actual)


def test_step_input_and_reassigned_inputs():
    program = dsl.parse(
        "def train(w, g, m, v, lr, step):\n"
        "  lr = lr * 0.5\n"
        "  g = g * step\n"
        "  w = cosine_sim(w, g)\n"
        "  v = clip(g, w)\n"
        "  update = g * lr\n"
        "  update = update + v\n"
        "  return update, m, v\n"
    )
    _assert_close(
        dsl.execute(program, W, G, (M, G), LR, STEP), _interpreter.execute(program, W, G, (M, G), LR, STEP)
    )


@pytest.mark.parametrize("name", dsl.library.names())
def test_library_programs_over_three_steps(name):
    """State carries over between steps exactly as with dsl.execute."""
    program = dsl.library.load(name)
    state = tuple(M for _ in program.state)
    expected_state, actual_state = state, state
    for step in (1, 2, 3):
        expected = dsl.execute(program, W, G, expected_state, LR, step)
        actual = _interpreter.execute(program, W, G, actual_state, LR, step)
        _assert_close(expected, actual)
        expected_state, actual_state = expected[1], actual[1]


def test_dead_statements_are_pruned_before_encoding():
    program = dsl.parse(
        "def train(w, g, m, lr):\n"
        "  unused = exp(g)\n"
        "  m = interp(g, m, 0.9)\n"
        "  also_unused = unused + m\n"
        "  update = m * lr\n"
        "  return update, m\n"
    )
    encoded = _interpreter.encode(program)
    assert encoded.length == 2
    assert [s.op for s in encoded.program.statements] == ["interp", "multiply"]


def test_temporaries_are_reused():
    # A chain of 40 statements that each only read the previous one needs 1-2 temporaries.
    lines = ["def train(w, g, m, lr):", "  t = g * 1.0"]
    lines += ["  t = t * 1.0" for _ in range(39)]
    lines += ["  update = t * lr", "  return update, m"]
    encoded = _interpreter.encode(dsl.parse("\n".join(lines) + "\n"))
    assert encoded.length == 41
    assert encoded.bucket == (128, 64)
    assert set(encoded.target[: encoded.length]) <= {
        _interpreter.FIXED_REGISTERS,
        _interpreter.FIXED_REGISTERS + 1,
    }


def test_invalid_program_is_a_program_error():
    program = Program(("m",), (Statement("update", "norm", ("lr",)),), "update")
    with pytest.raises(dsl.ProgramError, match="norm reduces a tree"):
        _interpreter.encode(program)


def test_too_long_program_is_a_program_error():
    lines = ["def train(w, g, m, lr):", "  t = g * 1.0"]
    lines += ["  t = t * 1.0" for _ in range(600)]
    lines += ["  update = t * lr", "  return update, m"]
    with pytest.raises(dsl.ProgramError, match="largest size"):
        _interpreter.encode(dsl.parse("\n".join(lines) + "\n"))


HOISTED_PROGRAMS = {
    # The library's bias-corrected AdamW: power/1-power and lr*constant are schedule statements.
    "adamw": (dsl.library.load("adamw"), 5),
    # A reassigned lr read by per-step statements; step read directly by a tree statement;
    # constant-only statements; a state name that holds a schedule scalar before its tree value.
    "reassigned": (
        dsl.parse(
            "def train(w, g, m, lr, step):\n"
            "  c = pi()\n"
            "  half = c * 0.5\n"
            "  lr = lr * half\n"
            "  m = lr + step\n"
            "  s = g * step\n"
            "  k = exp(lr)\n"
            "  m = interp(s, m, k)\n"
            "  update = m * lr\n"
            "  return update, m\n"
        ),
        5,
    ),
    # A tree-dependent scalar (global_norm) mixed with schedule scalars stays per step.
    "tree_scalar": (
        dsl.parse(
            "def train(w, g, m, lr, step):\n"
            "  n = global_norm(g)\n"
            "  b = power(0.9, step)\n"
            "  m = interp(g, m, b)\n"
            "  r = n * b\n"
            "  d = m / r\n"
            "  update = d * lr\n"
            "  return update, m\n"
        ),
        1,
    ),
}


@pytest.mark.parametrize("name", HOISTED_PROGRAMS)
def test_hoisted_schedule_statements_equal_dsl_execute(name):
    """Statements of lr, step and constants run before the loop, with the same results."""
    program, hoisted = HOISTED_PROGRAMS[name]
    encoded = _interpreter.encode(program)
    assert encoded.hoisted_length == hoisted
    assert encoded.length + encoded.hoisted_length == len(encoded.program.statements)
    state = tuple(M for _ in program.state)
    expected_state, actual_state = state, state
    for step, lr in ((1, 0.37), (2, 0.5), (7, 0.01)):
        expected = dsl.execute(program, W, G, expected_state, lr, step)
        actual = _interpreter.execute(program, W, G, actual_state, lr, step)
        _assert_close(expected, actual)
        expected_state, actual_state = expected[1], actual[1]


def test_schedule_table_holds_every_step():
    """One pre-pass over all steps gives each step's hoisted values (row t = step t + 1)."""
    program = dsl.parse(
        "def train(w, g, m, lr, step):\n"
        "  b = power(0.9, step)\n"
        "  c = 1.0 - b\n"
        "  lr = lr * c\n"
        "  update = g * lr\n"
        "  return update, m\n"
    )
    encoded = _interpreter.encode(program)
    lrs = np.linspace(1.0, 0.1, 50).astype(np.float32)
    steps = np.arange(1, 51, dtype=np.float32)
    table = _interpreter.schedule_table(encoded, lrs, steps)
    assert table.dtype == np.float32
    assert table.shape == (50, _interpreter.scalar_slots(encoded.bucket[0]))
    np.testing.assert_array_equal(table[:, _interpreter.SLOT_LR], lrs)
    np.testing.assert_array_equal(table[:, _interpreter.SLOT_STEP], steps)
    lr_slot = encoded.arg_index[0, 1]  # update = g * lr: the per-step statement's scalar argument
    assert encoded.length == 1 and encoded.arg_is_scalar[0, 1] and not encoded.arg_is_scalar[0, 0]
    np.testing.assert_allclose(table[:, lr_slot], lrs * (1.0 - 0.9**steps), rtol=1e-6)


def test_packed_code_round_trips():
    encoded = _interpreter.encode(dsl.library.load("adamw"))
    unpacked = _interpreter.unpack(jnp.asarray(encoded.packed()), encoded.bucket[0])
    for name, value in encoded.arrays().items():
        np.testing.assert_array_equal(np.asarray(unpacked[name]), value, err_msg=name)
        assert unpacked[name].dtype == np.asarray(value).dtype, name
