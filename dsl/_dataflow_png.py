"""Draw a dataflow graph to a PNG with networkx and matplotlib (no Graphviz needed).

``symdisc show --graph PROG --png FILE`` uses Graphviz's ``dot`` when it is installed and
this otherwise. The layout is layered like ``dot``'s (Sugiyama's method, simplified):
inputs at the top, each statement and each output one row below the lowest of its
arguments (an output right under the statement that computes it); an edge that skips
rows passes through a waypoint in each row between, which takes a slot of its own, so it
never runs behind a box; within a row, nodes and waypoints are ordered by the mean
position of their neighbours (sweeps down, up, down), which keeps crossings few.
Constants are not drawn as nodes: each is in its statement's text. Imported only to
draw: matplotlib is slow to import.
"""

from __future__ import annotations

from dataclasses import dataclass
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


def drawn_graph(graph: nx.DiGraph) -> nx.DiGraph:
    """``graph`` without its constant nodes (each constant is in its statement's text)."""
    return graph.subgraph(n for n, d in graph.nodes(data=True) if d["kind"] != "constant")


_WAYPOINT_WIDTH = 0.3  # the slot of a waypoint, in node slots


@dataclass(frozen=True)
class Layout:
    """Where things go, in slots (x) and rows (0 at the top).

    Attributes:
      position: ``(x, row)`` of every node and waypoint.
      routes: for each data edge, the nodes it passes: source, waypoints, target.
    """

    position: dict[str, tuple[float, int]]
    routes: dict[tuple[str, str], list[str]]


def layered_layout(graph: nx.DiGraph) -> Layout:
    """The layered layout of a graph without constants (see the module docstring)."""
    data_edges = [(u, v) for u, v, d in graph.edges(data=True) if d["kind"] == "data"]
    data = nx.DiGraph(data_edges)
    data.add_nodes_from(graph)
    row: dict[str, int] = {}
    for node in nx.topological_sort(data):
        sources = [row[p] for p in data.predecessors(node)]
        row[node] = 0 if graph.nodes[node]["kind"] == "input" else 1 + max(sources, default=0)
    chains = nx.DiGraph()
    chains.add_nodes_from(graph)  # graph order: inputs, then statements in program order
    routes = {}
    for u, v in data_edges:
        route = [u] + [f"waypoint:{u}:{v}:{r}" for r in range(row[u] + 1, row[v])] + [v]
        for a, b in zip(route, route[1:], strict=False):  # consecutive pairs
            chains.add_edge(a, b)
        for r, waypoint in enumerate(route[1:-1], row[u] + 1):
            row[waypoint] = r
        routes[(u, v)] = route
    rows: dict[int, list[str]] = {}
    for node in chains:
        rows.setdefault(row[node], []).append(node)
    x = {node: float(i) for nodes in rows.values() for i, node in enumerate(nodes)}
    for neighbours, order in ((chains.predecessors, 1), (chains.successors, -1), (chains.predecessors, 1)):
        for r in sorted(rows)[::order]:
            nodes = rows[r]
            nodes.sort(key=lambda node: _mean([x[n] for n in neighbours(node)], x[node]))
            x.update(_spread(nodes))
    # The order is settled; now each node goes as near as the order allows to below its sources.
    for r in sorted(rows)[1:]:
        nodes = rows[r]
        wanted = [_mean([x[n] for n in chains.predecessors(node)], x[node]) for node in nodes]
        x.update(_place(nodes, wanted))
    return Layout({node: (x[node], row[node]) for node in chains}, routes)


def _width(node: str) -> float:
    return _WAYPOINT_WIDTH if node.startswith("waypoint:") else 1.0


def _spread(nodes: list[str]) -> dict[str, float]:
    """Centres of consecutive slots (a waypoint's is narrow), the row centred on 0."""
    return _place(nodes, [0.0] * len(nodes))


def _place(nodes: list[str], wanted: list[float]) -> dict[str, float]:
    """Centres in this order, none overlapping, as near as the order allows to ``wanted``.

    Each node is pushed right of its left neighbour if it must be; then the row is shifted
    so that on average the nodes sit where they are wanted.
    """
    centres: list[float] = []
    for i, node in enumerate(nodes):
        centre = wanted[i]
        if centres:
            centre = max(centre, centres[-1] + (_width(nodes[i - 1]) + _width(node)) / 2)
        centres.append(centre)
    shift = _mean([w - c for w, c in zip(wanted, centres, strict=True)], 0.0)
    return {node: centre + shift for node, centre in zip(nodes, centres, strict=True)}


def _mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default


def draw_dataflow_png(graph: nx.DiGraph, path: str | Path) -> dict:
    """Draw ``graph`` (from ``dsl.dataflow``) to the PNG file ``path``.

    Returns:
      ``positions`` (node -> drawn (x, y)) and ``labels`` (node -> drawn text) of the
      nodes drawn (every node but the constants), and ``edges``, the edges drawn.
    """
    graph = drawn_graph(graph)
    layout = layered_layout(graph)
    labels = {node: node_label(data) for node, data in graph.nodes(data=True)}
    n_rows = 1 + max(r for _, r in layout.position.values())
    column = 0.075 * max(max(len(label) for label in labels.values()), 8) + 0.4  # inches per slot
    xs = [x for x, _ in layout.position.values()]
    width = column * (max(xs) - min(xs) + 1) + 0.6
    figure = Figure(figsize=(max(6.0, width), 0.85 * n_rows + 1.2), dpi=_DPI)
    FigureCanvasAgg(figure)
    ax = figure.add_axes((0, 0, 1, 0.93))
    ax.set_axis_off()
    positions = {node: (x * column, -r) for node, (x, r) in layout.position.items()}

    # Each route is drawn as segments; the last one carries the arrowhead.
    segments = nx.DiGraph()
    ends, plain, colors = [], [], {}
    for (source, _), route in layout.routes.items():
        pairs = list(zip(route, route[1:], strict=False))
        segments.add_edges_from(pairs)
        ends.append(pairs[-1])
        plain += pairs[:-1]
        for pair in pairs:
            colors[pair] = "grey" if _unused(graph.nodes[source]) else "black"
    next_step = [(u, v) for u, v, d in graph.edges(data=True) if d["kind"] == "next_step"]
    segments.add_edges_from(next_step)
    groups = [
        (plain, {"arrowstyle": "-"}),
        (ends, {}),
        (next_step, {"connectionstyle": "arc3,rad=0.25", "style": "dashed"}),
    ]
    drawn_segments, arrows = [], []
    for group, style in groups:
        if not group:
            continue
        arrows += nx.draw_networkx_edges(
            segments,
            positions,
            edgelist=group,
            ax=ax,
            width=1.0,
            edge_color=[colors.get(pair, "grey") for pair in group],
            node_size=0,
            arrowsize=12,
            min_source_margin=0,
            min_target_margin=0,
            **style,
        )
        drawn_segments += group
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
    ax.set_xlim(min(xs) * column - 0.5 * column - 0.3, max(xs) * column + 0.5 * column + 0.3)
    ax.set_ylim(-n_rows + 0.4, 0.6)
    figure.suptitle(
        "Dataflow of one step: redundant statements and unused state are grey and dashed; "
        "dashed arrows carry state to the next step",
        fontsize=8,
    )
    # Segments end at the node boxes, which exist once the texts have been drawn once.
    figure.canvas.draw()
    for (source, target), arrow in zip(drawn_segments, arrows, strict=True):
        if source in texts:
            arrow.set_patchA(texts[source].get_bbox_patch())
        if target in texts:
            arrow.set_patchB(texts[target].get_bbox_patch())
    figure.savefig(path, dpi=_DPI)  # the dpi of the first draw: the boxes stay where they were
    return {
        "positions": {node: positions[node] for node in graph},
        "labels": labels,
        "edges": list(layout.routes) + next_step,
    }
