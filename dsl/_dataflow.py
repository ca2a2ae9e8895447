"""The dataflow graph of a program, for inspection (``symdisc show --graph``).

``analyze`` does not build this graph: building it takes about 4.5x as long as the
whole of ``analyze`` (about 450 us against 100 us for a 20-statement program, see
docs/performance.md), and ``analyze`` runs on every child of the search. Both derive
from the same resolution of arguments (``dsl._analysis.resolve``), and the tests check
that liveness read off the graph (ancestors of the update, following the next-step
edges from returned state to incoming state) is ``analyze``'s liveness.
"""

from __future__ import annotations

import networkx as nx

from ._analysis import liveness, resolve
from ._program import Program
from ._refs import FIRST_SLOT, INPUTS

_INPUT_NAMES = {ref: name for name, ref in INPUTS.items()}


def _input_node(name: str) -> str:
    return f"in:{name}"


def _ref_node(ref: int, program: Program) -> str:
    if ref >= 0:
        return f"statement:{ref}"
    if ref in _INPUT_NAMES:
        return _input_node(_INPUT_NAMES[ref])
    return _input_node(program.state[FIRST_SLOT - ref])


def dataflow(program: Program) -> nx.DiGraph:
    """The data dependencies of one step of ``program``, plus the step-to-step edges.

    Nodes (attribute ``kind``):

    * ``in:<name>``, ``kind="input"``: each input of the signature;
    * ``const:<i>:<j>``, ``kind="constant"``, ``value``: argument ``j`` of statement ``i``;
    * ``statement:<i>``, ``kind="statement"``: with ``op``, ``target``, ``line``, ``text``
      and ``live`` (False for a redundant statement);
    * ``out:update`` and ``out:state:<name>``, ``kind="output"``: the returned values.

    Edges carry ``kind="data"`` (with the ``argument`` position for statement inputs)
    or ``kind="next_step"``, from a returned state value to the same slot's input.
    The graph is built for any program that parses, including ones that do not
    type-check.
    """
    resolved = resolve(program)
    live, live_slot = liveness(resolved, len(program.state))
    graph = nx.DiGraph(name="train")
    for position, name in enumerate(program.inputs):
        is_state = name in program.state
        graph.add_node(
            _input_node(name),
            kind="input",
            label=name,
            position=position,
            live=live_slot[program.state.index(name)] if is_state else None,
        )
    for index, (statement, refs) in enumerate(zip(program.statements, resolved.refs, strict=True)):
        node = f"statement:{index}"
        graph.add_node(
            node,
            kind="statement",
            op=statement.op,
            target=statement.target,
            line=program.line_of(index),
            text=statement.to_text(),
            live=bool(live[index]),
        )
        for position, ref in enumerate(refs):
            if type(ref) is float:
                source = f"const:{index}:{position}"
                graph.add_node(source, kind="constant", value=ref, label=repr(ref))
            else:
                source = _ref_node(ref, program)
            graph.add_edge(source, node, kind="data", argument=position)
    graph.add_node(
        "out:update",
        kind="output",
        label="update" if program.update == "update" else f"update ({program.update})",
    )
    graph.add_edge(_ref_node(resolved.update_ref, program), "out:update", kind="data")
    for name, ref in zip(program.state, resolved.slot_refs, strict=True):
        node = f"out:state:{name}"
        graph.add_node(node, kind="output", label=f"next {name}")
        graph.add_edge(_ref_node(ref, program), node, kind="data")
        graph.add_edge(node, _input_node(name), kind="next_step")
    return graph


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: nx.DiGraph) -> str:
    """Graphviz DOT text for a graph from ``dataflow`` (no pydot needed).

    Redundant statements and unused state slots are grey and dashed; next-step
    edges are dashed.
    """
    lines = [
        "digraph train {",
        "  rankdir=TB;",
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for node, data in graph.nodes(data=True):
        kind = data["kind"]
        if kind == "statement":
            label = f"line {data['line']}: {data['text']}"
            style = (
                'shape=box, style="rounded"'
                if data["live"]
                else 'shape=box, style="rounded,dashed", color=grey, fontcolor=grey'
            )
        elif kind == "input":
            label = data["label"]
            unused_slot = data["live"] is False
            style = (
                "shape=ellipse, style=dashed, color=grey, fontcolor=grey" if unused_slot else "shape=ellipse"
            )
        elif kind == "constant":
            label = data["label"]
            style = "shape=plaintext"
        else:
            label = data["label"]
            style = "shape=doubleoctagon"
        lines.append(f"  {_quote(node)} [label={_quote(label)}, {style}];")
    for source, target, data in graph.edges(data=True):
        if data["kind"] == "next_step":
            attributes = ' [style=dashed, label="next step", constraint=false]'
        else:
            attributes = ""
        lines.append(f"  {_quote(source)} -> {_quote(target)}{attributes};")
    lines.append("}")
    return "\n".join(lines) + "\n"
