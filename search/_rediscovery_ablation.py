"""The paper's second simplification step in the pipeline: drop what barely matters.

arXiv:2302.06675, section 5 (and section 2 on the raw program that became Lion): after the
search, statements that are not redundant but barely change the fitness were removed by
re-evaluation. The pipeline's own simplification (``_rediscovery.simplify_winner``) keeps
the updates exactly, so its winner keeps whatever the search carried along that does
nothing on average (a constant offset fitted to the one search seed, an ``arctanh`` of a
momentum). With ``pipeline.ablation_tolerance`` set, the simplified winner goes on:

1. ``dsl.simplify``'s ablation: a statement goes when the mean *validation* fitness on
   the search task over the funnel's tuning seeds (never a stage's test seeds) stays
   within the tolerance of the winner's; constants are not rounded again;
2. if a statement went, the ablated program goes through the funnel's stages as the funnel
   takes a candidate (``_funnel._run_stage``: the stage's task and test seeds, paired with
   the same tuned baselines, promoted on beating the reference by k standard errors);
3. its closest known optimizer and verdict, by the same rule as the winner's.

Every training is logged in ``ablation/evaluations.jsonl``, primed with the funnel's log
(the baselines' results are reused, not retrained), so a killed pipeline resumes here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dsl
from dsl import Program

from ._funnel import FunnelOutcome, Row, StageOutcome, _run_stage
from ._funnel_candidates import Candidate
from ._funnel_store import FunnelEvaluations
from ._rundir import _write_atomically

ABLATION_DIR = "ablation"
ABLATED = "ablated.txt"
ABLATION_STEPS = "ablation.txt"
ABLATED_RUN = "ablated"  # the ablated program's row label is ``ablated:<winner's individual>``


@dataclass
class AblationOutcome:
    """What the ablation did to one winner.

    Attributes:
      simplification: ``dsl.simplify``'s result (its ``program`` is the ablated program).
      validation_seeds: the seeds of the validation fitness.
      stages: the ablated program through the funnel's stages (empty when nothing went).
      row: the ablated program's row at the deepest stage it reached (None when nothing went).
    """

    simplification: dsl.Simplification
    validation_seeds: list[int]
    stages: list[StageOutcome]
    row: Row | None

    @property
    def program(self) -> Program:
        return self.simplification.program

    @property
    def changed(self) -> bool:
        return self.program != self.simplification.original

    @property
    def removed(self) -> int:
        return len(self.simplification.original.statements) - len(self.program.statements)


def validation_fitness(
    evaluations: FunnelEvaluations, task_name: str, seeds: list[int]
) -> Callable[[Program], float]:
    """``evaluate(program)``: the mean validation fitness over ``seeds`` (-inf if any run failed)."""

    def evaluate(program: Program) -> float:
        values = [r.fitness for r in evaluations.results([(program, task_name, s) for s in seeds])]
        return sum(values) / len(values)  # a failed run's -inf makes the mean -inf

    return evaluate


def ablate_winner(
    funnel: FunnelOutcome,
    winner: Row,
    simplified: Program,
    tolerance: float,
    directory: Path,
    funnel_dir: Path,
    evaluator,
    log: Callable[[str], None] = lambda message: None,
) -> AblationOutcome:
    """Ablate ``simplified`` (the funnel ``winner``'s simplified program) and measure what is left.

    Args:
      funnel: the funnel's outcome (its config, search task, stages and tuned baselines).
      winner: the funnel's winner row.
      simplified: its simplified program.
      tolerance: the validation fitness a removal may cost, against the winner's.
      directory: the run's directory: ``ablated.txt``, ``ablation.txt`` and ``ablation/`` go here.
      funnel_dir: the funnel's directory, whose logged evaluations are reused.
      evaluator: where missing evaluations train.
      log: called with one line per step.
    """
    (directory / ABLATION_DIR).mkdir(parents=True, exist_ok=True)
    evaluations = FunnelEvaluations(directory / ABLATION_DIR, evaluator)
    evaluations.reuse(funnel_dir)
    seeds = list(funnel.config.tuning.seeds)
    try:
        log(f"{directory.name}: ablation of the simplified winner on {funnel.search_task}, seeds {seeds}")
        evaluate = validation_fitness(evaluations, funnel.search_task, seeds)
        result = dsl.simplify(simplified, evaluate=evaluate, tolerance=tolerance, round_constants=False)
        stages, row = [], None
        if result.program != simplified:
            log(f"{directory.name}: the ablated program through the funnel's stages")
            stages, row = _through_the_funnel(funnel, winner, result.program, evaluations, log)
    finally:
        evaluations.close()
    _write_atomically(directory / ABLATION_STEPS, result.report())
    header = (
        f"# {winner.label} (the funnel's winner) simplified, then ablated (validation fitness on "
        f"{funnel.search_task}, seeds {seeds}, tolerance {tolerance:g}): {result.summary()}\n"
    )
    _write_atomically(directory / ABLATED, header + result.program.to_text())
    return AblationOutcome(result, seeds, stages, row)


def _through_the_funnel(
    funnel: FunnelOutcome, winner: Row, program: Program, evaluations: FunnelEvaluations, log
) -> tuple[list[StageOutcome], Row | None]:
    """The ablated program through every configured stage, as the funnel takes a candidate."""
    source = winner.candidate
    analysis = dsl.analyze(program)
    candidate = Candidate(
        run=ABLATED_RUN,
        individual=source.individual,
        island=source.island,
        search_fitness=source.search_fitness,
        program=program,
        hash=analysis.hash,
        fingerprint=dsl.fingerprint(program),
        reasons=("ablation",),
    )
    stages, entering, row = [], [candidate], None
    for stage in funnel.stages:
        outcome = _run_stage(funnel.config, stage.config, stage.task, entering, candidate, evaluations, log)
        stages.append(outcome)
        row = outcome.row(candidate.label) or row
        entering = [r.candidate for r in outcome.rows if r.promoted]
    return stages, row
