"""What a search run did and found, read from its run directory's files alone.

Only the files are read (``individuals.jsonl``, ``meta_validation.jsonl``, ``config.yaml``
and the ``counts`` of ``checkpoint.json``), never the search's objects, and nothing is
written, so a run can be inspected while it runs, after a kill, or from another machine.

The populations are not in the log, but regularized evolution makes them a function of
it: each island starts as P copies of the warm start; a child joins its island and the
oldest member leaves; an island that has not improved its best for ``restart_after``
children is refilled with P copies of the best program so far (arXiv:2302.06675,
section 3). ``population_history`` replays that, and ``inspect`` checks its number of
restarts against the checkpoint's count.
"""

from __future__ import annotations

import difflib
import json
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import dsl
from dsl import Program, analyze, parse

from ._config import Config, ConfigError
from ._rundir import INDIVIDUALS, META_VALIDATION, RunDirectory, RunDirectoryError


class InspectError(RuntimeError):
    """A run directory or an individual that cannot be inspected."""


@dataclass(frozen=True)
class Run:
    """The files of one run directory, read once.

    Attributes:
      path: the run directory.
      config: its resolved configuration.
      individuals: the lines of ``individuals.jsonl`` in ``seq`` order.
      meta_validations: the lines of ``meta_validation.jsonl`` in ``seq`` order.
      counts: the checkpoint's ``counts`` (mutation attempts, restarts, ...), or None
        without a checkpoint. They cover the log up to ``checkpoint_seq`` only.
      checkpoint_seq: the last ``seq`` the checkpoint covers (None without one).
      elapsed_seconds: the wall time the checkpoint records (None without one).
    """

    path: Path
    config: Config
    individuals: list[dict]
    meta_validations: list[dict]
    counts: dict | None = None
    checkpoint_seq: int | None = None
    elapsed_seconds: float | None = None
    _by_id: dict[int, dict] = field(default_factory=dict, repr=False, compare=False)

    def individual(self, individual_id: int) -> dict:
        """The log line of individual ``individual_id``.

        Raises:
          InspectError: if the log has no such individual.
        """
        if not self._by_id:
            self._by_id.update((r["id"], r) for r in self.individuals)
        if individual_id not in self._by_id:
            last = len(self.individuals) - 1
            raise InspectError(f"{self.path}: no individual {individual_id} in the log (ids 0..{last})")
        return self._by_id[individual_id]

    def best(self) -> dict:
        """The line of the fittest individual (the first one on a tie, as the search keeps it)."""
        if not self.individuals:
            raise InspectError(f"{self.path}: no individual has been recorded yet")
        return max(self.individuals, key=lambda r: (fitness_of(r), -r["seq"]))


def read_run(path: str | Path) -> Run:
    """Read a run directory.

    Raises:
      InspectError: if ``path`` is not a readable run directory.
    """
    try:
        rundir = RunDirectory.open(path)
        config = rundir.config()
        individuals = sorted(_read_complete_lines(rundir.path / INDIVIDUALS), key=lambda r: r["seq"])
        meta = sorted(_read_complete_lines(rundir.path / META_VALIDATION), key=lambda r: r["seq"])
        checkpoint = rundir.read_checkpoint() or {}
    except (RunDirectoryError, ConfigError, OSError, ValueError) as error:  # ValueError: bad JSON
        raise InspectError(str(error)) from None
    return Run(
        Path(path),
        config,
        individuals,
        meta,
        checkpoint.get("counts"),
        checkpoint.get("seq"),
        checkpoint.get("elapsed_seconds"),
    )


def _read_complete_lines(file: Path) -> list[dict]:
    """The complete JSON lines of a log, leaving the file alone.

    Unlike ``RunDirectory.read_log``, which cuts a torn last line off (right for resume),
    this only skips it: the search may be writing that line right now.
    """
    if not file.is_file():
        return []
    data = file.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    return [json.loads(line) for line in complete.decode("utf-8").splitlines() if line]


def fitness_of(record: dict) -> float:
    """A log line's fitness, ``-inf`` for a failed run (the log writes None)."""
    fitness = record.get("fitness")
    return -math.inf if fitness is None else float(fitness)


# -- the summary --------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """What the run spent and how its search went.

    Attributes:
      individuals: individuals recorded (the warm start and cache hits included).
      children: valid children recorded (every individual but the warm start).
      evaluated: trainings (cache misses), the warm start included.
      failed: trainings that failed (NaN, divergence).
      hash_hits: children whose functional hash was in the cache.
      fingerprint_hits: children whose probe fingerprint was in the cache.
      redundant_fraction: the mean share of redundant statements over the children.
      generated: mutation attempts, invalid ones included (from the checkpoint; None without one).
      restarts: restarts replayed from the log, as ``(position, island)`` pairs.
      budgets: ``(name, spent, limit)`` for programs, evaluations and wall seconds.
    """

    individuals: int
    children: int
    evaluated: int
    failed: int
    hash_hits: int
    fingerprint_hits: int
    redundant_fraction: float
    generated: int | None
    restarts: list[tuple[int, int]]
    budgets: list[tuple[str, float | None, float | None]]

    @property
    def cache_hit_rate(self) -> float:
        """Cache hits per valid child (NaN before the first child)."""
        return (self.hash_hits + self.fingerprint_hits) / self.children if self.children else math.nan


def summarize(run: Run) -> Summary:
    """Counts and budgets of ``run``, from its log (and the checkpoint for what the log lacks)."""
    records = run.individuals
    children = [r for r in records if r["mutation"] != "initial"]
    trained = [r for r in records if r["cache_hit"] is None]
    fractions = [r["redundant_fraction"] for r in children if r["redundant_fraction"] is not None]
    budget = run.config.budget
    return Summary(
        individuals=len(records),
        children=len(children),
        evaluated=len(trained),
        failed=sum(r["failure"] is not None for r in trained),
        hash_hits=sum(r["cache_hit"] == "hash" for r in records),
        fingerprint_hits=sum(r["cache_hit"] == "fingerprint" for r in records),
        redundant_fraction=float(np.mean(fractions)) if fractions else math.nan,
        generated=None if run.counts is None else run.counts.get("generated"),
        restarts=population_history(run).restarts,
        budgets=[
            ("programs", len(records), budget.programs),
            ("evaluations", len(trained), budget.evaluations),
            ("wall seconds", run.elapsed_seconds, budget.wall_seconds),
        ],
    )


# -- populations --------------------------------------------------------------------------


@dataclass(frozen=True)
class PopulationHistory:
    """Fitness over the search, one entry per recorded individual (in log order).

    Attributes:
      best: the best fitness so far after each individual.
      medians: per island, the median fitness of its population after each individual
        (``-inf`` when more than half of it failed).
      restarts: ``(position, island)``: the individual at ``position`` (0-based, in log
        order) made ``island`` restart from the best.
    """

    best: np.ndarray
    medians: np.ndarray  # shape (islands, individuals)
    restarts: list[tuple[int, int]]


def population_history(run: Run) -> PopulationHistory:
    """Replay the islands' populations from the log (see the module docstring)."""
    search = run.config.search
    size, n_islands = search.population_size, search.parallel_searches
    records = run.individuals
    best = np.full(len(records), -np.inf)
    medians = np.full((n_islands, len(records)), -np.inf)
    populations = [deque() for _ in range(n_islands)]
    island_best = [-math.inf] * n_islands
    since = [0] * n_islands
    restarts = []
    best_so_far = -math.inf
    for position, record in enumerate(records):
        fitness = fitness_of(record)
        best_so_far = max(best_so_far, fitness)
        if record["mutation"] == "initial":
            for island in range(n_islands):
                populations[island] = deque([fitness] * size)
                island_best[island] = fitness
        elif search.mode != "random":
            island = record["island"]
            populations[island].append(fitness)
            if len(populations[island]) > size:
                populations[island].popleft()
            if fitness > island_best[island]:
                island_best[island], since[island] = fitness, 0
            else:
                since[island] += 1
            if search.restart_after is not None and since[island] >= search.restart_after:
                populations[island] = deque([best_so_far] * size)
                island_best[island], since[island] = best_so_far, 0
                restarts.append((position, island))
        best[position] = best_so_far
        for island, population in enumerate(populations):
            if population:
                medians[island, position] = np.median(population)
    return PopulationHistory(best, medians, restarts)


# -- halls of fame ------------------------------------------------------------------------


def live_length(record: dict) -> int:
    """Statements that can affect an update (the length after pruning redundant ones)."""
    fraction = record["redundant_fraction"] or 0.0
    return round(record["length"] * (1.0 - fraction))


def best_by_length(run: Run) -> list[tuple[dict, bool]]:
    """The fittest individual for each live length, shortest first (a Pareto view).

    Returns:
      ``(record, on_front)`` pairs; ``on_front`` is True when the record is fitter than
      every shorter one (it is on the front of fitness against length).
    """
    best: dict[int, dict] = {}
    for record in run.individuals:
        length = live_length(record)
        if length not in best or fitness_of(record) > fitness_of(best[length]):
            best[length] = record
    rows, front = [], -math.inf
    for length in sorted(best):
        record = best[length]
        on_front = fitness_of(record) > front
        front = max(front, fitness_of(record))
        rows.append((record, on_front))
    return rows


def best_per_island(run: Run) -> list[dict | None]:
    """The fittest individual bred on each island (the warm start counts for island 0)."""
    best: list[dict | None] = [None] * run.config.search.parallel_searches
    for record in run.individuals:
        island = record["island"]
        if 0 <= island < len(best) and (
            best[island] is None or fitness_of(record) > fitness_of(best[island])
        ):
            best[island] = record
    return best


# -- one individual -----------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step of a lineage: ``record`` bred from ``parent`` by ``record["mutation"]``.

    Attributes:
      record: the child's log line.
      parent: the parent's log line (None for the warm start).
      removed: ``(line, text)`` of the parent's lines the mutation removed or changed.
      added: ``(line, text)`` of the child's lines it added or changed.
    """

    record: dict
    parent: dict | None
    removed: list[tuple[int, str]]
    added: list[tuple[int, str]]


def lineage(run: Run, individual_id: int) -> list[Step]:
    """The chain of parents from the warm start to ``individual_id``, warm start first.

    Raises:
      InspectError: if an id is not in the log or the chain of parents loops.
    """
    chain = [run.individual(individual_id)]
    while chain[-1]["parent"] is not None:
        if len(chain) > len(run.individuals):
            raise InspectError(f"{run.path}: the parents of individual {individual_id} form a loop")
        chain.append(run.individual(chain[-1]["parent"]))
    chain.reverse()
    steps = [Step(chain[0], None, [], [])]
    for parent, child in zip(chain, chain[1:], strict=False):  # consecutive pairs
        removed, added = program_diff(parent["program"], child["program"])
        steps.append(Step(child, parent, removed, added))
    return steps


def program_diff(before: str, after: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """The lines of ``before`` removed or changed and the lines of ``after`` added or changed.

    Returns:
      ``(removed, added)``, each a list of ``(line number, text)`` (1-based, text stripped).
    """
    old, new = before.splitlines(), after.splitlines()
    removed, added = [], []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            removed += [(i + 1, old[i].strip()) for i in range(i1, i2)]
            added += [(j + 1, new[j].strip()) for j in range(j1, j2)]
    return removed, added


def marked_program(program: Program | str) -> str:
    """The program's text with ``# redundant`` after each statement that cannot affect an update."""
    program = parse(program) if isinstance(program, str) else program
    text = program.to_text()
    analysis = analyze(program)
    if not analysis.valid:
        return text
    lines = text.splitlines()
    width = max(len(line) for line in lines)
    for index in analysis.redundant:
        line = index + 1  # ``text`` is the canonical text: the signature, then one line per statement
        lines[line] = f"{lines[line]:<{width}}  # redundant"
    return "\n".join(lines) + "\n"


def closest_optimizer_report(program: Program) -> str:
    """``dsl.closest_optimizer(program).report()``: the known optimizer nearest to ``program``."""
    return dsl.closest_optimizer(program).report()
