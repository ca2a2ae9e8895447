"""Algebraic rewrite rules of ``dsl.simplify``: each proposes, the probe decides.

A rule looks at one node of a ``Graph`` and returns the graph with that node rewritten
(or its readers pointed elsewhere), or None when it does not apply. Rules match exact
algebra, but the DSL adds 1e-8 to denominators and rounds in float32, so no rule is
trusted: ``dsl._simplify`` keeps a rewrite only when ``dsl._equivalence`` shows equal
updates, and only when the program gets simpler.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ._graph import Graph, Node, Ref, is_constant, is_node, same_ref
from ._ops import DIVISION_EPSILON, OPS
from ._refs import FIRST_SLOT

Rule = Callable[[Graph, int], "Graph | None"]


def _node(graph: Graph, ref: Ref):
    return graph.nodes[ref] if is_node(ref) else None


def constant_fold(graph: Graph, index: int) -> Graph | None:
    """A call on constants only (``0.9 * 0.5``, ``pi()``) becomes its value."""
    node = graph.nodes[index]
    if not all(is_constant(a) for a in node.args):
        return None
    with np.errstate(all="ignore"):
        value = float(np.asarray(OPS[node.op].numpy_fn()(*(np.float64(a) for a in node.args))))
    if not math.isfinite(value):
        return None
    return graph.redirected(index, value)


def identity(graph: Graph, index: int) -> Graph | None:
    """``x * 1``, ``x + 0``, ``x - 0``, ``x / 1``, ``interp(x, y, 0)``, ``interp(x, x, a)``, ``max(x, x)``..."""
    node = graph.nodes[index]
    op, args = node.op, node.args

    def const(ref, value):
        return is_constant(ref) and ref == value

    passthrough = None
    if op == "multiply":
        passthrough = args[0] if const(args[1], 1.0) else args[1] if const(args[0], 1.0) else None
    elif op == "add":
        passthrough = args[0] if const(args[1], 0.0) else args[1] if const(args[0], 0.0) else None
    elif op in ("subtract", "divide"):
        passthrough = args[0] if const(args[1], 0.0 if op == "subtract" else 1.0) else None
    elif op == "interp":
        x, y, a = args
        if same_ref(x, y):
            passthrough = x
        elif const(a, 0.0):
            passthrough = x
        elif const(a, 1.0):
            passthrough = y
    elif op in ("max", "min") and same_ref(*args):
        passthrough = args[0]
    if passthrough is None:
        return None
    return graph.redirected(index, passthrough)


def involution(graph: Graph, index: int) -> Graph | None:
    """``negative(negative(x))`` is ``x``; ``sign(sign(x))`` and ``abs(abs(x))`` are ``sign(x)``, ``abs(x)``."""
    node = graph.nodes[index]
    if node.op not in ("negative", "sign", "abs"):
        return None
    inner = _node(graph, node.args[0])
    if inner is None or inner.op != node.op:
        return None
    return graph.redirected(index, inner.args[0] if node.op == "negative" else node.args[0])


def annihilate(graph: Graph, index: int) -> Graph | None:
    """``x - x`` and ``x * 0`` are 0."""
    node = graph.nodes[index]
    if node.op == "subtract" and same_ref(*node.args):
        return graph.redirected(index, 0.0)
    if node.op == "multiply" and any(is_constant(a) and a == 0.0 for a in node.args):
        return graph.redirected(index, 0.0)
    return None


def _square_of(graph: Graph, ref: Ref) -> Ref | None:
    """``x`` if ``ref`` is ``square(x)`` or ``x * x``."""
    node = _node(graph, ref)
    if node is None:
        return None
    if node.op == "square":
        return node.args[0]
    if node.op == "multiply" and same_ref(*node.args) and not is_constant(node.args[0]):
        return node.args[0]
    return None


def _magnitude_of(graph: Graph, ref: Ref) -> Ref | None:
    """``x`` if ``ref`` is ``|x|`` written some way: ``abs(x)``, ``sqrt(x * x)``, ``power(x, 1)``..."""
    node = _node(graph, ref)
    if node is None:
        return None
    if node.op == "abs":
        return node.args[0]
    if node.op == "sqrt":
        return _square_of(graph, node.args[0])
    if node.op == "power" and is_constant(node.args[1]):
        if node.args[1] == 1.0:
            return node.args[0]
        if node.args[1] == 0.5:
            return _square_of(graph, node.args[0])
    return None


def magnitude(graph: Graph, index: int) -> Graph | None:
    """``sqrt(x * x)``, ``sqrt(square(x))``, ``power(x * x, 0.5)``, ``power(x, 1)`` are ``abs(x)``."""
    node = graph.nodes[index]
    if node.op == "abs":
        return None
    x = _magnitude_of(graph, index)
    return None if x is None else graph.with_node(index, "abs", (x,))


def sign_normalization(graph: Graph, index: int) -> Graph | None:
    """``x / |x|`` (any way of writing ``|x|``) and ``x * rsqrt(x * x)`` are ``sign(x)``.

    Equal up to the DSL's division epsilon: ``x / (|x| + 1e-8)`` differs from ``sign(x)``
    by ``1e-8 / |x|`` relative, which the probe measures.
    """
    node = graph.nodes[index]
    x = None
    if node.op == "divide" and not is_constant(node.args[0]):
        if same_ref(_magnitude_of(graph, node.args[1]), node.args[0]):
            x = node.args[0]
    elif node.op == "multiply":
        for a, b in (node.args, node.args[::-1]):
            inverse = _node(graph, b)
            if not is_constant(a) and inverse is not None and inverse.op == "rsqrt":
                if same_ref(_square_of(graph, inverse.args[0]), a):
                    x = a
    return None if x is None else graph.with_node(index, "sign", (x,))


def interp_chain(graph: Graph, index: int) -> Graph | None:
    """An ``interp`` of an ``interp`` of the same two inputs is one ``interp``.

    With ``interp(x, y, a) = (1 - a) x + a y``:
    ``interp(x, interp(x, y, b), a) = interp(x, y, a b)``,
    ``interp(x, interp(y, x, b), a) = interp(x, y, a (1 - b))``,
    ``interp(interp(x, y, b), y, a) = interp(x, y, 1 - (1 - a)(1 - b))``,
    ``interp(interp(y, x, b), x, a) = interp(y, x, 1 - (1 - a) b)`` (here ``y`` first).
    """
    node = graph.nodes[index]
    if node.op != "interp" or not is_constant(node.args[2]):
        return None
    p, q, a = node.args
    inner = _node(graph, q)
    if inner is not None and inner.op == "interp" and is_constant(inner.args[2]):
        x, y, b = inner.args
        if same_ref(p, x):
            return graph.with_node(index, "interp", (p, y, a * b))
        if same_ref(p, y):
            return graph.with_node(index, "interp", (p, x, a * (1.0 - b)))
    inner = _node(graph, p)
    if inner is not None and inner.op == "interp" and is_constant(inner.args[2]):
        x, y, b = inner.args
        if same_ref(q, y):
            return graph.with_node(index, "interp", (x, q, 1.0 - (1.0 - a) * (1.0 - b)))
        if same_ref(q, x):
            return graph.with_node(index, "interp", (y, q, 1.0 - (1.0 - a) * b))
    return None


def _scaling(graph: Graph, ref: Ref) -> tuple[Ref, float] | None:
    """``(x, k)`` if ``ref`` is ``k * x`` for a constant ``k``: ``x * c``, ``x / c``, ``-x``."""
    node = _node(graph, ref)
    if node is None:
        return None
    args = node.args
    if node.op == "multiply":
        if is_constant(args[1]) and not is_constant(args[0]):
            return args[0], args[1]
        if is_constant(args[0]) and not is_constant(args[1]):
            return args[1], args[0]
    if node.op == "divide" and is_constant(args[1]) and not is_constant(args[0]):
        return args[0], 1.0 / (args[1] + DIVISION_EPSILON)
    if node.op == "negative" and not is_constant(args[0]):
        return args[0], -1.0
    return None


def scale_chain(graph: Graph, index: int) -> Graph | None:
    """``(x * a) * b`` is ``x * (a b)``; also with ``x / c`` (a factor ``1 / (c + 1e-8)``) and ``-x``."""
    outer = _scaling(graph, index)
    if outer is None:
        return None
    inner = _scaling(graph, outer[0])
    if inner is None:
        return None
    factor = outer[1] * inner[1]
    if not math.isfinite(factor):
        return None
    return graph.with_node(index, "multiply", (inner[0], factor))


def _offset(graph: Graph, ref: Ref) -> tuple[Ref, float] | None:
    """``(x, c)`` if ``ref`` is ``x + c`` or ``x - c`` for a constant."""
    node = _node(graph, ref)
    if node is None or node.op not in ("add", "subtract"):
        return None
    x, c = node.args
    if node.op == "add" and is_constant(x) and not is_constant(c):
        x, c = c, x
    if not is_constant(c) or is_constant(x):
        return None
    return x, c if node.op == "add" else -c


def offset_chain(graph: Graph, index: int) -> Graph | None:
    """``(x + a) + b`` is ``x + (a + b)``; also with ``-``."""
    outer = _offset(graph, index)
    if outer is None:
        return None
    inner = _offset(graph, outer[0])
    if inner is None:
        return None
    return graph.with_node(index, "add", (inner[0], outer[1] + inner[1]))


RULES: dict[str, Rule] = {
    "constant_fold": constant_fold,
    "identity": identity,
    "involution": involution,
    "annihilate": annihilate,
    "sign_normalization": sign_normalization,
    "magnitude": magnitude,
    "interp_chain": interp_chain,
    "scale_chain": scale_chain,
    "offset_chain": offset_chain,
}
"""Node rewrites, tried in this order at every node."""


def slot_folds(graph: Graph) -> list[tuple[str, Graph]]:
    """Candidates without a slot whose value follows from another slot's.

    If slot B's next value is computed from slot A's next value and constants only,
    ``B_next = f(A_next)``, then at every step B holds ``f`` of what A holds (at the
    first step too when ``f(0) = 0``: both start at zero; the probe checks). So B's
    readers can compute ``f(A)`` from A's incoming value at the top of the program, and
    B goes. With ``f`` the identity, the two slots hold the same value and merge.
    Returns ``(description, graph)`` pairs.
    """
    _, live_slot = graph.live()
    slots = [i for i, flag in enumerate(live_slot) if flag]
    candidates = []
    for folded in slots:
        for kept in slots:
            if kept == folded:
                continue
            chain = _chain_between(graph, graph.slot_values[kept], graph.slot_values[folded])
            if chain is None:
                continue
            source, target = graph.slot_values[kept], graph.slot_values[folded]
            copies, copy_of = [], {}
            for index in chain:
                node = graph.nodes[index]
                args = tuple(
                    FIRST_SLOT - kept if same_ref(a, source) else copy_of.get(a, a) if is_node(a) else a
                    for a in node.args
                )
                copy_of[index] = len(copies)
                copies.append(Node(node.op, args, node.name))
            replacement = FIRST_SLOT - kept if not copies else copy_of[target]
            folded_graph = graph.prepended(tuple(copies)).redirected(FIRST_SLOT - folded, replacement)
            if copies:
                description = f"slot {graph.state[folded]!r} is a function of slot {graph.state[kept]!r}"
            else:
                description = f"slot {graph.state[folded]!r} holds the same value as {graph.state[kept]!r}"
            candidates.append((description, folded_graph))
    return candidates


def zero_slots(graph: Graph) -> list[tuple[str, Graph]]:
    """Candidates where a slot that is read but never written reads as 0.

    State starts at zero, so a slot whose next value is its own incoming value holds 0 at
    every step: its readers read the constant 0 instead, and the slot goes (the search
    makes such programs; a dead slot must not count as a live one in the verdicts).
    Returns ``(description, graph)`` pairs.
    """
    _, live_slot = graph.live()
    return [
        (f"slot {graph.state[i]!r} is never written: it holds 0", graph.redirected(FIRST_SLOT - i, 0.0))
        for i, flag in enumerate(live_slot)
        if flag and same_ref(graph.slot_values[i], FIRST_SLOT - i)
    ]


def _chain_between(graph: Graph, source: Ref, target: Ref) -> list[int] | None:
    """The nodes computing ``target`` from ``source`` and constants only, in order; None if others feed it."""
    if same_ref(source, target):
        return []
    if not is_node(target) or not is_node(source):
        return None
    chain, stack = set(), [target]
    while stack:
        ref = stack.pop()
        if same_ref(ref, source) or is_constant(ref) or ref in chain:
            continue
        if not is_node(ref):
            return None  # another input feeds it
        chain.add(ref)
        stack.extend(graph.nodes[ref].args)
    return sorted(chain)
