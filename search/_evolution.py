"""Regularized (aging) evolution over programs, asynchronous and steady state (arXiv:2302.06675, section 2.2).

``Search`` keeps ``capacity`` candidates in flight on an ``Evaluator``. Each time one
completes it joins its population (the oldest member leaves) and a new child is bred
(``_breeding``): a tournament picks a parent, which is mutated until the child is valid
and functionally new; the fitness cache is asked (hash, then fingerprint) and only a miss
is trained. A cache hit is an individual too, recorded at once.

Also here: the warm start (the initial program evaluated once, then copied P times),
parallel independent populations, restart from the best after a plateau, the
constants-only and random-search baselines, meta-validation of the current best on a
larger task (section 2.3), budgets, checkpoints and exact resume.

Resume: every event that changes the state (an individual recorded, a meta-validation)
is one log line with a ``seq``; a checkpoint stores the ``SearchState`` and the ``seq``
it covers. The search is a deterministic function of its RNG and of the order of
completions, so ``resume`` loads the checkpoint, rebuilds the fitness cache from the log
lines it covers, and replays the log lines after it through the very same code (``_resume``: the log
supplies the completions instead of the evaluator), checking that every regenerated
individual matches its line. Then the jobs still in flight are resubmitted.
"""

from __future__ import annotations

import math
import time
from collections import deque

from dsl import Program, fingerprint, prune
from dsl.library import load_program
from proxy_tasks import Result

from ._breeding import mutate_until_valid, mutation_settings, random_valid_program, tournament
from ._cache import Facts, FitnessCache, analyze_program
from ._config import Config
from ._evaluator import WORST_FITNESS, Completed, Evaluator, sanitize
from ._progress import Progress
from ._records import individual_record, meta_validation_record
from ._resume import Replay, resume_point
from ._rundir import INDIVIDUALS, META_VALIDATION, RunDirectory
from ._state import Best, Island, Member, Pending, SearchError, SearchState, live_statement_count


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
        self.state = SearchState.initial(
            config.seed, config.search.parallel_searches, config.meta_validation.every
        )
        self.cache = FitnessCache()
        self._session_start = time.monotonic()
        self._replay = Replay([], rundir.path)  # log lines still to be re-derived on resume
        self._submitted: set[int] = set()  # in-flight jobs the evaluator has
        self._done: deque[Completed] = deque()  # completions not yet recorded
        self._since_checkpoint = 0
        self._best_changed = False

    @property
    def finished(self) -> bool:
        return self.state.finished

    # -- the loop -----------------------------------------------------------------------

    def run(self, evaluator: Evaluator) -> None:
        """Breed and evaluate until a budget is reached and nothing is in flight.

        A KeyboardInterrupt stops it at once without a checkpoint: the log already holds
        every completed individual, and ``resume`` replays it.
        """
        self._session_start = time.monotonic()
        state = self.state
        session_begun = False
        while True:
            if not session_begun and not self._replay:  # replayed events had their run's capacity
                self._begin_session(evaluator)
                session_begun = True
            self._fill()
            if not state.in_flight:
                break
            self._complete(self._next_completion(evaluator))
            if self._best_changed and not self._replay:
                self._write_best()
            self.progress.update(self.stats())
            if not self._replay and self._since_checkpoint >= self.config.run.checkpoint_every:
                self.checkpoint()
        state.finished = True
        if self._best_changed:
            self._write_best()
        self.checkpoint()
        self.progress.update(self.stats(), force=True)
        self.progress.close()

    def _begin_session(self, evaluator: Evaluator) -> None:
        """New events from here on use this evaluator's capacity; a checkpoint records it."""
        self.state.capacity = evaluator.capacity
        self.checkpoint()

    def _fill(self) -> None:
        if self._replay:  # breed as the run did: with the capacity of the session that logged the next line
            self.state.capacity = self._replay.capacity(self.state.capacity)
        while len(self.state.in_flight) < self.state.capacity:
            if self._meta_due():
                self._start_meta_validation()
            elif not self.state.started:
                self._start()
            elif self._may_breed():
                self._breed()
            else:
                return

    def _next_completion(self, evaluator: Evaluator) -> Completed:
        if self._replay:
            return self._replay.next_completion(self.state.in_flight)
        if not self._done:
            for job_id, pending in self.state.in_flight.items():
                if len(self._submitted) >= evaluator.capacity:
                    break
                if job_id not in self._submitted:
                    if pending.meta_of is None:
                        evaluator.submit(job_id, pending.program, self.config.task.seeds)
                    else:
                        meta = self.config.meta_validation
                        evaluator.submit(job_id, pending.program, meta.seeds, meta.task)
                    self._submitted.add(job_id)
            done = evaluator.wait()
            if not done:
                raise SearchError("the evaluator returned nothing while jobs were in flight")
            self._done.extend(done)
        return self._done.popleft()

    # -- budgets ------------------------------------------------------------------------

    def elapsed(self) -> float:
        """Wall time of the run, summed over its sessions."""
        return self.state.elapsed_seconds + (time.monotonic() - self._session_start)

    def _may_breed(self) -> bool:
        state = self.state
        if self.config.search.mode != "random" and not state.islands[state.next_island].members:
            return False  # the warm start is still being evaluated
        budget = self.config.budget
        in_flight = sum(1 for p in state.in_flight.values() if p.meta_of is None)
        if budget.programs is not None and state.counts.individuals + in_flight >= budget.programs:
            return False
        if budget.evaluations is not None and state.counts.evaluated + in_flight >= budget.evaluations:
            return False
        # wall time is not a function of the log: while replaying, the log decides
        if not self._replay and budget.wall_seconds is not None and self.elapsed() >= budget.wall_seconds:
            return False
        return True

    # -- breeding -----------------------------------------------------------------------

    def _start(self) -> None:
        """The warm start: evaluate the initial program once (it is copied on completion)."""
        self.state.started = True
        facts = analyze_program(self.initial_program)
        if not facts.valid:
            raise SearchError(f"the initial program is invalid: {facts.error}")
        self._new_individual(None, 0, "initial", self.initial_program, facts)

    def _breed(self) -> None:
        state = self.state
        island = state.next_island
        state.next_island = (island + 1) % len(state.islands)
        if self.config.search.mode == "random":
            parent_id = None
            child = random_valid_program(
                state.rng,
                self.config.search.random_max_length,
                len(self.initial_program.state),
                self.config.search.update_scales_with_lr,
            )
        else:
            # One tournament per child: its winner is mutated until a child is valid (section 2.2).
            parent_id = tournament(
                state.rng,
                state.islands[island].members,
                lambda member_id: state.members[member_id].fitness,
                self.config.search.tournament_size,
                self.config.search.parsimony_tolerance,
                lambda member_id: state.members[member_id].live_statements,
            )
            parent = state.members[parent_id]
            child = mutate_until_valid(state.rng, parent.program, parent.hash, self.settings)
        counts = state.counts
        counts.generated += child.attempts
        counts.valid += 1
        if not math.isnan(child.facts.redundant_fraction):
            counts.redundant_sum += child.facts.redundant_fraction
            counts.redundant_count += 1
        self._new_individual(parent_id, island, child.mutation, child.program, child.facts)

    def _new_individual(
        self, parent: int | None, island: int, mutation: str, program: Program, facts: Facts
    ) -> None:
        individual_id = self.state.next_id
        self.state.next_id += 1
        # finite_only: NaN/inf probe values would make unrelated programs share a fingerprint
        result, hit, probe = self.cache.lookup(
            facts.hash, lambda: fingerprint(facts.analysis, finite_only=True)
        )
        pending = Pending(
            id=individual_id,
            parent=parent,
            island=island,
            mutation=mutation,
            program=program,
            hash=facts.hash,
            fingerprint=probe,
            redundant_fraction=facts.redundant_fraction,
        )
        if result is None:
            self.state.in_flight[individual_id] = pending
        else:
            self._record(pending, result, worker=None, cache_hit=hit)

    # -- meta-validation (section 2.3) --------------------------------------------------

    def _meta_due(self) -> bool:
        state = self.state
        return (
            self.config.meta_validation.task is not None
            and state.best is not None
            and state.counts.evaluated >= state.next_meta_at
            and not any(p.meta_of is not None for p in state.in_flight.values())
        )

    def _start_meta_validation(self) -> None:
        state = self.state
        state.next_meta_at = state.counts.evaluated + self.config.meta_validation.every
        if state.best.id == state.last_meta_validated:
            return  # the same program again would give the same number
        state.last_meta_validated = state.best.id
        state.counts.meta_validations += 1
        job_id = -state.counts.meta_validations  # individuals use ids >= 0
        state.in_flight[job_id] = Pending(
            id=job_id,
            parent=None,
            island=-1,
            mutation="meta_validation",
            program=state.best.program,
            hash="",
            fingerprint=None,
            redundant_fraction=math.nan,
            meta_of=state.best.id,
            search_fitness=state.best.fitness,
        )

    def _record_meta(self, pending: Pending, result: Result, worker: str | None) -> None:
        state = self.state
        state.seq += 1
        meta = self.config.meta_validation
        record = meta_validation_record(
            state.seq,
            pending,
            result,
            worker,
            task=meta.task,
            seeds=meta.seeds,
            individuals=state.counts.individuals,
            evaluations=state.counts.evaluated,
            search_fitness=pending.search_fitness,
            capacity=state.capacity,
        )
        self._emit(record, META_VALIDATION)
        if not self._replay:
            figures = (
                f"failed ({result.failure})"
                if result.failed
                else f"fitness {result.fitness:.4f}, test metric {result.test_metric:.4f}"
            )
            self.progress.message(
                f"meta-validation of individual {pending.meta_of} on {meta.task}: {figures}"
            )

    # -- completions --------------------------------------------------------------------

    def _complete(self, completion: Completed) -> None:
        pending = self.state.in_flight.pop(completion.job_id)
        self._submitted.discard(completion.job_id)
        result = sanitize(completion.result)
        if pending.meta_of is not None:
            self._record_meta(pending, result, completion.worker)
        else:
            self._record(pending, result, completion.worker, cache_hit=None)

    def _record(self, pending: Pending, result: Result, worker: str | None, cache_hit: str | None) -> None:
        state = self.state
        state.seq += 1
        self._since_checkpoint += 1
        record = individual_record(state.seq, pending, result, worker, cache_hit, capacity=state.capacity)
        self._emit(record, INDIVIDUALS)
        counts = state.counts
        counts.individuals += 1
        if cache_hit is None:
            counts.evaluated += 1
            counts.failed += result.failed
            self.cache.store(pending.hash, pending.fingerprint, result)
        elif cache_hit == "hash":
            counts.hash_hits += 1
        else:
            counts.fingerprint_hits += 1
        member = Member(
            pending.program,
            result.fitness,
            pending.hash,
            live_statement_count(pending.program, pending.redundant_fraction),
        )
        if state.best is None or result.fitness > state.best.fitness:
            state.best = Best(id=pending.id, program=pending.program, fitness=result.fitness)
            self._best_changed = True  # best.txt is rewritten after this event (not mid-replay)
        if pending.mutation == "initial":
            state.members[pending.id] = member
            for island in state.islands:
                island.members.extend([pending.id] * self.config.search.population_size)
                island.best_fitness = result.fitness
        elif self.config.search.mode != "random":
            self._join(state.islands[pending.island], pending.id, member)

    def _join(self, island: Island, member_id: int, member: Member) -> None:
        """Add a child to its island; the oldest member leaves (aging)."""
        self.state.members[member_id] = member
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
        state = self.state
        best = state.best
        if best.id not in state.members:
            facts = analyze_program(best.program)
            state.members[best.id] = Member(
                best.program,
                best.fitness,
                facts.hash,
                live_statement_count(best.program, facts.redundant_fraction),
            )
        island.members = deque([best.id] * self.config.search.population_size)
        island.best_fitness = best.fitness
        island.since_improvement = 0
        state.counts.restarts += 1
        if not self._replay:
            self.progress.message(f"restart from the best (individual {best.id}, fitness {best.fitness:.4f})")

    def _forget_unreferenced(self) -> None:
        state = self.state
        if len(state.members) <= 2 * sum(len(i.members) for i in state.islands) + 16:
            return
        alive = set().union(*(set(i.members) for i in state.islands))
        state.members = {k: v for k, v in state.members.items() if k in alive}

    def _write_best(self) -> None:
        self._best_changed = False
        best = self.state.best
        pruned = prune(best.program)
        seeds = self.config.task.seeds
        header = (
            f"individual {best.id}, fitness {best.fitness} on {self.config.task.name} "
            f"(seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})"
        )
        if pruned != best.program:
            header += "\nwithout its redundant statements (same updates):\n" + pruned.to_text()
        self.rundir.write_best(best.program.to_text(), header)

    # -- log, replay, checkpoints -------------------------------------------------------

    def _emit(self, record: dict, log: str) -> None:
        """Append ``record`` to ``log``; while replaying, check it against the logged line instead."""
        if self._replay:
            self._replay.check(record, log)
        else:
            self.rundir.append(record, log)

    def checkpoint(self) -> None:
        """Write the state atomically (only between two events, never mid-replay)."""
        now = time.monotonic()
        self.state.elapsed_seconds += now - self._session_start
        self._session_start = now
        self._since_checkpoint = 0
        self.rundir.write_checkpoint(self.state.to_dict())

    def resume(self) -> list[str]:
        """Start from the run directory: its checkpoint, the cache of its log, the log lines to replay.

        Returns:
          Notes for the user on what was repaired or not trusted (``resume_point``).

        Raises:
          RunDirectoryError: if the run directory is not writable or a log is damaged.
        """
        self.state, self.cache, replay, notes = resume_point(self.rundir, self.state)
        self._replay = Replay(replay, self.rundir.path)
        return notes

    # -- reporting ----------------------------------------------------------------------

    def stats(self) -> dict:
        """Counters and rates for the progress line and the final summary."""
        c = self.state.counts
        best = self.state.best
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
            "best_fitness": best.fitness if best is not None else WORST_FITNESS,
            "best_id": best.id if best is not None else None,
            "elapsed_seconds": self.elapsed(),
        }
