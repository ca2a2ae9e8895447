"""Regularized (aging) evolution over programs, asynchronous and steady state (PAPER.md section 3).

``Search`` keeps ``capacity`` candidates in flight on an ``Evaluator``. Each time one
completes it joins its population (the oldest member leaves) and a new child is bred:
a tournament of T members picks a parent, the parent is mutated until the child is valid
and its functional hash differs, the fitness cache is asked (hash, then fingerprint) and
only a miss is trained. A cache hit is an individual too, recorded at once.

Also here: the warm start (the initial program evaluated once, then copied P times),
parallel independent populations, restart from the best after a plateau, the
constants-only and random-search baselines, meta-validation of the current best on a
larger task, budgets, checkpoints and exact resume.

Resume: every event that changes the state (an individual recorded, a meta-validation)
is one log line with a ``seq``; a checkpoint stores the state and the ``seq`` it covers.
The search is a deterministic function of its RNG and of the order of completions, so
``resume`` loads the checkpoint and replays the log lines after it through the very same
code (the log supplies the completions instead of the evaluator), checking that every
regenerated individual matches its line. Then the jobs still in flight are resubmitted.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from dsl import Program, fingerprint, parse, prune
from dsl._random import random_program
from dsl.library import load_program
from proxy_tasks._task import Result

from ._cache import FitnessCache, analyze_program, result_from_dict, result_to_dict
from ._config import Config
from ._evaluator import WORST_FITNESS, Completed, Evaluator, sanitize
from ._mutation import MutationSettings, mutate
from ._progress import Progress
from ._rundir import INDIVIDUALS, META_VALIDATION, RunDirectory

MAX_BREED_ATTEMPTS = 10_000


def mutation_settings(config: Config) -> MutationSettings:
    """The ``MutationSettings`` of ``config`` (constants-only mode: ``mutate_constant`` alone)."""
    mutation = config.mutation
    return MutationSettings(
        weights=(
            {"mutate_constant": 1.0} if config.search.mode == "constants_only" else dict(mutation.weights)
        ),
        max_length=mutation.max_length,
        constant_probability=mutation.constant_probability,
        constant_reset_probability=mutation.constant_reset_probability,
    )


class SearchError(RuntimeError):
    """The search cannot go on (no valid child can be bred, an inconsistent run directory)."""


@dataclass
class Pending:
    """A bred individual (or a meta-validation) waiting for its evaluation."""

    id: int
    parent: int | None
    island: int
    mutation: str
    program: Program
    hash: str
    fingerprint: str | None
    redundant_fraction: float
    meta_of: int | None = None  # for a meta-validation job: the individual it re-evaluates

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "parent": self.parent,
            "island": self.island,
            "mutation": self.mutation,
            "program": self.program.to_text(),
            "hash": self.hash,
            "fingerprint": self.fingerprint,
            "redundant_fraction": _finite_or_none(self.redundant_fraction),
            "meta_of": self.meta_of,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Pending:
        return cls(
            id=data["id"],
            parent=data["parent"],
            island=data["island"],
            mutation=data["mutation"],
            program=parse(data["program"]),
            hash=data["hash"],
            fingerprint=data["fingerprint"],
            redundant_fraction=_none_to_nan(data["redundant_fraction"]),
            meta_of=data["meta_of"],
        )


@dataclass
class Member:
    """A population member: what the tournament and mutation need."""

    program: Program
    fitness: float
    hash: str


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
class Island:
    """One independent population (a "parallel restart")."""

    members: deque = field(default_factory=deque)  # individual ids, oldest first
    best_fitness: float = WORST_FITNESS
    since_improvement: int = 0


class Search:
    """One search run over a run directory.

    Args:
      config: the run's configuration.
      rundir: where logs and checkpoints go.
      progress: the status line (``Progress(quiet=True)`` for none).
    """

    def __init__(self, config: Config, rundir: RunDirectory, progress: Progress | None = None):
        self.config = config
        self.rundir = rundir
        self.progress = progress or Progress(quiet=True)
        self.settings = mutation_settings(config)
        self.initial_program = load_program(config.search.initial_program)
        self.rng = np.random.default_rng(config.seed)
        self.cache = FitnessCache()
        self.counts = Counts()
        self.islands = [Island() for _ in range(config.search.parallel_searches)]
        self.members: dict[int, Member] = {}
        self.in_flight: dict[int, Pending] = {}
        self.best: tuple[int, Program, float] | None = None
        self.seq = 0
        self.next_id = 0
        self.next_island = 0
        self.next_meta_at = config.meta_validation.every
        self.last_meta_validated: int | None = None
        self.started = False
        self.finished = False
        self.elapsed_before = 0.0
        self._session_start = time.monotonic()
        self._replay: deque[dict] = deque()
        self._submitted: set[int] = set()
        self._done: deque[Completed] = deque()
        self._since_checkpoint = 0
        self._best_changed = False
        self.capacity = 1

    # -- the loop -----------------------------------------------------------------------

    def run(self, evaluator: Evaluator) -> None:
        """Breed and evaluate until a budget is reached and nothing is in flight.

        A KeyboardInterrupt stops it at once without a checkpoint: the log already holds
        every completed individual, and ``resume`` replays it.
        """
        self._session_start = time.monotonic()
        if not self.rundir.has_checkpoint():  # (resume has read it already; it may be large)
            self.capacity = evaluator.capacity
            self.checkpoint()  # resume always starts from a checkpoint, if only this empty one
        while True:
            # replayed events happened with the capacity of their run; new ones use this one
            if not self._replay:
                self.capacity = evaluator.capacity
            self._fill()
            if not self.in_flight:
                break
            completion = self._next_completion(evaluator)
            self._complete(completion)
            if self._best_changed and not self._replay:
                self._write_best()
            self.progress.update(self.stats())
            if not self._replay and self._since_checkpoint >= self.config.run.checkpoint_every:
                self.checkpoint()
        self.finished = True
        if self._best_changed:
            self._write_best()
        self.checkpoint()
        self.progress.update(self.stats(), force=True)
        self.progress.close()

    def _next_completion(self, evaluator: Evaluator) -> Completed:
        if self._replay:
            return self._replayed_completion()
        if not self._done:
            for job_id, pending in self.in_flight.items():
                if len(self._submitted) >= evaluator.capacity:
                    break
                if job_id not in self._submitted:
                    task = self.config.meta_validation.task if pending.meta_of is not None else None
                    evaluator.submit(job_id, pending.program, self.config.task.seed, task)
                    self._submitted.add(job_id)
            done = evaluator.wait()
            if not done:
                raise SearchError("the evaluator returned nothing while jobs were in flight")
            self._done.extend(done)
        return self._done.popleft()

    def _fill(self) -> None:
        while len(self.in_flight) < self.capacity:
            if self._meta_due():
                self._start_meta_validation()
            elif not self.started:
                self._start()
            elif self._may_breed():
                self._breed()
            else:
                return

    # -- budgets ------------------------------------------------------------------------

    def elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self._session_start)

    def _may_breed(self) -> bool:
        if self.config.search.mode != "random" and not self.islands[self.next_island].members:
            return False  # the warm start is still being evaluated
        budget = self.config.budget
        in_flight = sum(1 for p in self.in_flight.values() if p.meta_of is None)
        if budget.programs is not None and self.counts.individuals + in_flight >= budget.programs:
            return False
        if budget.evaluations is not None and self.counts.evaluated + in_flight >= budget.evaluations:
            return False
        # wall time is not a function of the log: while replaying, the log decides
        if not self._replay and budget.wall_seconds is not None and self.elapsed() >= budget.wall_seconds:
            return False
        return True

    # -- breeding -----------------------------------------------------------------------

    def _start(self) -> None:
        """The warm start: evaluate the initial program once (it is copied on completion)."""
        self.started = True
        facts = analyze_program(self.initial_program)
        if not facts.valid:
            raise SearchError(f"the initial program is invalid: {facts.error}")
        self._new_individual(None, 0, "initial", self.initial_program, facts)

    def _breed(self) -> None:
        island = self.next_island
        self.next_island = (island + 1) % len(self.islands)
        random_mode = self.config.search.mode == "random"
        # One tournament per child: its winner is mutated again until a child is valid (PAPER.md).
        parent_id = None if random_mode else self._tournament(self.islands[island])
        parent = None if random_mode else self.members[parent_id]
        for _ in range(MAX_BREED_ATTEMPTS):
            self.counts.generated += 1
            if random_mode:
                length = int(self.rng.integers(1, self.config.search.random_max_length + 1))
                child = random_program(self.rng, length, state_slots=len(self.initial_program.state))
                mutation, parent_hash = "random", None
            else:
                child, mutation = mutate(self.rng, parent.program, self.settings)
                parent_hash = parent.hash
            facts = analyze_program(child)
            if facts.valid and facts.hash != parent_hash:
                break
        else:
            raise SearchError(
                f"no valid child that differs from its parent in {MAX_BREED_ATTEMPTS} attempts "
                f"(mode {self.config.search.mode}, mutation weights {self.settings.weights})"
            )
        self.counts.valid += 1
        if not math.isnan(facts.redundant_fraction):
            self.counts.redundant_sum += facts.redundant_fraction
            self.counts.redundant_count += 1
        self._new_individual(parent_id, island, mutation, child, facts)

    def _tournament(self, island: Island) -> int:
        """The fittest of T members sampled without replacement (ties: the first sampled)."""
        members = island.members
        picks = self.rng.choice(len(members), size=self.config.search.tournament_size, replace=False)
        best_id, best_fitness = None, None
        for index in picks:
            member_id = members[int(index)]
            fitness = self.members[member_id].fitness
            if best_id is None or fitness > best_fitness:
                best_id, best_fitness = member_id, fitness
        return best_id

    def _new_individual(
        self, parent: int | None, island: int, mutation: str, program: Program, facts
    ) -> None:
        individual_id = self.next_id
        self.next_id += 1
        result, hit, probe = self.cache.lookup(facts.hash, lambda: fingerprint(facts.analysis))
        pending = Pending(
            individual_id, parent, island, mutation, program, facts.hash, probe, facts.redundant_fraction
        )
        if result is None:
            self.in_flight[individual_id] = pending
        else:
            self._record(pending, result, worker=None, cache_hit=hit)

    def _meta_due(self) -> bool:
        return (
            self.config.meta_validation.task is not None
            and self.best is not None
            and self.counts.evaluated >= self.next_meta_at
            and not any(p.meta_of is not None for p in self.in_flight.values())
        )

    def _start_meta_validation(self) -> None:
        self.next_meta_at = self.counts.evaluated + self.config.meta_validation.every
        best_id, program, _ = self.best
        if best_id == self.last_meta_validated:
            return  # the same program again would give the same number
        self.last_meta_validated = best_id
        job_id = -(self.counts.meta_validations + 1)  # individuals use ids >= 0
        self.counts.meta_validations += 1
        self.in_flight[job_id] = Pending(
            job_id, None, -1, "meta_validation", program, "", None, math.nan, best_id
        )

    # -- completions --------------------------------------------------------------------

    def _complete(self, completion: Completed) -> None:
        pending = self.in_flight.pop(completion.job_id)
        self._submitted.discard(completion.job_id)
        result = sanitize(completion.result)
        if pending.meta_of is not None:
            self._record_meta(pending, result, completion.worker)
        else:
            self._record(pending, result, completion.worker, cache_hit=None)

    def _record(self, pending: Pending, result: Result, worker: str | None, cache_hit: str | None) -> None:
        self.seq += 1
        self._since_checkpoint += 1
        record = {
            "seq": self.seq,
            "id": pending.id,
            "parent": pending.parent,
            "island": pending.island,
            "mutation": pending.mutation,
            "program": pending.program.to_text(),
            "length": len(pending.program.statements),
            "hash": pending.hash,
            "fingerprint": pending.fingerprint,
            "redundant_fraction": _finite_or_none(pending.redundant_fraction),
            **result_to_dict(result),
            "seconds": result.seconds if cache_hit is None else 0.0,
            "worker": worker,
            "cache_hit": cache_hit,
        }
        self._emit(record, INDIVIDUALS)
        counts = self.counts
        counts.individuals += 1
        if cache_hit is None:
            counts.evaluated += 1
            counts.failed += result.failed
            self.cache.store(pending.hash, pending.fingerprint, result)
        elif cache_hit == "hash":
            counts.hash_hits += 1
        else:
            counts.fingerprint_hits += 1
        member = Member(pending.program, result.fitness, pending.hash)
        if self.best is None or result.fitness > self.best[2]:
            self.best = (pending.id, pending.program, result.fitness)
            self._best_changed = True  # best.txt is rewritten after this event (not mid-replay)
        if pending.mutation == "initial":
            self.members[pending.id] = member
            for island in self.islands:
                island.members.extend([pending.id] * self.config.search.population_size)
                island.best_fitness = result.fitness
            return
        if self.config.search.mode == "random":
            return
        self._join(self.islands[pending.island], pending.id, member)

    def _join(self, island: Island, member_id: int, member: Member) -> None:
        self.members[member_id] = member
        island.members.append(member_id)
        if len(island.members) > self.config.search.population_size:
            island.members.popleft()
        if member.fitness > island.best_fitness:
            island.best_fitness = member.fitness
            island.since_improvement = 0
        else:
            island.since_improvement += 1
        restart_after = self.config.search.restart_after
        if restart_after is not None and island.since_improvement >= restart_after:
            self._restart_from_best(island)
        self._forget_unreferenced()

    def _restart_from_best(self, island: Island) -> None:
        """Refill ``island`` with copies of the best program so far (a plateau restart)."""
        best_id, program, fitness = self.best
        if best_id not in self.members:
            self.members[best_id] = Member(program, fitness, analyze_program(program).hash)
        island.members = deque([best_id] * self.config.search.population_size)
        island.best_fitness = fitness
        island.since_improvement = 0
        self.counts.restarts += 1
        if not self._replay:
            self.progress.message(f"restart from the best (individual {best_id}, fitness {fitness:.4f})")

    def _forget_unreferenced(self) -> None:
        if len(self.members) <= 2 * sum(len(i.members) for i in self.islands) + 16:
            return
        alive = set().union(*(set(i.members) for i in self.islands))
        self.members = {k: v for k, v in self.members.items() if k in alive}

    def _record_meta(self, pending: Pending, result: Result, worker: str | None) -> None:
        self.seq += 1
        record = {
            "seq": self.seq,
            "individual": pending.meta_of,
            "job": pending.id,
            "evaluations": self.counts.evaluated,
            "task": self.config.meta_validation.task,
            "program": pending.program.to_text(),
            **result_to_dict(result),
            "worker": worker,
        }
        self._emit(record, META_VALIDATION)
        if not self._replay:
            fitness = "failed" if result.failed else f"{result.fitness:.4f}"
            self.progress.message(
                f"meta-validation of individual {pending.meta_of} on {record['task']}: {fitness}"
            )

    def _write_best(self) -> None:
        self._best_changed = False
        best_id, program, fitness = self.best
        pruned = prune(program)
        header = f"individual {best_id}, fitness {fitness} on {self.config.task.name} (seed {self.config.task.seed})"
        if pruned != program:
            header += "\nwithout its redundant statements (same updates):\n" + pruned.to_text()
        self.rundir.write_best(program.to_text(), header)

    # -- log, replay, checkpoints -------------------------------------------------------

    def _emit(self, record: dict, log: str) -> None:
        if not self._replay:
            self.rundir.append(record, log)
            return
        expected = self._replay.popleft()
        same = expected["_log"] == log and expected["seq"] == record["seq"]
        if log == INDIVIDUALS:
            same = same and all(expected[k] == record[k] for k in ("id", "hash", "cache_hit", "program"))
        else:
            same = same and expected["individual"] == record["individual"]
        if not same:
            raise SearchError(
                f"{self.rundir.path}: log line seq {expected['seq']} does not match the replayed search "
                f"(expected {_summary(expected)}, replay gave {_summary(record)}); was the config changed?"
            )

    def _replayed_completion(self) -> Completed:
        record = self._replay[0]
        job_id = record["id"] if record["_log"] == INDIVIDUALS else record["job"]
        if job_id not in self.in_flight or record.get("cache_hit") is not None:
            raise SearchError(
                f"{self.rundir.path}: log line seq {record['seq']} is not the completion of a job in flight"
            )
        return Completed(job_id, result_from_dict(record), record["worker"])

    def checkpoint(self) -> None:
        """Write the whole state atomically (only between two events, never mid-replay)."""
        self._since_checkpoint = 0
        self.rundir.write_checkpoint(self.state_dict())

    def state_dict(self) -> dict:
        best = None
        if self.best is not None:
            best = {
                "id": self.best[0],
                "program": self.best[1].to_text(),
                "fitness": _finite_or_none(self.best[2]),
            }
        return {
            "seq": self.seq,
            "capacity": self.capacity,
            "next_id": self.next_id,
            "next_island": self.next_island,
            "next_meta_at": self.next_meta_at,
            "last_meta_validated": self.last_meta_validated,
            "started": self.started,
            "finished": self.finished,
            "elapsed_seconds": self.elapsed(),
            "rng": self.rng.bit_generator.state,
            "counts": vars(self.counts),
            "islands": [
                {
                    "members": list(i.members),
                    "best_fitness": _finite_or_none(i.best_fitness),
                    "since": i.since_improvement,
                }
                for i in self.islands
            ],
            "members": {
                str(k): {
                    "program": m.program.to_text(),
                    "fitness": _finite_or_none(m.fitness),
                    "hash": m.hash,
                }
                for k, m in self.members.items()
            },
            "in_flight": [p.to_dict() for p in self.in_flight.values()],
            "best": best,
            "cache": self.cache.to_dict(),
        }

    def load_state(self, state: dict) -> None:
        self.seq = state["seq"]
        self.capacity = state["capacity"]
        self.next_id = state["next_id"]
        self.next_island = state["next_island"]
        self.next_meta_at = state["next_meta_at"]
        self.last_meta_validated = state["last_meta_validated"]
        self.started = state["started"]
        self.finished = state["finished"]
        self.elapsed_before = state["elapsed_seconds"]
        self.rng.bit_generator.state = state["rng"]
        self.counts = Counts(**state["counts"])
        self.islands = [
            Island(deque(i["members"]), _none_to_worst(i["best_fitness"]), i["since"])
            for i in state["islands"]
        ]
        texts: dict[str, Program] = {}

        def program_of(text: str) -> Program:  # copies share one parsed Program
            if text not in texts:
                texts[text] = parse(text)
            return texts[text]

        self.members = {
            int(k): Member(program_of(m["program"]), _none_to_worst(m["fitness"]), m["hash"])
            for k, m in state["members"].items()
        }
        self.in_flight = {p["id"]: Pending.from_dict(p) for p in state["in_flight"]}
        best = state["best"]
        self.best = (
            None if best is None else (best["id"], parse(best["program"]), _none_to_worst(best["fitness"]))
        )
        self.cache = FitnessCache.from_dict(state["cache"])

    def resume(self) -> None:
        """Load the checkpoint (if any) and queue the log lines after it for replay."""
        state = self.rundir.read_checkpoint()
        if state is not None:
            self.load_state(state)
        self._replay = deque(self.rundir.records_after(self.seq))

    # -- reporting ----------------------------------------------------------------------

    def stats(self) -> dict:
        """Counters and rates for the progress line and the final summary."""
        c = self.counts
        hits = c.hash_hits + c.fingerprint_hits
        return {
            "individuals": c.individuals,
            "generated": c.generated,
            "valid": c.valid,
            "hash_hits": c.hash_hits,
            "fingerprint_hits": c.fingerprint_hits,
            "evaluated": c.evaluated,
            "failed": c.failed,
            "restarts": c.restarts,
            "meta_validations": c.meta_validations,
            "cache_hit_rate": hits / c.valid if c.valid else 0.0,
            "redundant_fraction": c.redundant_sum / c.redundant_count if c.redundant_count else math.nan,
            "best_fitness": self.best[2] if self.best is not None else WORST_FITNESS,
            "best_id": self.best[0] if self.best is not None else None,
            "elapsed_seconds": self.elapsed(),
        }


def _summary(record: dict) -> str:
    if "id" in record:
        return f"individual {record['id']} (hash {record['hash']}, cache {record['cache_hit']})"
    return f"meta-validation of {record['individual']}"


def _finite_or_none(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _none_to_nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _none_to_worst(x: float | None) -> float:
    return WORST_FITNESS if x is None else float(x)
