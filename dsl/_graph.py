"""A program as a graph of values, for rewriting without worrying about variable names.

``Graph.of(program)`` resolves every argument to where its value comes from (a node
index, an input, or a float constant: the references of ``dsl._refs``); a rewrite
edits nodes and references; ``Graph.to_program()`` names the values again. Names are
the original targets wherever that stays correct; a value that would be overwritten
while still needed gets a fresh name (``x_1``), and ``to_program`` returns None for a
graph that no straight list of assignments can express (a state slot whose next value
is another input: the DSL has no copy statement).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from ._analysis import Resolved, liveness, resolve
from ._program import Program, ProgramError, Statement
from ._refs import FIRST_SLOT, INPUTS, W

Ref = int | float
"""A node index (>= 0), an input (< 0, see ``dsl._refs``), or a float constant."""


def is_node(ref: Ref) -> bool:
    return type(ref) is int and ref >= 0


def is_constant(ref: Ref) -> bool:
    return type(ref) is float


@dataclass(frozen=True)
class Node:
    """One call: ``op`` of ``args``; ``name`` is the variable it was assigned to."""

    op: str
    args: tuple[Ref, ...]
    name: str


@dataclass(frozen=True)
class Graph:
    """The values of a program and where its outputs come from.

    Attributes:
      nodes: the calls, in an order where every node reads only earlier nodes.
      update: the returned update.
      slot_values: per state slot, its value at the end of the step (read next step).
      state: the slot names (slot ``i`` is the input ``FIRST_SLOT - i``).
      update_name: the name the update is returned as.
      uses_step: whether the signature declares ``step``.
    """

    nodes: tuple[Node, ...]
    update: Ref
    slot_values: tuple[Ref, ...]
    state: tuple[str, ...]
    update_name: str
    uses_step: bool

    @classmethod
    def of(cls, program: Program) -> Graph:
        resolved = resolve(program)
        nodes = tuple(
            Node(s.op, tuple(refs), s.target)
            for s, refs in zip(program.statements, resolved.refs, strict=True)
        )
        return cls(
            nodes, resolved.update_ref, resolved.slot_refs, program.state, program.update, program.uses_step
        )

    def input_name(self, ref: int) -> str:
        if ref <= FIRST_SLOT:
            return self.state[FIRST_SLOT - ref]
        return next(name for name, r in INPUTS.items() if r == ref)

    def with_node(self, index: int, op: str, args: tuple[Ref, ...]) -> Graph:
        """A copy where node ``index`` computes ``op(*args)`` instead (args must be earlier)."""
        nodes = list(self.nodes)
        nodes[index] = Node(op, tuple(args), nodes[index].name)
        return replace(self, nodes=tuple(nodes))

    def redirected(self, old: Ref, new: Ref) -> Graph:
        """A copy where every reader of ``old`` (nodes and outputs) reads ``new`` instead."""

        def swap(ref):
            return new if same_ref(ref, old) else ref

        nodes = tuple(Node(n.op, tuple(swap(a) for a in n.args), n.name) for n in self.nodes)
        return replace(
            self,
            nodes=nodes,
            update=swap(self.update),
            slot_values=tuple(swap(r) for r in self.slot_values),
        )

    def prepended(self, nodes: tuple[Node, ...]) -> Graph:
        """A copy with ``nodes`` first (they read inputs, constants and each other)."""
        k = len(nodes)

        def shift(ref):
            return ref + k if is_node(ref) else ref

        moved = tuple(Node(n.op, tuple(shift(a) for a in n.args), n.name) for n in self.nodes)
        return replace(
            self,
            nodes=tuple(nodes) + moved,
            update=shift(self.update),
            slot_values=tuple(shift(r) for r in self.slot_values),
        )

    def without_slot(self, slot: int) -> Graph:
        """A copy without state slot ``slot``; its incoming value must no longer be read."""
        gone = FIRST_SLOT - slot

        def shift(ref):
            if type(ref) is int and ref < gone:
                return ref + 1  # a later slot moves one place up
            if type(ref) is int and ref == gone:
                raise ValueError(f"slot {self.state[slot]!r} is still read")
            return ref

        nodes = tuple(Node(n.op, tuple(shift(a) for a in n.args), n.name) for n in self.nodes)
        values = tuple(shift(r) for i, r in enumerate(self.slot_values) if i != slot)
        state = tuple(name for i, name in enumerate(self.state) if i != slot)
        return replace(self, nodes=nodes, update=shift(self.update), slot_values=values, state=state)

    def live(self) -> tuple[bytearray, list[bool]]:
        """Live nodes and live slots across steps (``dsl._analysis.liveness``)."""
        refs = tuple(n.args for n in self.nodes)
        # A constant output (left by a rewrite; such a graph cannot be written) reads nothing.
        update = W if is_constant(self.update) else self.update
        values = tuple(FIRST_SLOT - i if is_constant(r) else r for i, r in enumerate(self.slot_values))
        return liveness(Resolved(refs, update, values, (), True), len(self.state))

    def pruned(self) -> Graph:
        """Without dead nodes and without slots whose incoming value no live node reads."""
        live, live_slot = self.live()
        graph = self
        for slot in reversed(range(len(self.state))):
            if not live_slot[slot]:
                graph = graph._without_dead_slot(slot, live)
        return graph._without_nodes({i for i, flag in enumerate(live) if not flag})

    def _without_dead_slot(self, slot: int, live) -> Graph:
        # Dead nodes may still read the slot; they are dropped next, so point them at 0.0.
        gone = FIRST_SLOT - slot
        nodes = tuple(
            n if live[i] else Node(n.op, tuple(0.0 if same_ref(a, gone) else a for a in n.args), n.name)
            for i, n in enumerate(self.nodes)
        )
        return replace(self, nodes=nodes).without_slot(slot)

    def _without_nodes(self, removed: set[int]) -> Graph:
        if not removed:
            return self
        new_index, count = {}, 0
        for i in range(len(self.nodes)):
            if i not in removed:
                new_index[i] = count
                count += 1

        def move(ref):
            return new_index[ref] if is_node(ref) else ref

        nodes = tuple(
            Node(n.op, tuple(move(a) for a in n.args), n.name)
            for i, n in enumerate(self.nodes)
            if i not in removed
        )
        # Dead slot values point at removed nodes: a dead slot keeps its incoming value.
        values = tuple(
            move(r) if not is_node(r) or r not in removed else FIRST_SLOT - i
            for i, r in enumerate(self.slot_values)
        )
        return replace(self, nodes=nodes, update=move(self.update), slot_values=values)

    def to_program(self) -> Program | None:
        """The graph as statements, or None if it cannot be written (see the module docstring)."""
        return _name_values(self)


def same_ref(a: Ref, b: Ref) -> bool:
    """Equal references: ``0`` (node 0) is not the constant ``0.0``."""
    return type(a) is type(b) and a == b


def _name_values(graph: Graph) -> Program | None:
    """Statements for ``graph``: keep each node's name unless that would clobber a needed value."""
    nodes = graph.nodes
    # Outputs: (name, ref) that must be bound at the return.
    outputs = [(graph.update_name, graph.update)] + list(zip(graph.state, graph.slot_values, strict=True))
    required: dict[int, str] = {}  # node -> the output name it must carry
    for name, ref in outputs:
        if is_node(ref):
            if required.setdefault(ref, name) != name:
                return None  # one value returned under two names needs a copy
        elif is_constant(ref) or graph.input_name(ref) != name:
            return None  # an output that is another input or a constant needs a copy
    required_at = {name: index for index, name in required.items()}
    last_use = {}
    for index, node in enumerate(nodes):
        for arg in node.args:
            if not is_constant(arg):
                last_use[arg] = index
    kept_to_end = {ref for _, ref in outputs}
    taken = {n.name for n in nodes} | set(INPUTS) | set(graph.state)
    bound: dict[str, Ref] = {name: ref for name, ref in INPUTS.items()}
    bound.update({name: FIRST_SLOT - i for i, name in enumerate(graph.state)})
    name_of: dict[Ref, str] = {ref: name for name, ref in bound.items()}

    def needed_after(ref, index) -> bool:
        return ref in kept_to_end or last_use.get(ref, -1) > index

    def free(name, index) -> bool:
        old = bound.get(name)
        return old is None or not needed_after(old, index)

    statements = []
    for index, node in enumerate(nodes):
        args = []
        for arg in node.args:
            if is_constant(arg):
                args.append(arg)
            else:
                name = name_of.get(arg)
                if name is None or not same_ref(bound.get(name), arg):
                    raise AssertionError("a needed value lost its name")
                args.append(name)
        name = required.get(index)
        if name is not None:
            if not free(name, index):
                return None
        else:
            name = node.name
            owner = required_at.get(name)
            clashes_with_output = owner is not None and (owner < index or last_use.get(index, -1) > owner)
            if clashes_with_output or not free(name, index):
                name = _fresh(node.name, taken)
                taken.add(name)
        statements.append(Statement(name, node.op, tuple(args)))
        bound[name] = index
        name_of[index] = name
    try:
        program = Program(graph.state, tuple(statements), graph.update_name, graph.uses_step)
        _ = program.kinds
    except ProgramError:
        return None
    return program


def _fresh(base: str, taken: set[str]) -> str:
    for suffix in itertools.count(1):
        name = f"{base}_{suffix}"
        if name not in taken:
            return name
    raise AssertionError("unreachable")
