"""The programs that enter the funnel: the best distinct ones of one or more search runs.

Read from each run's ``individuals.jsonl``: the top K by search fitness over all runs,
plus the best of every island of every run, plus (``shortest_within``) each run's program
with the fewest live statements among those within a tolerance of the run's best fitness.
Two programs are the same candidate when, after pruning (``dsl.prune``), they share a
functional hash (``dsl.analyze``) or a numeric fingerprint (``dsl.fingerprint``); the
first in fitness order stands for both.
Failed individuals never enter. Each candidate keeps its run and individual id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dsl import Program, analyze, fingerprint, parse

from ._rundir import RunDirectory
from ._state import live_statement_count


@dataclass(frozen=True)
class Candidate:
    """One program of the funnel.

    Attributes:
      run: the run directory, as given.
      individual: its id in that run's log.
      island: the island it was born on.
      search_fitness: its fitness in the search.
      program: the program without its redundant statements (same updates).
      hash: its functional hash.
      fingerprint: its numeric fingerprint.
      reasons: why it entered: ``"top_k"``, ``"island_best"`` and/or ``"shortest_within"``.
    """

    run: str
    individual: int
    island: int
    search_fitness: float
    program: Program
    hash: str
    fingerprint: str
    reasons: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.run}:{self.individual}"


class CandidateError(ValueError):
    """The runs cannot feed a funnel (no run directory, different tasks, nothing valid)."""


def search_task(run_dirs: list[str]) -> tuple[str, list[int]]:
    """The task every run searched on, and the training seeds of every run.

    Raises:
      CandidateError: if a directory is not a run, or the runs searched different tasks.
    """
    tasks, seeds = {}, []
    for path in run_dirs:
        try:
            config = RunDirectory.open(path).config()
        except Exception as error:  # RunDirectoryError, ConfigError: one clear line either way
            raise CandidateError(f"{path}: {error}") from None
        tasks[path] = config.task.name
        seeds.extend(config.task.seeds)
    if len(set(tasks.values())) > 1:
        found = ", ".join(f"{path}: {task}" for path, task in tasks.items())
        raise CandidateError(f"the runs searched different tasks ({found}); their fitness does not compare")
    return next(iter(tasks.values())), seeds


def gather_candidates(
    run_dirs: list[str], top_k: int, island_best: bool, shortest_within: float | None = None
) -> list[Candidate]:
    """The best distinct programs of ``run_dirs``, best search fitness first.

    ``shortest_within`` adds, for each run, the program with the fewest live statements
    (statements that are not redundant) among those whose search fitness is within that
    much of the run's best; of equal lengths, the fitter.

    Raises:
      CandidateError: if no run holds a successful individual.
    """
    records = []
    for run_index, path in enumerate(run_dirs):
        for record in RunDirectory.open(path).read_log():
            fitness = record["fitness"]
            if record["failure"] is None and fitness is not None and math.isfinite(fitness):
                records.append((run_index, path, record))
    if not records:
        raise CandidateError(f"no successful individual in {', '.join(run_dirs)}")
    records.sort(key=lambda item: (-item[2]["fitness"], item[0], item[2]["seq"]))

    chosen: dict[str, dict] = {}  # functional hash -> candidate fields
    by_fingerprint: dict[str, str] = {}  # fingerprint -> the chosen hash

    def identify(path: str, record: dict, reason: str) -> bool:
        """Add ``record``'s program under ``reason`` (or the reason to its twin); False if known already."""
        twin = record["hash"] if record["hash"] in chosen else None
        if twin is None:
            analysis = analyze(parse(record["program"]))
            if not analysis.valid:
                return False
            probe = fingerprint(analysis.pruned, finite_only=True)  # None: NaN/inf identify no function
            twin = analysis.hash if analysis.hash in chosen else by_fingerprint.get(probe)
            if twin is None:
                chosen[analysis.hash] = dict(
                    run=path,
                    individual=record["id"],
                    island=record["island"],
                    search_fitness=float(record["fitness"]),
                    program=analysis.pruned,
                    hash=analysis.hash,
                    fingerprint=probe,
                    reasons=[reason],
                )
                if probe is not None:
                    by_fingerprint[probe] = analysis.hash
                return True
        if reason not in chosen[twin]["reasons"]:
            chosen[twin]["reasons"].append(reason)
        return False

    added = 0
    for _, path, record in records:  # the top K distinct, in fitness order
        if added == top_k:
            break
        added += identify(path, record, "top_k")
    if island_best:
        best_of_island: dict[tuple[int, int], tuple[str, dict]] = {}
        for run_index, path, record in records:  # fitness order: the first seen is the island's best
            best_of_island.setdefault((run_index, record["island"]), (path, record))
        for path, record in best_of_island.values():
            identify(path, record, "island_best")
    if shortest_within is not None:
        shortest: dict[int, tuple[tuple[int, int], str, dict]] = {}
        run_best: dict[int, float] = {}
        for rank, (run_index, path, record) in enumerate(records):  # fitness order: a run's best first
            best = run_best.setdefault(run_index, record["fitness"])
            if record["fitness"] < best - shortest_within:
                continue
            # the logged redundant share spares an analysis (None: not logged, analyzed instead)
            live = live_statement_count(parse(record["program"]), record.get("redundant_fraction"))
            key = (live, rank)
            if run_index not in shortest or key < shortest[run_index][0]:
                shortest[run_index] = (key, path, record)
        for _, path, record in shortest.values():
            identify(path, record, "shortest_within")
    candidates = [Candidate(**{**fields, "reasons": tuple(fields["reasons"])}) for fields in chosen.values()]
    return sorted(candidates, key=lambda c: -c.search_fitness)  # stable: ties keep the log's order
