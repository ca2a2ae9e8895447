"""The registry of the DSL's 45 functions: names, kinds, kernels and out-of-domain rules."""

from __future__ import annotations

import functools
import itertools
import math
import zlib

import jax.numpy as jnp
import numpy as np
import pytest

import dsl
from dsl import OPS, Kind

# The functions of arXiv:2302.06675, section 2.1 (its released search space), with `invert`
# replaced by `rsqrt`, in the registry's order.
PAPER_NAMES = (
    ["pi", "e", "eps"]
    + "abs cos sin tan arcsin arccos arctan sinh cosh tanh arcsinh arccosh arctanh exp exp2 exp10 "
    "expm1 log log10 log2 log1p square sqrt cube cbrt sign reciprocal negative rsqrt".split()
    + ["norm", "global_norm"]
    + ["add", "subtract", "multiply", "divide", "max", "min", "power", "dot", "cosine_sim", "clip"]
    + ["interp"]
)
SHAPES = [(3,), (2, 4), ()]  # one parameter array may be 0-d; it is still a tree leaf
S, P, T = Kind.SCALAR, Kind.PER_ARRAY, Kind.TREE


def test_registry_has_the_papers_45_functions():
    assert len(OPS) == 45
    assert list(OPS) == PAPER_NAMES
    assert "invert" not in OPS
    arities = {n: sum(op.arity == n for op in OPS.values()) for n in range(4)}
    assert arities == {0: 3, 1: 29 + 2, 2: 10, 3: 1}
    assert all(op.doc for op in OPS.values())


def test_symbols_aliases_and_lookup():
    assert {op.symbol: name for name, op in OPS.items() if op.symbol} == {
        "+": "add", "-": "subtract", "*": "multiply", "/": "divide"
    }  # fmt: skip
    assert dsl.lookup("interpolate") is OPS["interp"]
    assert dsl.lookup("clip_by_global_norm") is OPS["clip"]
    assert dsl.lookup("*") is OPS["multiply"]
    assert dsl.lookup("invert") is None
    program = dsl.parse(
        "def train(w, g, m, lr):\n"
        "  m = interpolate(g, m, 0.9)\n"
        "  update = clip_by_global_norm(m, 1.0)\n"
        "  return update, m\n"
    )
    assert [s.op for s in program.statements] == ["interp", "clip"]


def test_commutative_flags_are_exactly_the_symmetric_functions():
    assert {name for name, op in OPS.items() if op.commutative} == {
        "add", "multiply", "max", "min", "dot", "cosine_sim"
    }  # fmt: skip
    rng = np.random.default_rng(0)
    x, y = make_value(T, rng), make_value(T, rng)
    for name, op in OPS.items():
        if op.arity != 2 or name == "clip":
            continue
        forward, backward = op.numpy_fn()(x, y), op.numpy_fn()(y, x)
        symmetric = all(
            np.allclose(a, b, rtol=1e-6) for a, b in zip(as_leaves(forward), as_leaves(backward), strict=True)
        )
        assert symmetric == op.commutative, name


# ----------------------------------------------------------------------------- values


def make_value(kind: Kind, rng: np.random.Generator, low: float = -2.5, high: float = 2.5):
    """A NumPy value of ``kind``: 0-d array, tuple of 0-d arrays, or tuple of arrays."""

    def draw(shape):
        return rng.uniform(low, high, size=shape).astype(np.float32)

    if kind is S:
        return draw(())
    if kind is P:
        return tuple(draw(()) for _ in SHAPES)
    return tuple(draw(shape) for shape in SHAPES)


def to_jax(value):
    return tuple(jnp.asarray(v) for v in value) if isinstance(value, tuple) else jnp.asarray(value)


def as_leaves(value):
    return [np.asarray(v) for v in value] if isinstance(value, tuple) else [np.asarray(value)]


def assert_has_kind(value, kind: Kind, backend: str):
    """The representation matches the kind the type rules promise."""
    if kind is S:
        assert not isinstance(value, tuple), f"{backend}: expected a scalar, got a tuple"
        assert np.shape(value) == ()
        leaves = [value]
    else:
        assert isinstance(value, tuple) and len(value) == len(SHAPES), f"{backend}: expected a tuple"
        expected_shapes = SHAPES if kind is T else [()] * len(SHAPES)
        assert [np.shape(v) for v in value] == list(expected_shapes), backend
        leaves = value
    for leaf in leaves:
        assert leaf.dtype == np.float32, f"{backend}: result dtype {leaf.dtype}, not float32"


def expected_result_kind(name: str, kinds: tuple[Kind, ...]) -> Kind:
    op = OPS[name]
    if op.kind == "constant":
        return S
    if op.kind == "elementwise":
        return max(kinds)
    if name == "norm":
        return P
    if name == "clip":
        return kinds[0]
    return S  # global_norm, dot, cosine_sim


def is_valid(name: str, kinds: tuple[Kind, ...]) -> bool:
    """The type rules, restated: which argument kinds each function accepts."""
    if name in ("norm", "global_norm"):
        return kinds != (S,)
    if name == "clip":
        return kinds[0] is not S and kinds[1] is S
    if name in ("dot", "cosine_sim"):
        return S not in kinds
    return True


ALL_CASES = [
    (name, kinds) for name, op in OPS.items() for kinds in itertools.product(list(Kind), repeat=op.arity)
]
VALID_CASES = [(name, kinds) for name, kinds in ALL_CASES if is_valid(name, kinds)]
INVALID_CASES = [(name, kinds) for name, kinds in ALL_CASES if not is_valid(name, kinds)]


def case_id(case):
    name, kinds = case
    return f"{name}({','.join(k.name.lower() for k in kinds)})"


@pytest.mark.parametrize("case", VALID_CASES, ids=case_id)
def test_jax_kernel_equals_numpy_kernel(case):
    name, kinds = case
    op = OPS[name]
    assert op.result_kind(kinds) is expected_result_kind(name, kinds)
    rng = np.random.default_rng(zlib.crc32(case_id(case).encode()))
    args = [make_value(kind, rng) for kind in kinds]
    with np.errstate(all="ignore"):  # NumPy warns at arctanh(1) = inf; it is the rule
        expected = op.numpy_fn()(*args)
    actual = op.jax_fn()(*(to_jax(a) for a in args))
    kind = op.result_kind(kinds)
    assert_has_kind(expected, kind, "numpy")
    assert_has_kind(actual, kind, "jax")
    for a, e in zip(as_leaves(actual), as_leaves(expected), strict=True):
        # float32 transcendental functions differ by a few ulps between XLA and NumPy.
        np.testing.assert_allclose(a, e, rtol=2e-5, atol=1e-6, err_msg=case_id(case))


@pytest.mark.parametrize("case", INVALID_CASES, ids=case_id)
def test_invalid_kinds_raise_type_error_with_reason(case):
    name, kinds = case
    with pytest.raises(TypeError, match=name):
        OPS[name].result_kind(kinds)


def test_there_are_invalid_kinds_only_for_reductions_and_tree_functions():
    assert {name for name, _ in INVALID_CASES} == {"norm", "global_norm", "dot", "cosine_sim", "clip"}


# ----------------------------------------------------------------------------- finite inputs never raise

EXTREMES = np.array(
    [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 1e-30, -1e-30, 1e-45, 1e30, -1e30, 3.0e38, -3.0e38, 88.0, 100.0],
    np.float32,
)


def extreme_tree(offset: int):
    """A tree whose leaves hold every extreme value, rotated so pairs of arguments differ."""
    return (
        np.roll(EXTREMES, offset),
        np.roll(EXTREMES, offset + 5).reshape(3, 5),
        np.float32(EXTREMES[offset]),
    )


@pytest.mark.parametrize("name", list(OPS))
def test_finite_inputs_never_raise(name):
    op = OPS[name]
    for position_of_scalar in [None, *range(op.arity)]:
        for scalar in EXTREMES[[0, 3, 8, 11]]:
            args = [extreme_tree(i) for i in range(op.arity)]
            if position_of_scalar is not None:
                args[position_of_scalar] = np.float32(scalar)
            kinds = tuple(T if isinstance(a, tuple) else S for a in args)
            if not is_valid(name, kinds):
                continue
            with np.errstate(all="ignore"):  # NumPy's floating-point warnings are not errors
                expected = op.numpy_fn()(*args)
            actual = op.jax_fn()(*(to_jax(a) for a in args))
            for value in (expected, actual):
                leaves = as_leaves(value)
                assert all(leaf.dtype == np.float32 for leaf in leaves), name
                assert not isinstance(value, tuple) or len(value) == 3


# ----------------------------------------------------------------------------- out-of-domain rules

INF = math.inf
# (function, arguments, expected result): one documented rule per function.
DOMAIN_RULES = [
    ("log", [0.0], -INF),
    ("log", [-math.e], 1.0),
    ("log10", [-100.0], 2.0),
    ("log10", [0.0], -INF),
    ("log2", [-8.0], 3.0),
    ("log2", [0.0], -INF),
    ("log1p", [-1.0], -INF),
    ("log1p", [-3.0], math.log(2.0)),
    ("sqrt", [-4.0], 2.0),
    ("sqrt", [0.0], 0.0),
    ("arcsin", [2.0], math.pi / 2),
    ("arcsin", [-7.0], -math.pi / 2),
    ("arccos", [2.0], 0.0),
    ("arccos", [-2.0], math.pi),
    ("arccosh", [0.0], 0.0),
    ("arccosh", [-5.0], 0.0),
    ("arctanh", [1.0], INF),
    ("arctanh", [5.0], INF),
    ("arctanh", [-3.0], -INF),
    ("reciprocal", [0.0], 1e8),
    ("rsqrt", [0.0], 1e8),
    ("rsqrt", [-4.0], 0.5),
    ("divide", [1.0, 0.0], 1e8),
    ("divide", [0.0, 0.0], 0.0),
    ("divide", [3.0, 2.0], 1.5),
    ("power", [0.0, -1.0], INF),
    ("power", [-2.0, 0.5], math.sqrt(2.0)),
    ("power", [-2.0, 3.0], 8.0),
    ("power", [0.0, 0.0], 1.0),
    ("cbrt", [-8.0], -2.0),
    ("cube", [-2.0], -8.0),
    ("exp", [1000.0], INF),
    ("exp10", [2.0], 100.0),
    ("exp2", [-1.0], 0.5),
    ("cosh", [1e30], INF),
    ("sign", [0.0], 0.0),
    ("sign", [-0.0], 0.0),
    ("sign", [-3.0], -1.0),
    ("negative", [2.0], -2.0),
    ("max", [-1.0, 2.0], 2.0),
    ("min", [-1.0, 2.0], -1.0),
    ("interp", [2.0, 10.0, 0.0], 2.0),
    ("interp", [2.0, 10.0, 1.0], 10.0),
    ("interp", [2.0, 10.0, 0.25], 4.0),
    ("subtract", [1.0, 3.0], -2.0),
]


@pytest.mark.parametrize("name,args,expected", DOMAIN_RULES, ids=lambda x: str(x))
@pytest.mark.parametrize("backend", ["jax", "numpy"])
def test_out_of_domain_rule(backend, name, args, expected):
    op = OPS[name]
    fn = op.jax_fn() if backend == "jax" else op.numpy_fn()
    # Also through a tree, so the rule holds leaf by leaf and not only for scalars.
    for wrap in (lambda x: np.float32(x), lambda x: (np.full((2,), x, np.float32),)):
        values = [wrap(a) for a in args]
        if backend == "jax":
            values = [to_jax(v) for v in values]
        with np.errstate(all="ignore"):
            result = fn(*values)
        for leaf in as_leaves(result):
            np.testing.assert_allclose(leaf, expected, rtol=1e-6, err_msg=f"{backend} {name}{tuple(args)}")


@pytest.mark.parametrize("backend", ["jax", "numpy"])
def test_reductions_and_tree_functions(backend):
    fn = {name: (OPS[name].jax_fn() if backend == "jax" else OPS[name].numpy_fn()) for name in OPS}
    xp = jnp if backend == "jax" else np
    x = (xp.asarray([3.0, 4.0], xp.float32), xp.asarray([[0.0, 12.0]], xp.float32))
    y = (xp.asarray([1.0, 0.0], xp.float32), xp.asarray([[5.0, 1.0]], xp.float32))
    zeros = tuple(xp.zeros_like(leaf) for leaf in x)
    np.testing.assert_allclose([np.asarray(n) for n in fn["norm"](x)], [5.0, 12.0], rtol=1e-6)
    np.testing.assert_allclose(fn["global_norm"](x), 13.0, rtol=1e-6)
    np.testing.assert_allclose(fn["dot"](x, y), 3.0 + 12.0, rtol=1e-6)
    expected_cosine = 15.0 / (13.0 * math.sqrt(27.0) + dsl.DIVISION_EPSILON)
    np.testing.assert_allclose(fn["cosine_sim"](x, y), expected_cosine, rtol=1e-6)
    # Zero trees: the epsilon keeps cosine_sim and clip finite.
    assert float(fn["cosine_sim"](zeros, y)) == 0.0
    for leaf in fn["clip"](zeros, xp.float32(1.0)):
        assert not np.any(np.asarray(leaf))
    # Clip by global norm: shrink to norm c, leave a tree already inside alone.
    np.testing.assert_allclose(fn["global_norm"](fn["clip"](x, xp.float32(2.6))), 2.6, rtol=1e-6)
    for clipped, leaf in zip(fn["clip"](x, xp.float32(100.0)), x, strict=True):
        np.testing.assert_array_equal(clipped, leaf)
    for leaf in fn["clip"](x, xp.float32(0.0)):
        assert not np.any(np.asarray(leaf))
    # A per-array scalar broadcasts over its own array only.
    scaled = fn["multiply"](x, fn["norm"](x))
    np.testing.assert_allclose(scaled[0], [15.0, 20.0], rtol=1e-6)
    np.testing.assert_allclose(scaled[1], [[0.0, 144.0]], rtol=1e-6)


# ----------------------------------------------------------------------------- independent references
#
# Every function's value, written again with Python's math module (and each function's
# documented out-of-domain rule), checked over a grid. The two kernels come from one
# ``kernel(xp)`` source per function, so comparing them with each other cannot see a wrong
# formula; these can. The NumPy kernel is checked here; the JAX kernel equals it on every
# kind combination (test_jax_kernel_equals_numpy_kernel) and follows the same
# out-of-domain rules (test_out_of_domain_rule).


def _clip(x: float, low: float, high: float) -> float:
    return min(max(x, low), high)


def _log_abs(log):
    return lambda x: -INF if x == 0.0 else log(abs(x))


def _arctanh(x: float) -> float:
    x = _clip(x, -1.0, 1.0)
    return math.copysign(INF, x) if abs(x) == 1.0 else math.atanh(x)


def _power(x: float, y: float) -> float:
    return INF if x == 0.0 and y < 0.0 else abs(x) ** y


ELEMENTWISE_REFERENCES = {
    "abs": abs,
    "cos": math.cos,
    "sin": math.sin,
    "tan": math.tan,
    "arcsin": lambda x: math.asin(_clip(x, -1.0, 1.0)),
    "arccos": lambda x: math.acos(_clip(x, -1.0, 1.0)),
    "arctan": math.atan,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "arcsinh": math.asinh,
    "arccosh": lambda x: math.acosh(max(x, 1.0)),
    "arctanh": _arctanh,
    "exp": math.exp,
    "exp2": lambda x: 2.0**x,
    "exp10": lambda x: 10.0**x,
    "expm1": math.expm1,
    "log": _log_abs(math.log),
    "log10": _log_abs(math.log10),
    "log2": _log_abs(math.log2),
    "log1p": lambda x: _log_abs(math.log)(1.0 + x),
    "square": lambda x: x * x,
    "sqrt": lambda x: math.sqrt(abs(x)),
    "cube": lambda x: x * x * x,
    "cbrt": lambda x: math.copysign(abs(x) ** (1.0 / 3.0), x),
    "sign": lambda x: float((x > 0.0) - (x < 0.0)),
    "reciprocal": lambda x: 1.0 / (x + 1e-8),
    "negative": lambda x: -x,
    "rsqrt": lambda x: 1.0 / (math.sqrt(abs(x)) + 1e-8),
    "add": lambda x, y: x + y,
    "subtract": lambda x, y: x - y,
    "multiply": lambda x, y: x * y,
    "divide": lambda x, y: x / (y + 1e-8),
    "max": max,
    "min": min,
    "power": _power,
    "interp": lambda x, y, a: (1.0 - a) * x + a * y,
}
CONSTANT_REFERENCES = {"pi": math.pi, "e": math.e, "eps": 1e-8}
TREE_REFERENCE_NAMES = ("norm", "global_norm", "dot", "cosine_sim", "clip")

# Inside and outside every domain: negatives for log and sqrt, |x| > 1 for arcsin and
# arctanh, x < 1 for arccosh, the poles 0 and -1 of log and log1p, +-1 for arctanh.
GRID = np.unique(
    np.concatenate([np.linspace(-3.0, 3.0, 25), [-1.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, 1.0, 0.3]])
).astype(np.float32)
PAIR_VALUES = np.float32([-2.5, -1.0, -0.3, 0.0, 0.3, 0.5, 1.0, 2.5])
INTERP_WEIGHTS = np.float32([-0.5, 0.0, 0.25, 0.9, 1.0, 1.5])


def test_every_function_has_an_independent_reference():
    assert set(ELEMENTWISE_REFERENCES) | set(CONSTANT_REFERENCES) | set(TREE_REFERENCE_NAMES) == set(OPS)


def _reference_tree(reference, *trees):
    """``reference`` applied to every element, leaf by leaf (a scalar argument broadcast)."""
    width = next(len(t) for t in trees if isinstance(t, tuple))
    leaves = [[t[i] if isinstance(t, tuple) else t for t in trees] for i in range(width)]
    return [
        np.vectorize(lambda *xs: reference(*map(float, xs)), otypes=[np.float64])(*args) for args in leaves
    ]


def _assert_matches_reference(name, *trees):
    with np.errstate(all="ignore"):
        actual = OPS[name].numpy_fn()(*trees)
    expected = _reference_tree(ELEMENTWISE_REFERENCES[name], *trees)
    for leaf, want in zip(as_leaves(actual), expected, strict=True):
        assert leaf.dtype == np.float32
        np.testing.assert_allclose(leaf, want, rtol=2e-5, atol=1e-6, err_msg=name)


UNARY_NAMES = [name for name, op in OPS.items() if op.kind == "elementwise" and op.arity == 1]
BINARY_NAMES = [name for name, op in OPS.items() if op.kind == "elementwise" and op.arity == 2]


@pytest.mark.parametrize("name", UNARY_NAMES)
def test_unary_function_matches_python_math(name):
    # A tree of three leaves: 0-d, and two vectors of different lengths.
    _assert_matches_reference(name, (GRID[0], GRID[1:12], GRID[12:]))


@pytest.mark.parametrize("name", BINARY_NAMES)
def test_binary_function_matches_python_math(name):
    x, y = np.meshgrid(PAIR_VALUES, PAIR_VALUES)
    _assert_matches_reference(name, (x, y.T), (y, x))
    for scalar in PAIR_VALUES[[0, 3, 5]]:  # a scalar broadcast over a tree, on either side
        _assert_matches_reference(name, (x,), scalar)
        _assert_matches_reference(name, scalar, (y,))


def test_interp_matches_python():
    x, y, a = np.meshgrid(PAIR_VALUES, PAIR_VALUES[::-1], INTERP_WEIGHTS, indexing="ij")
    _assert_matches_reference("interp", (x,), (y,), (a,))
    _assert_matches_reference("interp", (x,), (y,), np.float32(0.9))


def _tree_of_floats(tree) -> list[list[float]]:
    return [[float(v) for v in np.ravel(leaf)] for leaf in tree]


def _norm_reference(tree) -> list[float]:
    return [math.sqrt(math.fsum(v * v for v in leaf)) for leaf in _tree_of_floats(tree)]


def _global_norm_reference(tree) -> float:
    return math.sqrt(math.fsum(v * v for leaf in _tree_of_floats(tree) for v in leaf))


def _dot_reference(x, y) -> float:
    pairs = zip(_tree_of_floats(x), _tree_of_floats(y), strict=True)
    return math.fsum(a * b for xs, ys in pairs for a, b in zip(xs, ys, strict=True))


REDUCTION_TREES = [
    (np.float32(-2.0), np.float32([3.0, -4.0, 0.5]), np.float32([[1.0, 2.0], [-0.25, 0.0]])),
    tuple(np.random.default_rng(7).normal(size=shape).astype(np.float32) for shape in [(5,), (2, 3), ()]),
    (np.zeros(3, np.float32), np.zeros((2, 2), np.float32), np.float32(0.0)),
]


@pytest.mark.parametrize("tree", REDUCTION_TREES, ids=["hand", "random", "zeros"])
def test_reductions_and_tree_functions_match_python_math(tree):
    other = tuple(np.roll(leaf, 1) * np.float32(-1.5) + np.float32(0.25) for leaf in tree)
    fn = {name: OPS[name].numpy_fn() for name in TREE_REFERENCE_NAMES}
    x, y = tree, other
    close = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6)
    norms = fn["norm"](x)
    assert isinstance(norms, tuple) and all(np.shape(n) == () for n in norms)
    close([float(n) for n in norms], _norm_reference(tree), err_msg="norm")
    global_norm = _global_norm_reference(tree)
    close(float(fn["global_norm"](x)), global_norm, err_msg="global_norm")
    close(float(fn["dot"](x, y)), _dot_reference(tree, other), err_msg="dot")
    cosine = _dot_reference(tree, other) / (global_norm * _global_norm_reference(other) + 1e-8)
    close(float(fn["cosine_sim"](x, y)), cosine, err_msg="cosine_sim")
    for threshold in (0.0, 0.5 * global_norm, global_norm, 2.0 * global_norm + 1.0):
        factor = min(1.0, threshold / (global_norm + 1e-8))
        clipped = fn["clip"](x, np.float32(threshold))
        expected = [[v * factor for v in leaf] for leaf in _tree_of_floats(tree)]
        for leaf, want in zip(clipped, expected, strict=True):
            close(np.ravel(np.asarray(leaf)), want, err_msg=f"clip at {threshold}")


@pytest.mark.parametrize("backend", ["jax", "numpy"])
def test_constants(backend):
    values = {
        name: OPS[name].jax_fn()() if backend == "jax" else OPS[name].numpy_fn()()
        for name in ("pi", "e", "eps")
    }
    assert all(np.asarray(v).dtype == np.float32 and np.shape(v) == () for v in values.values())
    for name, value in values.items():
        np.testing.assert_allclose(value, CONSTANT_REFERENCES[name], rtol=1e-7)
    assert dsl.DIVISION_EPSILON == 1e-8
