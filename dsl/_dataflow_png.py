"""Draw a dataflow graph to a PNG with networkx and matplotlib (no Graphviz needed).

``symdisc show --graph PROG --png FILE`` uses Graphviz's ``dot`` when it is installed and
this otherwise. The layout is layered like ``dot``'s: inputs at the top, each statement
and each output one row below the lowest of its arguments (an output right under the
statement that computes it, so its edge is short); within a row, nodes are ordered by
the mean position of their arguments, which keeps most edges short and uncrossed.
Constants are not drawn as nodes: each is in its statement's text. Imported only to
draw: matplotlib is slow to import.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# node style by kind (redundant statements and unused state slots are grey and dashed, as in to_dot)
_BOX = {
    "statement": {"boxstyle": "round,pad=0.35", "facecolor": "white", "edgecolor": "black"},
    "input": {"boxstyle": "round,pad=0.4,rounding_size=0.8", "facecolor": "#d9f0d3", "edgecolor": "black"},
    "output": {"boxstyle": "round,pad=0.4", "facecolor": "#dbe9f6", "edgecolor": "black"},
}
_UNUSED = {"edgecolor": "grey", "linestyle": "--"}
_DPI = 120


def node_label(data: dict) -> str:
    """The text drawn in a node (as in ``to_dot``)."""
    if data["kind"] == "statement":
        return f"line {data['line']}: {data['text']}"
    return data["label"]


def _unused(data: dict) -> bool:
    return data.get("live") is False  # constants and outputs carry no "live"


def _mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default


def drawn_graph(graph: nx.DiGraph) -> nx.DiGraph:
    """``graph`` without its constant nodes (each constant is in its statement's text)."""
    return graph.subgraph(n for n, d in graph.nodes(data=True) if d["kind"] != "constant")


def layered_positions(graph: nx.DiGraph) -> dict[str, tuple[float, int]]:
    """``(x, row)`` of each node: rows from the top (0), x spread evenly within a row."""
    data_edges = nx.DiGraph((u, v) for u, v, d in graph.edges(data=True) if d["kind"] == "data")
    data_edges.add_nodes_from(graph)
    row: dict[str, int] = {}
    for node in nx.topological_sort(data_edges):
        sources = list(data_edges.predecessors(node))
        row[node] = (
            0 if graph.nodes[node]["kind"] == "input" else 1 + max((row[p] for p in sources), default=0)
        )
    rows: dict[int, list[str]] = {}
    for node in graph:  # graph order: inputs, then statements in program order
        rows.setdefault(row[node], []).append(node)
    x: dict[str, float] = {}
    for r in sorted(rows):
        nodes = rows[r]
        if r > 0:  # by the mean x of the node's sources; a node without drawn sources keeps its place
            centred = {node: i - (len(nodes) - 1) / 2 for i, node in enumerate(nodes)}
            nodes.sort(key=lambda node: _mean([x[p] for p in data_edges.predecessors(node)], centred[node]))
        for i, node in enumerate(nodes):
            x[node] = i - (len(nodes) - 1) / 2
    return {node: (x[node], row[node]) for node in graph}


def draw_dataflow_png(graph: nx.DiGraph, path: str | Path) -> dict:
    """Draw ``graph`` (from ``dsl.dataflow``) to the PNG file ``path``.

    Returns:
      ``positions`` (node -> drawn (x, y)) and ``labels`` (node -> drawn text) of the
      nodes drawn (every node but the constants), and ``edges``, the edges drawn.
    """
    graph = drawn_graph(graph)
    layers = layered_positions(graph)
    labels = {node: node_label(data) for node, data in graph.nodes(data=True)}
    n_rows = 1 + max(r for _, r in layers.values())
    widest = max(max(len(labels[n]) for n in graph), 8)
    per_row: dict[int, int] = {}
    for _, r in layers.values():
        per_row[r] = per_row.get(r, 0) + 1
    column = 0.075 * widest + 0.4  # inches per node in a row
    figure = Figure(figsize=(max(6.0, column * max(per_row.values()) + 1.5), 0.85 * n_rows + 1.2), dpi=_DPI)
    FigureCanvasAgg(figure)
    ax = figure.add_axes((0, 0, 1, 0.93))
    ax.set_axis_off()
    positions = {node: (x * column, -r) for node, (x, r) in layers.items()}

    data_edges = [(u, v) for u, v, d in graph.edges(data=True) if d["kind"] == "data"]
    # An edge that skips rows is curved, so it is not hidden behind the boxes in between;
    # it bows away from the middle of the drawing, where the long chains of statements are.
    short = [(u, v) for u, v in data_edges if layers[v][1] - layers[u][1] == 1]
    long = [(u, v) for u, v in data_edges if layers[v][1] - layers[u][1] != 1]
    to_the_right = [(u, v) for u, v in long if layers[u][0] + layers[v][0] > 0]
    to_the_left = [edge for edge in long if edge not in to_the_right]
    next_step = [(u, v) for u, v, d in graph.edges(data=True) if d["kind"] == "next_step"]
    groups = [
        (short, {}),
        (to_the_left, {"connectionstyle": "arc3,rad=0.35"}),  # (a downward edge with rad > 0 bows left)
        (to_the_right, {"connectionstyle": "arc3,rad=-0.35"}),
        (next_step, {"connectionstyle": "arc3,rad=0.25", "style": "dashed"}),
    ]
    edges, arrows = [], []
    for group, style in groups:
        if not group:
            continue
        colors = ["grey" if _unused(graph.nodes[u]) or (u, v) in next_step else "black" for u, v in group]
        arrows += nx.draw_networkx_edges(
            graph,
            positions,
            edgelist=group,
            ax=ax,
            width=1.0,
            edge_color=colors,
            node_size=0,
            arrowsize=12,
            min_source_margin=1,
            min_target_margin=1,
            **style,
        )
        edges += group
    texts = {}
    for kind, box in _BOX.items():
        for unused in (False, True):
            nodes = [n for n, d in graph.nodes(data=True) if d["kind"] == kind and _unused(d) == unused]
            if not nodes:
                continue
            style = {**box, **(_UNUSED if unused else {})}
            texts |= nx.draw_networkx_labels(
                graph,
                positions,
                labels={n: labels[n] for n in nodes},
                ax=ax,
                font_size=8,
                font_family="DejaVu Sans Mono" if kind == "statement" else "DejaVu Sans",
                font_color="grey" if unused else "black",
                bbox=style,
            )
    xs = [p[0] for p in positions.values()]
    half = 0.5 * column
    ax.set_xlim(min(xs) - half - 0.3, max(xs) + half + 0.3)
    ax.set_ylim(-n_rows + 0.4, 0.6)
    figure.suptitle(
        "Dataflow of one step: redundant statements and unused state are grey and dashed; "
        "dashed arrows carry state to the next step",
        fontsize=8,
    )
    # Arrows end at the node boxes, which exist once the texts have been drawn once.
    figure.canvas.draw()
    for (source, target), arrow in zip(edges, arrows, strict=True):
        arrow.set_patchA(texts[source].get_bbox_patch())
        arrow.set_patchB(texts[target].get_bbox_patch())
    figure.savefig(path, dpi=_DPI)  # the dpi of the first draw: the boxes stay where they were
    return {"positions": positions, "labels": labels, "edges": edges}
