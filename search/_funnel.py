"""Funnel selection (arXiv:2302.06675, section 5): winners on the proxy must also win on larger tasks.

The best distinct programs of one or more search runs (``_funnel_candidates``) go through
stages. Each stage is a task and a list of seeds; by default A is the search's own task
on seeds the search never used, B and C the same family ~10x and ~100x larger. At every
stage the reference baseline (tuned AdamW) and the other baselines (tuned Lion) are tuned
on the stage's task with one grid and one seed budget (``_funnel_tuning``), then every
program and baseline trains on the stage's seeds. A program goes on to the next stage when
its mean **validation** fitness beats the tuned reference by more than k paired standard
errors (``_funnel_stats``), at most the top M of them; test fitness is reported beside it
and selects nothing (``select_on: test``, the rule of the funnels run before it existed,
promotes on test instead).

Everything trained is logged as it finishes (``_funnel_store``), so running the funnel
again on its directory resumes it without training anything twice. ``funnel.json`` and
``funnel.md`` are rewritten after every stage (``_funnel_report``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import proxy_tasks
from dsl import Program
from proxy_tasks import Result

from ._config import ConfigError
from ._evaluator import Evaluator
from ._funnel_candidates import Candidate, gather_candidates, search_task
from ._funnel_config import FunnelConfig, StageSection, dump_funnel_config
from ._funnel_stats import Comparison, Estimate, mean_and_se, paired_comparison, promote
from ._funnel_store import FunnelEvaluations
from ._funnel_tuning import TunedBaseline, tune_baseline
from ._rundir import _write_atomically

FUNNEL_CONFIG = "funnel_config.yaml"


@dataclass
class Row:
    """One program of a stage with its results on the stage's seeds.

    Attributes:
      label: ``run:individual`` for a candidate, ``adamw (tuned)`` for a baseline.
      kind: ``"candidate"``, ``"reference"`` (the promotion rule's baseline) or ``"baseline"``.
      candidate: the candidate (None for a baseline).
      tuned: the tuned baseline (None for a candidate).
      results: one ``Result`` per seed, in the stage's seed order.
      validation: mean and SE of the validation fitness.
      test: mean and SE of the test fitness.
      comparison: test values against the reference's, seed by seed (None for the reference).
      validation_comparison: the same on validation values.
      promoted: it goes on to the next stage.
      followed: the best search program, evaluated here although it was not promoted
        (it takes no part in this stage's promotion).
      same_as: the label of an earlier candidate whose results are identical to this one's on
        every seed (programs that differ on the probe can train identically); this one
        takes no part in promotion, so a copy cannot take a place from a distinct program.
    """

    label: str
    kind: str
    candidate: Candidate | None
    tuned: TunedBaseline | None
    results: list[Result]
    validation: Estimate
    test: Estimate
    comparison: Comparison | None
    validation_comparison: Comparison | None = None
    promoted: bool = False
    followed: bool = False
    same_as: str | None = None

    @property
    def program(self) -> Program:
        return self.candidate.program if self.candidate is not None else self.tuned.program

    def selection(self, select_on: str) -> Comparison | None:
        """The comparison with the reference that selects (``select_on``: validation or test)."""
        return self.validation_comparison if select_on == "validation" else self.comparison

    def estimate(self, select_on: str) -> Estimate:
        """Mean and SE of the fitness that selects."""
        return self.validation if select_on == "validation" else self.test

    def values(self, select_on: str) -> list[float]:
        """The fitness that selects, seed by seed."""
        return [r.fitness if select_on == "validation" else r.test_fitness for r in self.results]


@dataclass
class StageOutcome:
    """What one stage did. ``skipped`` says why it trained nothing (no program reached it)."""

    config: StageSection
    task: str
    rows: list[Row] = field(default_factory=list)
    skipped: str | None = None

    def row(self, label: str) -> Row | None:
        return next((r for r in self.rows if r.label == label), None)

    @property
    def reference(self) -> Row | None:
        return next((r for r in self.rows if r.kind == "reference"), None)


@dataclass
class FunnelOutcome:
    """The whole funnel: its inputs, candidates and stages (so far)."""

    config: FunnelConfig
    runs: list[str]
    search_task: str
    candidates: list[Candidate]
    stages: list[StageOutcome] = field(default_factory=list)

    @property
    def best(self) -> Candidate:
        """The best program by search fitness."""
        return self.candidates[0]


def stage_tasks(config: FunnelConfig, task: str, search_seeds: list[int]) -> list[str]:
    """The task of every stage: a size becomes ``<family of task>_<size>``.

    Raises:
      ConfigError: for a size the family lacks, or stage seeds that the search used on its task.
    """
    family = proxy_tasks.config(task).family
    names = []
    for i, stage in enumerate(config.stages):
        name = stage.task
        if name not in proxy_tasks.names():
            name = f"{family}_{stage.task}"
            if name not in proxy_tasks.names():
                raise ConfigError(f"stages[{i}].task", f"a size the {family} family has", stage.task)
        used = sorted(set(stage.seeds) & set(search_seeds))
        if name == task and used:
            raise ConfigError(
                f"stages[{i}].seeds",
                f"new seeds: the search trained on {task} with seed(s) {used}",
                list(stage.seeds),
            )
        names.append(name)
    return names


def run_funnel(
    config: FunnelConfig,
    run_dirs: list[str],
    out_dir: str | Path,
    evaluator: Evaluator,
    log: Callable[[str], None] = lambda message: None,
) -> FunnelOutcome:
    """Run (or resume) the funnel of ``run_dirs`` in ``out_dir`` on ``evaluator``.

    Raises:
      CandidateError: if the runs cannot feed a funnel.
      FunnelLogError: if ``out_dir``'s evaluation log is damaged.
      ConfigError: if a stage does not fit the runs' task (see ``stage_tasks``).
    """
    from ._funnel_report import write_report  # the report reads this module's classes

    out_dir = Path(out_dir)
    task, search_seeds = search_task(run_dirs)
    tasks = stage_tasks(config, task, search_seeds)
    candidates = gather_candidates(
        run_dirs, config.candidates.top_k, config.candidates.island_best, config.candidates.shortest_within
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(out_dir / FUNNEL_CONFIG, dump_funnel_config(config))
    outcome = FunnelOutcome(config, list(run_dirs), task, candidates)
    log(f"{len(candidates)} candidates from {len(run_dirs)} run(s) on {task}")

    def progress(done: int, total: int) -> None:
        if done == total or done % 10 == 0:
            log(f"  trained {done}/{total}")

    evaluations = FunnelEvaluations(out_dir, evaluator, progress)
    try:
        entering = list(candidates)
        for stage, task_name in zip(config.stages, tasks, strict=True):
            result = _run_stage(config, stage, task_name, entering, outcome.best, evaluations, log)
            outcome.stages.append(result)
            write_report(outcome, out_dir)
            entering = [row.candidate for row in result.rows if row.promoted]
    finally:
        evaluations.close()
    log(f"trained {evaluations.evaluated}, reused {evaluations.reused} logged evaluations")
    return outcome


def _run_stage(
    config: FunnelConfig,
    stage: StageSection,
    task_name: str,
    entering: list[Candidate],
    best: Candidate,
    evaluations: FunnelEvaluations,
    log: Callable[[str], None],
) -> StageOutcome:
    outcome = StageOutcome(stage, task_name)
    followed = config.candidates.follow_best and best not in entering
    programs = entering + ([best] if followed else [])
    if not programs:
        outcome.skipped = "no program was promoted to this stage"
        log(f"stage {stage.name} ({task_name}): skipped, {outcome.skipped}")
        return outcome
    log(f"stage {stage.name} ({task_name}): {len(entering)} candidates, seeds {list(stage.seeds)}")
    seeds = list(stage.seeds)
    candidate_results = evaluations.results([(c.program, task_name, s) for c in programs for s in seeds])
    names = [config.baselines.reference, *config.baselines.others]
    tuned = []
    for name in names:
        log(f"stage {stage.name}: tuning {name} on {task_name}")
        tuned.append(tune_baseline(name, task_name, config.tuning, evaluations))
    baseline_results = evaluations.results([(t.program, task_name, s) for t in tuned for s in seeds])

    def per_program(results: list[Result], index: int) -> list[Result]:
        return results[index * len(seeds) : (index + 1) * len(seeds)]

    reference = per_program(baseline_results, 0)
    baseline_rows = [
        _row(f"{t.name} (tuned)", "baseline", None, t, per_program(baseline_results, i), reference, stage)
        for i, t in enumerate(tuned)
    ]
    baseline_rows[0].kind = "reference"
    baseline_rows[0].comparison = baseline_rows[0].validation_comparison = None
    candidate_rows = []
    for index, candidate in enumerate(programs):
        results = per_program(candidate_results, index)
        row = _row(candidate.label, "candidate", candidate, None, results, reference, stage)
        row.followed = followed and candidate is best
        candidate_rows.append(row)
    competed = promote_rows(candidate_rows, stage.promote_top, config.select_on)
    outcome.rows = candidate_rows + baseline_rows
    promoted = sum(row.promoted for row in candidate_rows)
    log(f"stage {stage.name}: {promoted} of {competed} promoted")
    return outcome


def promote_rows(rows: list[Row], top: int, select_on: str = "validation") -> int:
    """Mark the promoted candidate rows (``promote`` on the ``select_on`` comparisons), leaving
    out the followed row and rows with the same results as an earlier one (``same_as``);
    returns how many competed."""
    mark_same_results(rows)
    competing = [row for row in rows if not row.followed and row.same_as is None]
    for index in promote([row.selection(select_on) for row in competing], top):
        competing[index].promoted = True
    return len(competing)


def mark_same_results(rows: list[Row]) -> None:
    """Set ``same_as`` on every row whose per-seed results equal an earlier row's."""
    first: dict[tuple, str] = {}
    for row in rows:
        key = tuple((r.fitness, r.test_fitness, r.failure) for r in row.results)
        if key in first:
            row.same_as = first[key]
        else:
            first[key] = row.label


def _row(
    label: str,
    kind: str,
    candidate: Candidate | None,
    tuned: TunedBaseline | None,
    results: list[Result],
    reference: list[Result],
    stage: StageSection,
) -> Row:
    validation = [r.fitness for r in results]
    test = [r.test_fitness for r in results]
    k = stage.standard_errors
    return Row(
        label=label,
        kind=kind,
        candidate=candidate,
        tuned=tuned,
        results=results,
        validation=mean_and_se(validation),
        test=mean_and_se(test),
        comparison=paired_comparison(test, [r.test_fitness for r in reference], k),
        validation_comparison=paired_comparison(validation, [r.fitness for r in reference], k),
    )
