"""The dataflow graph: structure, liveness agreement with analyze, DOT text."""

from __future__ import annotations

import networkx as nx
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import dsl
from dsl._random import random_program


def _graph_live_statements(graph: nx.DiGraph) -> set[int]:
    """Statements that reach the update, following next-step edges from state to state."""
    ancestors = nx.ancestors(graph, "out:update")
    return {int(node.split(":")[1]) for node in ancestors if graph.nodes[node]["kind"] == "statement"}


def test_lion_graph_structure():
    lion = dsl.library.load("lion")
    graph = dsl.dataflow(lion)
    kinds = nx.get_node_attributes(graph, "kind")
    assert sorted(n for n, k in kinds.items() if k == "input") == ["in:g", "in:lr", "in:m", "in:w"]
    assert sorted(n for n, k in kinds.items() if k == "output") == ["out:state:m", "out:update"]
    assert sum(k == "statement" for k in kinds.values()) == len(lion.statements)
    assert sum(k == "constant" for k in kinds.values()) == 4  # 0.9, 0.99, 0.01, 0.0001
    # update = interp(g, m, 0.9) reads g, m and a constant, in argument order.
    first = {source: data["argument"] for source, _, data in graph.in_edges("statement:0", data=True)}
    assert first == {"in:g": 0, "in:m": 1, "const:0:2": 2}
    assert graph.nodes["statement:0"]["line"] == lion.line_of(0)
    assert graph.edges["out:state:m", "in:m"]["kind"] == "next_step"
    # The final update is the last statement; m's next value is statement 2.
    assert list(graph.predecessors("out:update")) == ["statement:6"]
    assert list(graph.predecessors("out:state:m")) == ["statement:2"]
    assert all(graph.nodes[f"statement:{i}"]["live"] for i in range(len(lion.statements)))


def test_redundant_statements_are_marked_and_unreachable():
    program = dsl.parse(
        "def train(w, g, m, v, lr):\n  v = square(g)\n  m = interp(g, m, 0.9)\n  t = norm(m)\n"
        "  update = m * lr\n  v = abs(m)\n  return update, m, v\n"
    )
    graph = dsl.dataflow(program)
    assert [graph.nodes[f"statement:{i}"]["live"] for i in range(5)] == [False, True, False, True, False]
    assert _graph_live_statements(graph) == {1, 3}
    assert graph.nodes["in:v"]["live"] is False and graph.nodes["in:m"]["live"] is True


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(1, 30), slots=st.integers(0, 4))
def test_graph_liveness_is_analyze_liveness(seed, length, slots):
    program = random_program(np.random.default_rng(seed), length, slots)
    analysis = dsl.analyze(program)
    graph = dsl.dataflow(program)
    live = set(range(length)) - set(analysis.redundant)
    assert _graph_live_statements(graph) == live
    assert {n for n, d in graph.nodes(data=True) if d["kind"] == "statement" and d["live"]} == {
        f"statement:{i}" for i in live
    }
    live_slots = {
        n[3:] for n in nx.ancestors(graph, "out:update") if n.startswith("in:") and n[3:] in program.state
    }
    assert live_slots == set(analysis.live_state_slots)


def test_graph_of_a_program_that_does_not_type_check():
    program = dsl.parse("def train(w, g, lr):\n  update = norm(g)\n  return update\n")
    graph = dsl.dataflow(program)
    assert graph.has_edge("in:g", "statement:0") and graph.has_edge("statement:0", "out:update")


def test_dot_text_lists_every_node_and_edge():
    program = dsl.parse(
        "def train(w, g, m, lr):\n  t = abs(g)\n  m = interp(g, m, 0.9)\n  update = m * lr\n  return update, m\n"
    )
    graph = dsl.dataflow(program)
    dot = dsl.to_dot(graph)
    assert dot.startswith("digraph train {\n") and dot.endswith("}\n")
    for node in graph.nodes:
        assert f'"{node}" [label=' in dot
    assert dot.count(" -> ") == graph.number_of_edges()
    assert '"statement:0" [label="line 2: t = abs(g)", shape=box, style="rounded,dashed"' in dot
    assert '"out:state:m" -> "in:m" [style=dashed, label="next step"' in dot
