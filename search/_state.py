"""The state of a search: everything a checkpoint holds, serialized by one function pair.

``SearchState.to_dict`` / ``SearchState.from_dict`` are the only (de)serialization of the
search. The fitness cache is not part of the state: it is a function of the log (every
trained program's hash, fingerprint and result is a log line), so a resume rebuilds it
from the log and a checkpoint's size does not grow with the number of programs seen.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, fields

import numpy as np

from dsl import Program, analyze, parse
from proxy_tasks import WORST_FITNESS

from ._records import finite_or_none, none_to_nan, none_to_worst


class SearchError(RuntimeError):
    """The search cannot go on (no valid child can be bred, an inconsistent run directory)."""


@dataclass(kw_only=True)
class Pending:
    """A bred individual (or a meta-validation) waiting for its evaluation.

    Attributes:
      id: the individual's id (>= 0), or a meta-validation job's id (< 0).
      parent: the parent's id (None for the warm start and random programs).
      island: the population it joins (-1 for a meta-validation).
      mutation: how it was made (``"initial"``, a mutation kind, ``"random"``,
        ``"meta_validation"``).
      program: the program to train.
      hash: its functional hash (empty for a meta-validation).
      fingerprint: its numeric fingerprint, if computed (on a hash miss).
      redundant_fraction: the share of its statements that do not reach the outputs.
      meta_of: for a meta-validation job, the individual it re-evaluates.
      search_fitness: for a meta-validation job, that individual's search fitness.
    """

    id: int
    parent: int | None
    island: int
    mutation: str
    program: Program
    hash: str
    fingerprint: str | None
    redundant_fraction: float
    meta_of: int | None = None
    search_fitness: float = WORST_FITNESS


@dataclass
class Member:
    """A population member: what the tournament and mutation need.

    ``live_statements`` counts the statements that reach an update (``dsl.analyze``'s
    non-redundant ones): the length a parsimony tournament compares.
    """

    program: Program
    fitness: float
    hash: str
    live_statements: int


def live_statement_count(program: Program, redundant_fraction: float | None = None) -> int:
    """Statements of ``program`` that are not redundant.

    Args:
      program: a valid program.
      redundant_fraction: its ``Facts.redundant_fraction`` (the redundant count over the
        statement count, so the count is recovered exactly); None or NaN analyzes the program.
    """
    statements = len(program.statements)
    if redundant_fraction is None or math.isnan(redundant_fraction):
        return statements - len(analyze(program).redundant)
    return statements - round(redundant_fraction * statements)


@dataclass
class Island:
    """One independent population (a "parallel restart")."""

    members: deque = field(default_factory=deque)  # individual ids, oldest first
    best_fitness: float = WORST_FITNESS
    since_improvement: int = 0


@dataclass(frozen=True)
class Best:
    """The fittest individual so far (the first of equals)."""

    id: int
    program: Program
    fitness: float


@dataclass
class Counts:
    """What the search has done so far (the basis of the cache hit rate and the budgets)."""

    generated: int = 0  # mutation attempts / random programs drawn
    valid: int = 0  # children that type-check and differ from their parent
    hash_hits: int = 0
    fingerprint_hits: int = 0
    evaluated: int = 0  # trained (cache misses)
    failed: int = 0  # trained and failed (NaN, divergence, ...)
    individuals: int = 0  # recorded individuals, cache hits included
    restarts: int = 0
    meta_validations: int = 0
    redundant_sum: float = 0.0
    redundant_count: int = 0


@dataclass
class SearchState:
    """Everything the search needs to go on exactly where it stopped.

    Attributes:
      rng: the search's Generator (tournaments, mutations, random programs).
      islands: the independent populations.
      members: the programs behind the islands' ids (and possibly a few no longer in
        any island; only referenced ones are saved).
      in_flight: jobs bred or started and not yet recorded, by job id.
      best: the fittest individual so far.
      counts: the counters.
      seq: the ``seq`` of the last log line this state includes.
      capacity: jobs kept in flight (the evaluator's capacity when they were bred).
      next_id: the id of the next individual.
      next_island: the island the next child is bred for (round robin).
      next_meta_at: the evaluation count at which the next meta-validation is due.
      last_meta_validated: the individual the last meta-validation evaluated.
      started: whether the warm start was bred.
      finished: whether the run reached its budget and recorded everything.
      elapsed_seconds: wall time of the run up to the last checkpoint.
    """

    rng: np.random.Generator
    islands: list[Island]
    members: dict[int, Member] = field(default_factory=dict)
    in_flight: dict[int, Pending] = field(default_factory=dict)
    best: Best | None = None
    counts: Counts = field(default_factory=Counts)
    seq: int = 0
    capacity: int = 1
    next_id: int = 0
    next_island: int = 0
    next_meta_at: int = 0
    last_meta_validated: int | None = None
    started: bool = False
    finished: bool = False
    elapsed_seconds: float = 0.0

    @classmethod
    def initial(cls, seed: int, islands: int, next_meta_at: int) -> SearchState:
        """The state before the warm start."""
        return cls(
            rng=np.random.default_rng(seed),
            islands=[Island() for _ in range(islands)],
            next_meta_at=next_meta_at,
        )

    def to_dict(self) -> dict:
        """JSON-safe form (non-finite floats become None)."""
        referenced = set().union(*(set(island.members) for island in self.islands))
        best = self.best
        return {
            "seq": self.seq,
            "capacity": self.capacity,
            "next_id": self.next_id,
            "next_island": self.next_island,
            "next_meta_at": self.next_meta_at,
            "last_meta_validated": self.last_meta_validated,
            "started": self.started,
            "finished": self.finished,
            "elapsed_seconds": self.elapsed_seconds,
            "rng": self.rng.bit_generator.state,
            "counts": vars(self.counts),
            "islands": [
                {
                    "members": list(island.members),
                    "best_fitness": finite_or_none(island.best_fitness),
                    "since": island.since_improvement,
                }
                for island in self.islands
            ],
            "members": {
                str(k): {
                    "program": m.program.to_text(),
                    "fitness": finite_or_none(m.fitness),
                    "hash": m.hash,
                    "live_statements": m.live_statements,
                }
                for k, m in self.members.items()
                if k in referenced
            },
            "in_flight": [
                {
                    "id": p.id,
                    "parent": p.parent,
                    "island": p.island,
                    "mutation": p.mutation,
                    "program": p.program.to_text(),
                    "hash": p.hash,
                    "fingerprint": p.fingerprint,
                    "redundant_fraction": finite_or_none(p.redundant_fraction),
                    "meta_of": p.meta_of,
                    "search_fitness": finite_or_none(p.search_fitness),
                }
                for p in self.in_flight.values()
            ],
            "best": None
            if best is None
            else {"id": best.id, "program": best.program.to_text(), "fitness": finite_or_none(best.fitness)},
        }

    @classmethod
    def from_dict(cls, data: dict) -> SearchState:
        """Inverse of ``to_dict``.

        Raises:
          KeyError, TypeError, ValueError: if ``data`` is not a state this version wrote.
        """
        texts: dict[str, Program] = {}

        def program_of(text: str) -> Program:  # the copies of a program share one parsed Program
            if text not in texts:
                texts[text] = parse(text)
            return texts[text]

        def member_of(entry: dict) -> Member:
            program = program_of(entry["program"])
            live = entry.get("live_statements")  # absent from checkpoints written before parsimony
            return Member(
                program,
                none_to_worst(entry["fitness"]),
                entry["hash"],
                live_statement_count(program) if live is None else live,
            )

        rng = np.random.default_rng()
        rng.bit_generator.state = data["rng"]
        best = data["best"]
        counts = Counts(**{f.name: data["counts"][f.name] for f in fields(Counts)})
        return cls(
            rng=rng,
            islands=[
                Island(deque(i["members"]), none_to_worst(i["best_fitness"]), i["since"])
                for i in data["islands"]
            ],
            members={int(k): member_of(m) for k, m in data["members"].items()},
            in_flight={
                p["id"]: Pending(
                    id=p["id"],
                    parent=p["parent"],
                    island=p["island"],
                    mutation=p["mutation"],
                    program=program_of(p["program"]),
                    hash=p["hash"],
                    fingerprint=p["fingerprint"],
                    redundant_fraction=none_to_nan(p["redundant_fraction"]),
                    meta_of=p["meta_of"],
                    search_fitness=none_to_worst(p.get("search_fitness")),
                )
                for p in data["in_flight"]
            },
            best=None
            if best is None
            else Best(
                id=best["id"], program=program_of(best["program"]), fitness=none_to_worst(best["fitness"])
            ),
            counts=counts,
            seq=int(data["seq"]),
            capacity=int(data["capacity"]),
            next_id=int(data["next_id"]),
            next_island=int(data["next_island"]),
            next_meta_at=int(data["next_meta_at"]),
            last_meta_validated=data["last_meta_validated"],
            started=bool(data["started"]),
            finished=bool(data["finished"]),
            elapsed_seconds=float(data["elapsed_seconds"]),
        )
