"""The Lion-rediscovery pipeline (arXiv:2302.06675, sections 2-5): every step of every seed, resumable.

For each run (the evolution seeds, then each baseline method's seeds), in ``OUT/<run name>/``:

1. ``search/``: a search run directory (resumed if it exists, skipped if finished, as
   ``symdisc resume`` does);
2. ``funnel/``: the funnel on it (``run_funnel`` resumes from its evaluation log);
3. the winner (``pipeline.winner``: the best mean at the deepest stage any candidate reached,
   or the shortest program the best does not beat there by one standard error, both on the
   funnel's ``select_on`` fitness, validation unless a config says test), simplified
   with ``dsl.simplify`` (dead code, probe-verified rewrites and rounding; no ablation, so
   the same updates): ``winner.txt`` (raw), ``simplified.txt``, the steps
   in ``simplification.txt``;
4. the verdict from ``dsl.closest_optimizer`` and the funnel's last stage; with
   ``pipeline.ablation_tolerance``, the paper's ablation step too (``_rediscovery_ablation``:
   ``ablated.txt``, ``ablation.txt``, ``ablation/``) and the ablated program's own verdict;
5. the first Lion-family program of the search (``first_lion_family``, kept in ``first_lion_family.json``);
6. plots (``plots/``) and ``summary.json``: every number of the report's row.

Each step writes its output when it is done and is skipped when the output exists, and a
run with a ``summary.json`` is done, so a killed pipeline started again continues where it
stopped and trains nothing twice. The report is written by ``_rediscovery_report``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dsl
from dsl import Program
from dsl.library import load_program

from ._config import Config
from ._funnel import FunnelOutcome, Row, StageOutcome, run_funnel
from ._funnel_report import FUNNEL_JSON, _comparison, _estimate
from ._funnel_stats import paired_comparison
from ._inspect import read_run, summarize
from ._lion_scan import first_lion_family
from ._progress import Progress
from ._rediscovery_ablation import AblationOutcome, ablate_winner
from ._rediscovery_config import WINNER_RULES, RediscoveryConfig
from ._rundir import CONFIG, RunDirectory, _write_atomically

SEARCH_DIR = "search"
FUNNEL_DIR = "funnel"
PLOTS_DIR = "plots"
WINNER = "winner.txt"
SIMPLIFIED = "simplified.txt"
SIMPLIFICATION = "simplification.txt"
FIRST_LION_FAMILY = "first_lion_family.json"
SUMMARY = "summary.json"


@dataclass(frozen=True)
class PipelineRun:
    """One search of the pipeline.

    Attributes:
      method: ``evolution`` or a baseline method (the search's ``search.mode``).
      seed: the search's seed.
    """

    method: str
    seed: int

    @property
    def name(self) -> str:
        """Its directory under the output: ``seed<s>``, or ``<method>-seed<s>`` for a baseline."""
        return f"seed{self.seed}" if self.method == "evolution" else f"{self.method}-seed{self.seed}"


def pipeline_runs(config: RediscoveryConfig) -> list[PipelineRun]:
    """The evolution seeds first_seed .. first_seed + seeds - 1, then each baseline method's seeds."""
    pipeline = config.pipeline
    first = pipeline.first_seed
    runs = [PipelineRun("evolution", seed) for seed in range(first, first + pipeline.seeds)]
    runs += [PipelineRun(method, seed) for method in pipeline.baselines for seed in pipeline.baseline_seeds]
    return runs


class WorkersError(RuntimeError):
    """The workers could not be started."""


class _Workers:
    """The search's evaluator, started on first use (a finished pipeline run again starts none).

    One evaluator serves every search and funnel: they share the search task and workers,
    and the funnel names its stage task with every job.
    """

    def __init__(self, config: Config, address: str | None, notify: Callable[[str], None] | None):
        self._config, self._address, self._notify = config, address, notify
        self._evaluator = None

    def __getattr__(self, name: str):
        if self._evaluator is None:
            from ._cli import make_evaluator  # the search's own worker set-up

            try:
                self._evaluator = make_evaluator(self._config, self._address, notify=self._notify)
            except Exception as error:  # Ray start-up, cluster address, a task that will not build
                backend = self._config.workers.backend
                raise WorkersError(f"could not start the {backend} workers: {error}") from None
        return getattr(self._evaluator, name)

    def close(self) -> None:
        if self._evaluator is not None:
            self._evaluator.close()


def run_pipeline(
    config: RediscoveryConfig,
    log: Callable[[str], None] = lambda message: None,
    address: str | None = None,
    quiet: bool = True,
) -> list[dict]:
    """Run (or continue) every run of the pipeline in ``config.pipeline.out``.

    Args:
      config: the pipeline's configuration.
      log: called with one line per step.
      address: a Ray cluster to join (overrides ``workers.address``).
      quiet: no search progress line.

    Returns:
      Every run's summary (the content of its ``summary.json``), in ``pipeline_runs`` order.

    Raises:
      RunDirectoryError, SearchError, ConfigError: a search that cannot run or resume.
      CandidateError, FunnelLogError: a funnel that cannot run or resume.
    """
    out = Path(config.pipeline.out)
    workers = _Workers(config.search, address, None if quiet else log)
    try:
        return [run_one(config, run, out / run.name, workers, log, quiet) for run in pipeline_runs(config)]
    finally:
        workers.close()


def run_one(
    config: RediscoveryConfig,
    run: PipelineRun,
    directory: Path,
    evaluator,
    log: Callable[[str], None],
    quiet: bool = True,
) -> dict:
    """Every step of one run in ``directory``, each skipped when its output exists; the summary."""
    summary_file = directory / SUMMARY
    if summary_file.is_file():
        log(f"{run.name}: done ({summary_file})")
        return json.loads(summary_file.read_text())
    search_dir = directory / SEARCH_DIR
    run_search(config.run_config(run.seed, run.method), search_dir, evaluator, log, quiet)
    log(f"{run.name}: funnel into {directory / FUNNEL_DIR}")
    outcome = run_funnel(config.funnel, [str(search_dir)], directory / FUNNEL_DIR, evaluator, log)
    stage, winner = funnel_winner(outcome, config.pipeline.winner)
    write_winner(winner, search_dir, directory / WINNER)
    simplified = simplify_winner(winner, directory, log)
    log(f"{run.name}: closest known optimizer of the simplified winner")
    match, closest_error = closest_or_error(simplified)
    tolerance = config.pipeline.ablation_tolerance
    ablation = None
    if tolerance is not None:
        funnel_dir = directory / FUNNEL_DIR
        ablation = ablate_winner(
            outcome, winner, simplified, tolerance, directory, funnel_dir, evaluator, log
        )
    first = first_lion_family_hit(search_dir, directory, log)
    log(f"{run.name}: plots into {directory / PLOTS_DIR}")
    from ._plots import plot_run  # matplotlib is imported only to plot

    plots = plot_run(read_run(search_dir), directory / PLOTS_DIR, directory / FUNNEL_DIR / FUNNEL_JSON)
    summary = run_summary(run, directory, outcome, stage, winner, simplified, match, closest_error, first)
    summary["plots"] = [str(Path(path).relative_to(directory)) for path in plots]
    if ablation is not None:
        summary["ablation"] = ablation_summary(ablation, tolerance, summary["verdict"], summary["reference"])
    _write_atomically(summary_file, json.dumps(summary, indent=1, allow_nan=False))
    log(f"{run.name}: {summary['verdict']}")
    if ablation is not None:
        log(f"{run.name}: after ablation: {summary['ablation']['verdict']}")
    return summary


def run_search(config: Config, path: Path, evaluator, log: Callable[[str], None], quiet: bool = True) -> None:
    """Run the search into ``path``; resume it if the directory exists, skip it if it finished.

    A run directory that exists keeps its own config (as ``symdisc resume`` does): a note
    says so when it differs from ``config`` (say, another ``--minutes``).
    """
    from ._evolution import Search

    if (path / CONFIG).is_file():
        rundir = RunDirectory.open(path)
        stored = rundir.config()
        if stored != config:
            log(f"{path}: its {CONFIG} differs from this pipeline's; resuming it with its own")
        search = Search(stored, rundir, Progress(quiet=quiet))
        for note in search.resume():
            log(f"{path}: {note}")
        if search.finished:
            log(f"{path}: search finished")
            return
        log(f"{path}: resuming the search")
    else:
        rundir = RunDirectory.create(path, config)
        search = Search(config, rundir, Progress(quiet=quiet))
        log(f"{path}: searching ({config.search.mode}, seed {config.seed})")
    try:
        _ = evaluator.capacity  # start the workers first: as in symdisc run, start-up is not search time
        search.run(evaluator)
    finally:
        rundir.close()


def funnel_winner(outcome: FunnelOutcome, rule: str = "best") -> tuple[StageOutcome, Row]:
    """The funnel's winner, from the deepest stage any candidate reached, chosen on the
    funnel's ``select_on`` fitness (validation; test only for funnels that promoted on it).

    ``rule`` ``"best"``: the candidate with the best mean there. ``"shortest_within_se"``:
    of the candidates the best does not beat by more than one paired standard error (the
    one-standard-error rule), the one with the fewest live statements; of equal lengths, the
    better mean. The paper simplifies its winner by hand (arXiv:2302.06675, section 5);
    this rule prefers the simpler program only where the funnel cannot tell them apart.

    Raises:
      ValueError: if no stage evaluated a candidate, or ``rule`` is unknown.
    """
    if rule not in WINNER_RULES:
        raise ValueError(f"unknown winner rule {rule!r}")
    select_on = outcome.config.select_on
    for stage in reversed(outcome.stages):
        rows = [row for row in stage.rows if row.kind == "candidate"]
        if not rows:
            continue
        best = max(rows, key=lambda row: _or_worst(row.estimate(select_on).mean))  # the first of equal means
        if rule == "best" or not math.isfinite(best.estimate(select_on).mean):
            return stage, best
        tied = [
            row
            for row in rows
            if row is best
            or (
                math.isfinite(row.estimate(select_on).mean)
                and not paired_comparison(best.values(select_on), row.values(select_on), 1.0).beats
            )
        ]
        return stage, min(
            tied, key=lambda row: (len(row.candidate.program.statements), -row.estimate(select_on).mean)
        )
    raise ValueError(f"no funnel stage of {', '.join(outcome.runs)} evaluated a candidate")


def _or_worst(x: float) -> float:
    return x if math.isfinite(x) else -math.inf


def write_winner(winner: Row, search_dir: Path, file: Path) -> None:
    """The winner as its search logged it (redundant statements and all), with where it came from."""
    candidate = winner.candidate
    raw = read_run(search_dir).individual(candidate.individual)["program"]
    header = (
        f"# the funnel's winner: individual {candidate.individual} of {search_dir} "
        f"(search fitness {candidate.search_fitness:.4f})\n"
    )
    _write_atomically(file, header + raw)


def simplify_winner(winner: Row, directory: Path, log: Callable[[str], None]) -> Program:
    """``dsl.simplify`` of the winner with probe-verified steps only; read back once written.

    No fitness-based ablation here: this program is the one the funnel measured. On
    markov_lm_a, ablation judged on the search seed removed AdamW's momentum and weight decay
    from the warm start (each costs less than its 1e-3 tolerance there), which would turn a
    Lion into a Signum as easily; the optional ablation step (``_rediscovery_ablation``)
    judges on the tuning seeds and measures its program through the funnel again.
    """
    file = directory / SIMPLIFIED
    if file.is_file():
        return load_program(str(file))
    log(f"{directory.name}: simplifying the winner")
    result = dsl.simplify(winner.program)
    _write_atomically(directory / SIMPLIFICATION, result.report())
    candidate = winner.candidate
    header = (
        f"# simplified from {candidate.run} individual {candidate.individual} (the funnel's winner) "
        f"by dsl.simplify (probe-verified rewrites and rounding): {result.summary()}\n"
    )
    _write_atomically(file, header + result.program.to_text())
    return result.program


def first_lion_family_hit(search_dir: Path, directory: Path, log: Callable[[str], None]) -> dict | None:
    """``first_lion_family`` of the search as data, kept in ``first_lion_family.json`` once found."""
    file = directory / FIRST_LION_FAMILY
    if file.is_file():
        return json.loads(file.read_text())["hit"]
    log(f"{directory.name}: looking for the first Lion-family program in the search")
    hit = first_lion_family(read_run(search_dir))
    data = None if hit is None else dataclasses.asdict(hit)
    _write_atomically(file, json.dumps({"hit": data}, indent=1, allow_nan=False))
    return data


def verdict(
    match: dsl.ClosestMatch | None, closest_error: str | None, last: StageOutcome, winner: Row, reference: str
) -> str:
    """``Lion``, ``Lion family (not Lion: <reasons>)`` or ``not Lion family (closest: <name>; <reasons>)``.

    Lion: a Lion-family update with beta2 - beta1 >= 0.04 (``ClosestMatch.is_lion``) that
    beats the tuned reference on test at ``last`` (the last configured stage) by the
    funnel's own rule; a winner that did not reach that stage is not Lion.
    """
    if match is None:
        return f"not Lion family (closest: none; {closest_error})"
    if not match.lion_family:
        return f"not Lion family (closest: {match.name}; {'; '.join(match.lion_family_failures)})"
    reasons = []
    if not match.is_lion:
        reasons.append(f"beta2 - beta1 = {match.beta2 - match.beta1:.3g} < {dsl.LION_BETA_GAP}")
    row = last.row(winner.label)
    k = f"{last.config.standard_errors:g}"
    if row is None:
        reasons.append(f"did not reach stage {last.config.name}")
    elif not row.comparison.beats:
        c = row.comparison
        reasons.append(
            f"does not beat tuned {reference} at stage {last.config.name}: "
            f"{c.difference:+.4f} ± {c.se:.4f}, needs more than {k} SE"
        )
    return "Lion" if not reasons else f"Lion family (not Lion: {'; '.join(reasons)})"


def run_summary(
    run: PipelineRun,
    directory: Path,
    outcome: FunnelOutcome,
    stage: StageOutcome,
    winner: Row,
    simplified: Program,
    match: dsl.ClosestMatch | None,
    closest_error: str | None,
    first_lion_family: dict | None,
) -> dict:
    """Every number of the run's report row, as JSON-safe data (``summary.json``)."""
    search = read_run(directory / SEARCH_DIR)
    s = summarize(search)
    candidate = winner.candidate
    reference = outcome.config.baselines.reference
    last_configured = outcome.stages[-1]  # the funnel runs every configured stage (some skipped)
    closest = closest_data(match)
    text = verdict(match, closest_error, last_configured, winner, reference)
    return {
        "name": run.name,
        "method": run.method,
        "seed": run.seed,
        "search_dir": SEARCH_DIR,
        "funnel_dir": FUNNEL_DIR,
        "wall_seconds": search.elapsed_seconds,
        "wall_budget_seconds": search.config.budget.wall_seconds,
        "programs": s.individuals,
        "children": s.children,
        "mutation_attempts": s.generated,
        "trained": s.evaluated,
        "failed": s.failed,
        "cache_hits": s.hash_hits + s.fingerprint_hits,
        "cache_hit_rate": _finite(s.cache_hit_rate),
        "redundant_fraction": _finite(s.redundant_fraction),
        "restarts": len(s.restarts),
        "first_lion_family": first_lion_family,
        "winner": {
            "label": winner.label,
            "individual": candidate.individual,
            "island": candidate.island,
            "search_fitness": candidate.search_fitness,
            "stage": stage.config.name,
            "raw_program": search.individual(candidate.individual)["program"],
            "simplified_program": simplified.to_text(),
        },
        "closest": closest,
        "stages": [_stage_figures(s_, winner.label) for s_ in outcome.stages],
        "reference": reference,
        "lion_family": bool(match is not None and match.lion_family),
        "lion": text == "Lion",
        "verdict": text,
    }


def closest_data(match: dsl.ClosestMatch | None) -> dict | None:
    """The closest known optimizer's name, fitted constants and Lion-family checks, as JSON-safe data."""
    if match is None:
        return None
    return {
        "name": match.name,
        "constants": {name: _finite(value) for name, value in match.constants.items()},
        "beta1": _finite(match.beta1),
        "beta2": _finite(match.beta2),
        "learning_rate": _finite(match.constants.get("learning_rate")),
        "weight_decay": _finite(match.constants.get("weight_decay")),
        "sign_agreement": match.sign_agreement,
        "error": _finite(match.error),
        "live_state_slots": list(match.live_state_slots),
        "lion_family": match.lion_family,
        "is_lion": match.is_lion,
    }


def closest_or_error(program: Program) -> tuple[dsl.ClosestMatch | None, str | None]:
    """``dsl.closest_optimizer`` of ``program``, or why there is none (no finite update on the probe)."""
    try:
        return dsl.closest_optimizer(program), None
    except ValueError as error:
        return None, str(error)


def ablation_summary(ablation: AblationOutcome, tolerance: float, funnel_text: str, reference: str) -> dict:
    """The ablation's figures and its verdict (the funnel winner's, ``funnel_text``, when nothing went)."""
    data = {
        "tolerance": tolerance,
        "validation_seeds": ablation.validation_seeds,
        "validation_before": _finite(ablation.simplification.fitness_before),
        "validation_after": _finite(ablation.simplification.fitness_after),
        "removed": ablation.removed,
        "changed": ablation.changed,
        "program": ablation.program.to_text(),
        "closest": None,
        "stages": [],
        "verdict": funnel_text,
    }
    if ablation.changed:
        match, error = closest_or_error(ablation.program)
        data["closest"] = closest_data(match)
        data["stages"] = [_stage_figures(stage, ablation.row.label) for stage in ablation.stages]
        data["verdict"] = verdict(match, error, ablation.stages[-1], ablation.row, reference)
    data["lion"] = data["verdict"] == "Lion"
    data["lion_family"] = data["verdict"] == "Lion" or data["verdict"].startswith("Lion family")
    return data


def _stage_figures(stage: StageOutcome, label: str) -> dict:
    """The winner's and each tuned baseline's test mean and SE at ``stage``."""
    row = stage.row(label)
    baselines = [r for r in stage.rows if r.tuned is not None]
    return {
        "name": stage.config.name,
        "task": stage.task,
        "skipped": stage.skipped,
        "standard_errors": stage.config.standard_errors,
        "winner": None if row is None else _estimate(row.test),
        "winner_vs_reference": None if row is None else _comparison(row.comparison),
        "winner_vs_baselines": None if row is None else _versus(row, baselines, stage.config.standard_errors),
        "baselines": [
            {
                "name": r.tuned.name,
                "reference": r.kind == "reference",
                "test": _estimate(r.test),
                "lr": r.tuned.lr,
                "weight_decay": r.tuned.weight_decay,
            }
            for r in baselines
        ],
    }


def _versus(row: Row, baselines: list[Row], k: float) -> dict:
    """The row's paired comparison with each tuned baseline's row, on the stage's test seeds."""
    test = [r.test_fitness for r in row.results]
    return {
        b.tuned.name: _comparison(paired_comparison(test, [r.test_fitness for r in b.results], k))
        for b in baselines
    }


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)
