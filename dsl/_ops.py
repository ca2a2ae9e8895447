"""The one registry of the DSL's 45 functions.

Each function is defined once, over an array namespace ``xp`` (``jax.numpy`` or
``numpy``), so the JAX kernel and the NumPy reference cannot drift apart.

Values are represented the same way by every backend:

* a scalar is a 0-d array;
* a tree (shaped like the parameters) or a tree of per-array scalars (what ``norm``
  returns) is a ``tuple`` of arrays, one per parameter array, in flattening order.

Elementwise functions broadcast a scalar over every array of a tuple and a per-array
scalar over its own array. Out-of-domain inputs follow one documented rule per
function (the ``doc`` field); finite inputs never raise, and NaN/inf in a result is
left for the caller to detect.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._types import Kind

DIVISION_EPSILON = 1e-8
"""Added to every denominator (``/``, ``reciprocal``, ``rsqrt``, ``cosine_sim``, ``clip``)."""


@dataclass(frozen=True)
class Op:
    """One function of the DSL.

    Attributes:
      name: canonical name, as printed (``interp``, ``clip``, ``add``...).
      arity: number of arguments (0 to 3).
      kind: ``"constant"``, ``"elementwise"``, ``"reduction"`` or ``"tree"`` (a
        function of whole trees: ``dot``, ``cosine_sim``, ``clip``).
      doc: one line: what it computes, including its out-of-domain rule.
      kernel: ``kernel(xp)`` returns the function over the value representation
        described in the module docstring.
      symbol: infix symbol used when printing (``+ - * /``), else None.
      commutative: arguments may be swapped without changing the result.
      aliases: other names accepted by the parser.
    """

    name: str
    arity: int
    kind: str
    doc: str
    kernel: Callable[[Any], Callable[..., Any]]
    symbol: str | None = None
    commutative: bool = False
    aliases: tuple[str, ...] = ()

    def jax_fn(self) -> Callable[..., Any]:
        import jax.numpy as jnp

        return _bound(self, jnp)

    def numpy_fn(self) -> Callable[..., Any]:
        return _bound(self, np)

    def result_kind(self, arg_kinds: tuple[Kind, ...]) -> Kind:
        """The kind of the result, or raise ``TypeError`` with the reason."""
        return _RESULT_KIND[self.kind](self, arg_kinds)


_BOUND_CACHE: dict[tuple[str, str], Callable[..., Any]] = {}


def _bound(op: Op, xp: Any) -> Callable[..., Any]:
    key = (op.name, xp.__name__)
    fn = _BOUND_CACHE.get(key)
    if fn is None:
        inner = op.kernel(xp)
        fn = _leafwise(inner) if op.kind == "elementwise" else inner
        _BOUND_CACHE[key] = fn
    return fn


def _leafwise(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Lift an array function to scalars and tuples of arrays, broadcasting scalars."""

    def lifted(*args):
        width = next((len(a) for a in args if isinstance(a, tuple)), None)
        if width is None:
            return fn(*args)
        return tuple(fn(*(a[i] if isinstance(a, tuple) else a for a in args)) for i in range(width))

    return lifted


# ----------------------------------------------------------------------------- kinds


def _broadcast_kind(op: Op, kinds: tuple[Kind, ...]) -> Kind:
    return max(kinds, default=Kind.SCALAR)


def _constant_kind(op: Op, kinds: tuple[Kind, ...]) -> Kind:
    return Kind.SCALAR


def _reduction_kind(op: Op, kinds: tuple[Kind, ...]) -> Kind:
    (x,) = kinds
    if x is Kind.SCALAR:
        raise TypeError(f"{op.name} reduces a tree, got a scalar")
    return Kind.PER_ARRAY if op.name == "norm" else Kind.SCALAR


def _tree_kind(op: Op, kinds: tuple[Kind, ...]) -> Kind:
    x, y = kinds
    if op.name == "clip":
        if x is Kind.SCALAR:
            raise TypeError("clip needs a tree as its first argument, got a scalar")
        if y is not Kind.SCALAR:
            raise TypeError(f"clip needs a scalar threshold, got a {y.value}")
        return x
    for position, kind in enumerate(kinds, start=1):
        if kind is Kind.SCALAR:
            raise TypeError(f"{op.name} needs trees, argument {position} is a scalar")
    return Kind.SCALAR


_RESULT_KIND = {
    "constant": _constant_kind,
    "elementwise": _broadcast_kind,
    "reduction": _reduction_kind,
    "tree": _tree_kind,
}


# ----------------------------------------------------------------------------- kernels


def _sum_of_squares(xp, leaves):
    return [xp.sum(leaf * leaf) for leaf in leaves]


def _global_norm(xp):
    return lambda x: xp.sqrt(sum(_sum_of_squares(xp, x)))


def _norm(xp):
    return lambda x: tuple(xp.sqrt(s) for s in _sum_of_squares(xp, x))


def _tree_dot(xp, x, y):
    return sum(xp.sum(a * b) for a, b in zip(x, y, strict=True))


def _dot(xp):
    return lambda x, y: _tree_dot(xp, x, y)


def _cosine_sim(xp):
    norm = _global_norm(xp)
    return lambda x, y: _tree_dot(xp, x, y) / (norm(x) * norm(y) + DIVISION_EPSILON)


def _clip(xp):
    norm = _global_norm(xp)

    def clip(x, c):
        factor = xp.minimum(1.0, c / (norm(x) + DIVISION_EPSILON))
        return tuple(leaf * factor for leaf in x)

    return clip


def _const(value: float):
    return lambda xp: lambda: xp.asarray(value, dtype=xp.float32)


def _unary(doc: str, kernel) -> tuple[str, Callable]:
    return doc, kernel


_UNARY: dict[str, tuple[str, Callable]] = {
    "abs": _unary("|x|", lambda xp: xp.abs),
    "cos": _unary("cos(x)", lambda xp: xp.cos),
    "sin": _unary("sin(x)", lambda xp: xp.sin),
    "tan": _unary("tan(x)", lambda xp: xp.tan),
    "arcsin": _unary(
        "arcsin(x), x clipped to [-1, 1]", lambda xp: lambda x: xp.arcsin(xp.clip(x, -1.0, 1.0))
    ),
    "arccos": _unary(
        "arccos(x), x clipped to [-1, 1]", lambda xp: lambda x: xp.arccos(xp.clip(x, -1.0, 1.0))
    ),
    "arctan": _unary("arctan(x)", lambda xp: xp.arctan),
    "sinh": _unary("sinh(x)", lambda xp: xp.sinh),
    "cosh": _unary("cosh(x)", lambda xp: xp.cosh),
    "tanh": _unary("tanh(x)", lambda xp: xp.tanh),
    "arcsinh": _unary("arcsinh(x)", lambda xp: xp.arcsinh),
    "arccosh": _unary(
        "arccosh(x), x raised to at least 1", lambda xp: lambda x: xp.arccosh(xp.maximum(x, 1.0))
    ),
    "arctanh": _unary(
        "arctanh(x), x clipped to [-1, 1] (+-inf at the ends)",
        lambda xp: lambda x: xp.arctanh(xp.clip(x, -1.0, 1.0)),
    ),
    "exp": _unary("e^x", lambda xp: xp.exp),
    "exp2": _unary("2^x", lambda xp: xp.exp2),
    "exp10": _unary("10^x", lambda xp: lambda x: xp.power(10.0, x)),
    "expm1": _unary("e^x - 1", lambda xp: xp.expm1),
    "log": _unary("ln|x| (-inf at 0)", lambda xp: lambda x: xp.log(xp.abs(x))),
    "log10": _unary("log10|x| (-inf at 0)", lambda xp: lambda x: xp.log10(xp.abs(x))),
    "log2": _unary("log2|x| (-inf at 0)", lambda xp: lambda x: xp.log2(xp.abs(x))),
    "log1p": _unary("ln|1 + x| (-inf at -1)", lambda xp: lambda x: xp.log(xp.abs(1.0 + x))),
    "square": _unary("x^2", lambda xp: xp.square),
    "sqrt": _unary("sqrt|x|", lambda xp: lambda x: xp.sqrt(xp.abs(x))),
    "cube": _unary("x^3", lambda xp: lambda x: x * x * x),
    "cbrt": _unary("cube root of x (sign kept)", lambda xp: xp.cbrt),
    "sign": _unary("-1, 0 or 1", lambda xp: xp.sign),
    "reciprocal": _unary("1 / (x + 1e-8)", lambda xp: lambda x: 1.0 / (x + DIVISION_EPSILON)),
    "negative": _unary("-x", lambda xp: xp.negative),
    "rsqrt": _unary(
        "1 / (sqrt|x| + 1e-8)", lambda xp: lambda x: 1.0 / (xp.sqrt(xp.abs(x)) + DIVISION_EPSILON)
    ),
}


def _build_registry() -> dict[str, Op]:
    ops = [
        Op("pi", 0, "constant", "the constant pi", _const(math.pi)),
        Op("e", 0, "constant", "the constant e", _const(math.e)),
        Op("eps", 0, "constant", "the constant 1e-8", _const(1e-8)),
    ]
    ops += [Op(name, 1, "elementwise", doc, kernel) for name, (doc, kernel) in _UNARY.items()]
    ops += [
        Op("norm", 1, "reduction", "L2 norm of each array (a tree of per-array scalars)", _norm),
        Op("global_norm", 1, "reduction", "L2 norm of the whole tree (a scalar)", _global_norm),
        Op("add", 2, "elementwise", "x + y", lambda xp: lambda x, y: x + y, symbol="+", commutative=True),
        Op("subtract", 2, "elementwise", "x - y", lambda xp: lambda x, y: x - y, symbol="-"),
        Op(
            "multiply", 2, "elementwise", "x * y", lambda xp: lambda x, y: x * y, symbol="*", commutative=True
        ),
        Op(
            "divide",
            2,
            "elementwise",
            "x / (y + 1e-8)",
            lambda xp: lambda x, y: x / (y + DIVISION_EPSILON),
            symbol="/",
        ),
        Op("max", 2, "elementwise", "elementwise maximum", lambda xp: xp.maximum, commutative=True),
        Op("min", 2, "elementwise", "elementwise minimum", lambda xp: xp.minimum, commutative=True),
        Op(
            "power",
            2,
            "elementwise",
            "|x|^y (inf for 0 to a negative power)",
            lambda xp: lambda x, y: xp.power(xp.abs(x), y),
        ),
        Op("dot", 2, "tree", "sum over the whole tree of x * y (a scalar)", _dot, commutative=True),
        Op(
            "cosine_sim",
            2,
            "tree",
            "dot(x, y) / (global_norm(x) * global_norm(y) + 1e-8)",
            _cosine_sim,
            commutative=True,
        ),
        Op(
            "clip",
            2,
            "tree",
            "x * min(1, c / (global_norm(x) + 1e-8)): clip by global norm, c a scalar",
            _clip,
            aliases=("clip_by_global_norm",),
        ),
        Op(
            "interp",
            3,
            "elementwise",
            "(1 - a) * x + a * y",
            lambda xp: lambda x, y, a: (1.0 - a) * x + a * y,
            aliases=("interpolate",),
        ),
    ]
    return {op.name: op for op in ops}


OPS: dict[str, Op] = _build_registry()
"""Canonical name -> Op, in the paper's order. ``len(OPS) == 45``."""

_SYMBOLS = {op.symbol: op.name for op in OPS.values() if op.symbol}
_ALIASES = {alias: op.name for op in OPS.values() for alias in op.aliases}


def lookup(name: str) -> Op | None:
    """The op called ``name`` (canonical, alias or infix symbol), or None."""
    canonical = _ALIASES.get(name) or _SYMBOLS.get(name) or name
    return OPS.get(canonical)
