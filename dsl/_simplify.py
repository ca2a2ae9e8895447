"""Simplify an evolved program to the shortest equal (or equally good) one.

What the authors of arXiv:2302.06675 did by hand to the raw program that became Lion
(sections 2 and 3), as four phases, each step recorded with its diff and its effect:

1. *dead code*: statements that cannot reach an update, across steps (a state value
   overwritten before the next step reads it is dead), and the state slots that no
   live statement reads; the signature shrinks.
2. *rewrites* (``dsl._rules``): constant folding, identities, ``x / sqrt(x * x)`` to
   ``sign(x)``, chains of ``interp`` of the same inputs to one ``interp``, two slots
   holding the same value merged, ... Each is kept only if the program gets simpler
   (fewer slots, statements, then cheaper functions, then shallower) *and* the probe
   of ``dsl._equivalence`` shows the same updates, and the same values in the slots
   both keep, within ``update_tolerance`` of the original program. Phases 1 and 2 run together until nothing changes.
3. *ablation*, given ``evaluate``: a statement is removed (its readers read one of its
   arguments instead) when the fitness stays within ``tolerance`` of the fitness before
   ablation; repeated until no statement can go.
4. *constant rounding*: each constant to the fewest significant digits that keep the
   fitness within ``tolerance`` (given ``evaluate``), or else the probe updates and
   state within ``update_tolerance`` of the original program and every statement's
   value within it of the program before rounding (``sign(m)`` would hide ``0.899 ->
   0.9``). Phases 1-2 run again after 3 and 4 (a rounded ``1.0000001`` may become an
   identity).

Drift is measured against a fixed reference, never step to step, so it cannot
accumulate: probe updates against the original program (against the ablated one
after an ablation), fitness against the start of the ablation or rounding phase.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass

from ._equivalence import Trajectory, difference, trajectory
from ._graph import Graph, is_constant
from ._program import Program, parse
from ._rules import RULES, slot_folds, zero_slots

UPDATE_TOLERANCE = 1e-4
"""Default: largest relative update difference on the probe that still counts as equal."""
FITNESS_TOLERANCE = 1e-3
"""Default: largest fitness loss an ablation or a rounding may cost."""
MAX_STEPS = 500

# Cheap functions: a rewrite to one of these is simpler than the call it replaces.
_CHEAP_OPS = frozenset({"abs", "sign", "negative", "add", "subtract", "multiply"})


@dataclass(frozen=True)
class SimplificationStep:
    """One change: the rule, the programs before and after, and what it did.

    Attributes:
      rule: the phase or rule that made it: ``dead_code``, a name of ``dsl._rules.RULES``,
        ``fold_slot``, ``ablation`` or ``round_constant``.
      before: the program before the step.
      after: the program after it.
      effect: one line: statements and slots removed, the update difference on the
        probe, or the fitness before and after.
      update_difference: largest relative difference of the probe updates between
        ``before`` and ``after`` (None for an ablation, judged by fitness).
      fitness_before: the fitness of ``before`` (ablation, rounding with ``evaluate``).
      fitness_after: the fitness of ``after``.
    """

    rule: str
    before: Program
    after: Program
    effect: str
    update_difference: float | None = None
    fitness_before: float | None = None
    fitness_after: float | None = None

    def diff(self) -> str:
        """A unified diff of the two programs' text (no file headers)."""
        lines = difflib.unified_diff(
            self.before.to_text().splitlines(), self.after.to_text().splitlines(), lineterm="", n=1
        )
        return "\n".join(line for line in lines if not line.startswith(("---", "+++")))


@dataclass(frozen=True)
class Simplification:
    """The result of ``simplify``: the program, the simplified program and every step."""

    original: Program
    program: Program
    steps: tuple[SimplificationStep, ...]
    fitness_before: float | None = None
    fitness_after: float | None = None

    def report(self) -> str:
        """Every step as a header line, its effect and its diff; then a summary line."""
        parts = []
        for number, step in enumerate(self.steps, start=1):
            parts.append(f"step {number}: {step.rule}: {step.effect}\n{step.diff()}")
        parts.append(self.summary())
        return "\n".join(parts) + "\n"

    def summary(self) -> str:
        before, after = self.original, self.program
        line = (
            f"{len(before.statements)} -> {len(after.statements)} statements, "
            f"{len(before.state)} -> {len(after.state)} state slots in {len(self.steps)} steps"
        )
        if self.fitness_before is not None:
            line += f"; fitness {self.fitness_before:.4f} -> {self.fitness_after:.4f}"
        return line


def simplify(
    program: Program | str,
    *,
    evaluate: Callable[[Program], float] | None = None,
    tolerance: float = FITNESS_TOLERANCE,
    update_tolerance: float = UPDATE_TOLERANCE,
    ablate: bool = True,
    round_constants: bool = True,
) -> Simplification:
    """Simplify ``program``: dead code, exact rewrites, then ablation and rounding.

    Args:
      program: a valid program or its text.
      evaluate: optional fitness (higher is better) of a program, e.g. a proxy task's
        fitness averaged over seeds; enables ablation and judges constant rounding.
      tolerance: fitness an ablation or a rounding may lose (with ``evaluate``).
      update_tolerance: largest relative difference of the probe updates for a rewrite
        (and, without ``evaluate``, a rounding) to count as equal.
      ablate: run the ablation phase (only with ``evaluate``).
      round_constants: run the rounding phase.
      Neither runs when ``evaluate`` gives a non-finite fitness (a failed run) for the
      program after phases 1-2.

    Returns:
      A ``Simplification`` with the final program and each step.

    Raises:
      ProgramError: if the program is not valid.
    """
    if isinstance(program, str):
        program = parse(program)
    _ = program.kinds  # type-check: raises ProgramError with the line
    run = _Run(evaluate, tolerance, update_tolerance)
    run.reference = run.updates(program)
    current = run.exact_phase(program)
    fitness_before = fitness_after = None
    if evaluate is not None:
        fitness_before = run.fitness(program)
        if not math.isfinite(run.fitness(current)):
            # A failed run (-inf) is not a level to stay within: nothing is judged by it.
            ablate, round_constants = False, False
    if evaluate is not None and ablate:
        ablated = run.ablation_phase(current)
        if ablated != current:
            run.reference = run.updates(ablated)  # ablation changes what the program computes
            current = run.exact_phase(ablated)
    if round_constants:
        rounded = run.rounding_phase(current)
        if rounded != current:
            current = run.exact_phase(rounded)
    if evaluate is not None:
        fitness_after = run.fitness(current)
    return Simplification(program, current, tuple(run.steps), fitness_before, fitness_after)


def cost(program: Program) -> tuple[int, int, int, int]:
    """What "simpler" means, compared in order: state slots, statements, costly calls, depth."""
    depth: dict[str, int] = {}
    total_depth = 0
    costly = 0
    for statement in program.statements:
        level = 1 + max((depth.get(a, 0) for a in statement.variables()), default=0)
        depth[statement.target] = level
        total_depth += level
        costly += statement.op not in _CHEAP_OPS
    return (len(program.state), len(program.statements), costly, total_depth)


def _counts(before: Program, after: Program) -> str:
    parts = []
    removed = len(before.statements) - len(after.statements)
    if removed:
        parts.append(f"{-removed:+d} statement(s)")
    gone = [name for name in before.state if name not in after.state]
    if len(after.state) < len(before.state):
        parts.append(f"-{len(before.state) - len(after.state)} state slot(s) ({', '.join(gone)})")
    return ", ".join(parts) or "same length"


class _Run:
    """The state of one ``simplify`` call: settings, recorded steps, cached fitness."""

    def __init__(self, evaluate, tolerance: float, update_tolerance: float):
        self.evaluate = evaluate
        self.tolerance = tolerance
        self.update_tolerance = update_tolerance
        self.steps: list[SimplificationStep] = []
        self._fitness: dict[str, float] = {}
        self._trajectories: dict[str, list[Trajectory]] = {}
        self._values: dict[str, list[Trajectory]] = {}
        self.reference: list[Trajectory] = []  # probe results every exact change is checked against

    def fitness(self, program: Program) -> float:
        key = program.to_text()
        if key not in self._fitness:
            self._fitness[key] = float(self.evaluate(program))
        return self._fitness[key]

    def updates(self, program: Program) -> list[Trajectory]:
        key = program.to_text()
        if key not in self._trajectories:
            self._trajectories[key] = trajectory(program)
        return self._trajectories[key]

    def values(self, program: Program) -> list[Trajectory]:
        key = program.to_text()
        if key not in self._values:
            self._values[key] = trajectory(program, every_value=True)
        return self._values[key]

    def record(self, rule, before, after, effect, **numbers) -> None:
        if len(self.steps) >= MAX_STEPS:
            raise RuntimeError(f"simplify made more than {MAX_STEPS} steps: a rule cycles")
        self.steps.append(SimplificationStep(rule, before, after, effect, **numbers))

    # ------------------------------------------------------------------ phases 1-2

    def exact_phase(self, program: Program) -> Program:
        """Dead code and verified rewrites until neither changes anything."""
        current = program
        while True:
            current = self._remove_dead(current)
            rewritten = self._first_rewrite(current, self.reference)
            if rewritten is None:
                return current
            current = rewritten

    def _remove_dead(self, program: Program) -> Program:
        pruned = Graph.of(program).pruned().to_program()
        if pruned is None or (pruned.statements == program.statements and pruned.state == program.state):
            return program
        change = difference(self.updates(program), self.updates(pruned))
        self.record(
            "dead_code",
            program,
            pruned,
            f"{_counts(program, pruned)}: cannot reach an update (update difference {change:.1g})",
            update_difference=change,
        )
        return pruned

    def _candidates(self, program: Program):
        """``(rule, detail, candidate program)`` for every rule at every node, in order."""
        graph = Graph.of(program)
        for index in range(len(graph.nodes)):
            for name, rule in RULES.items():
                rewritten = rule(graph, index)
                if rewritten is not None:
                    yield name, f"line {index + 2}", rewritten
        for detail, folded in slot_folds(graph):
            yield "fold_slot", detail, folded
        for detail, zeroed in zero_slots(graph):
            yield "zero_slot", detail, zeroed

    def _first_rewrite(self, program: Program, reference) -> Program | None:
        baseline = cost(program)
        for rule, detail, graph in self._candidates(program):
            candidate = graph.pruned().to_program()
            if candidate is None or cost(candidate) >= baseline:
                continue
            drift = difference(reference, self.updates(candidate))
            if drift > self.update_tolerance:
                continue
            change = difference(self.updates(program), self.updates(candidate))
            self.record(
                rule,
                program,
                candidate,
                f"{detail}: {_counts(program, candidate)}; update difference {change:.1g}",
                update_difference=change,
            )
            return candidate
        return None

    # ------------------------------------------------------------------ phase 3

    def ablation_phase(self, program: Program) -> Program:
        """Remove statements whose removal costs less than ``tolerance`` in fitness."""
        reference = self.fitness(program)
        current = program
        index = 0
        while index < len(current.statements):
            best = None
            for candidate in _removals(current, index):
                score = self.fitness(candidate)
                if score >= reference - self.tolerance and (best is None or score > best[0]):
                    best = (score, candidate)
            if best is None:
                index += 1
                continue
            score, candidate = best
            statement = current.statements[index].to_text()
            before_score = self.fitness(current)
            self.record(
                "ablation",
                current,
                candidate,
                f"removed '{statement}' ({_counts(current, candidate)}): "
                f"fitness {before_score:.4f} -> {score:.4f} (start {reference:.4f})",
                fitness_before=before_score,
                fitness_after=score,
            )
            current = candidate
            index = 0  # a removal can make an earlier statement removable
        return current

    # ------------------------------------------------------------------ phase 4

    def rounding_phase(self, program: Program) -> Program:
        """Each constant to the fewest significant digits that keep the program as good."""
        reference_fitness = self.fitness(program) if self.evaluate is not None else None
        current = program
        for index, statement in enumerate(program.statements):
            for position, arg in enumerate(statement.args):
                if not is_constant(arg):
                    continue
                for rounded in _roundings(arg):
                    candidate = current.with_argument(index, position, rounded)
                    change = difference(self.reference, self.updates(candidate))
                    if reference_fitness is None:
                        # Every value, not only the outputs: sign(m) hides a changed m.
                        change = max(change, difference(self.values(program), self.values(candidate)))
                        accepted = change <= self.update_tolerance
                        score = None
                    else:
                        score = self.fitness(candidate)
                        accepted = score >= reference_fitness - self.tolerance
                    if not accepted:
                        continue
                    effect = f"line {index + 2}: {arg!r} -> {rounded!r}; update difference {change:.1g}"
                    numbers = {"update_difference": change}
                    if score is not None:
                        before_score = self.fitness(current)
                        effect += f"; fitness {before_score:.4f} -> {score:.4f}"
                        numbers.update(fitness_before=before_score, fitness_after=score)
                    self.record("round_constant", current, candidate, effect, **numbers)
                    current = candidate
                    break
        return current


def _roundings(value: float) -> list[float]:
    """``value`` to 1, 2, ... significant digits, shortest first, up to (not including) itself."""
    roundings = []
    for digits in range(1, 17):
        rounded = float(f"{value:.{digits}g}")
        if rounded == value:
            break
        roundings.append(rounded)
    return roundings


def _removals(program: Program, index: int) -> list[Program]:
    """Ways to remove statement ``index``: its readers read one of its arguments instead."""
    graph = Graph.of(program)
    node = graph.nodes[index]
    candidates = []
    seen = set()
    for arg in node.args:
        if is_constant(arg) or arg in seen:
            continue
        seen.add(arg)
        removed = graph.redirected(index, arg).pruned().to_program()
        if removed is not None and len(removed.statements) < len(program.statements):
            candidates.append(removed)
    return candidates
