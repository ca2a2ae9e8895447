"""A hand-written variant of a pipeline run's winner, measured on every funnel stage beside it.

A diagnostic, not part of the method: it asks "does this edit of the winner train the same?"
(for instance, a nonlinearity the Lion-family rule cannot see past replaced by the identity).
The run's funnel is reopened from its log (nothing it or the ablation step trained is retrained); the variant
trains on each stage's task and test seeds, whether or not it would have been promoted, and
is compared seed by seed (mean ± standard error of the paired difference) with the funnel's
winner, its simplified and ablated forms when the run has them, and the stage's tuned
baselines. Its closest known optimizer and the Lion-family checks are printed too.

Its trainings are logged in ``<run>/variants/<variant's file name>/`` (a killed run
resumes); the table goes to stdout and to ``--report``.

    python scripts/measure_variant.py --config configs/rediscover_lion_v5.yaml runs/rediscover_v5/seed13 docs/rediscovery_v5/seed13/linearized.txt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from search import ConfigError, load_rediscovery_config

VARIANTS_DIR = "variants"


def _difference(candidate: list[float], other: list[float]) -> str:
    from search._funnel_stats import paired_comparison

    comparison = paired_comparison(candidate, other)
    return f"{comparison.difference:+.4f} ± {comparison.se:.4f} ({comparison.z:+.1f} SE)"


def measure(config, run: Path, variant_file: Path, evaluator, log) -> list[str]:
    """The markdown lines of the variant's comparison on every stage of ``run``'s funnel."""
    import dsl
    from dsl.library import load_program
    from search._funnel import run_funnel
    from search._funnel_stats import mean_and_se
    from search._funnel_store import FunnelEvaluations
    from search._rediscovery import FUNNEL_DIR, SEARCH_DIR, SIMPLIFIED, funnel_winner
    from search._rediscovery_ablation import ABLATED, ABLATION_DIR

    variant = load_program(str(variant_file))
    funnel = run_funnel(config.funnel, [str(run / SEARCH_DIR)], run / FUNNEL_DIR, evaluator, log)
    _, winner = funnel_winner(funnel)
    forms = {"winner": winner.candidate.program}
    for name, file in (("simplified", SIMPLIFIED), ("ablated", ABLATED)):
        if (run / file).is_file():
            forms[name] = load_program(str(run / file))
    directory = run / VARIANTS_DIR / variant_file.stem
    directory.mkdir(parents=True, exist_ok=True)
    evaluations = FunnelEvaluations(directory, evaluator)
    for logged in (run / FUNNEL_DIR, run / ABLATION_DIR):  # what the funnel and the ablation step trained
        evaluations.reuse(logged)
    lines = [
        f"Variant `{variant_file}` of {run}'s winner (individual {winner.candidate.individual}); "
        "test fitness, paired differences over each stage's seeds (variant minus the other).",
        "",
        "| stage | seeds | variant: test | "
        + " | ".join(f"− {name}" for name in forms)
        + " | − tuned baselines |",
        "|---|---|---|" + "---|" * len(forms) + "---|",
    ]
    try:
        for stage in funnel.stages:
            if not stage.rows:
                continue
            seeds = list(stage.config.seeds)
            log(
                f"stage {stage.config.name} ({stage.task}): the variant and the winner's forms, seeds {seeds}"
            )

            def test(program, task=stage.task, seeds=seeds):
                return [r.test_fitness for r in evaluations.results([(program, task, s) for s in seeds])]

            mine = test(variant)
            estimate = mean_and_se(mine)
            against_forms = [_difference(mine, test(program)) for program in forms.values()]
            baselines = [
                f"{row.label}: {_difference(mine, [r.test_fitness for r in row.results])}"
                for row in stage.rows
                if row.kind != "candidate"
            ]
            lines.append(
                f"| {stage.config.name} ({stage.task}) | {seeds} | {estimate.mean:.4f} ± {estimate.se:.4f} | "
                + " | ".join(against_forms)
                + f" | {'; '.join(baselines)} |"
            )
    finally:
        evaluations.close()
    closest = dsl.closest_optimizer(variant)
    lines += [
        "",
        "Closest known optimizer of the variant:",
        "",
        "    " + closest.report().replace("\n", "\n    "),
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a finished pipeline run (OUT/<run>, with summary.json)")
    parser.add_argument("variant", help="the variant's program file")
    parser.add_argument("--config", required=True, help="the pipeline config the run was made with")
    parser.add_argument("--report", help="also write the table here")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    run, variant = Path(args.run), Path(args.variant)
    if not (run / "summary.json").is_file():
        parser.error(f"not a finished pipeline run (no summary.json): {run}")
    if not variant.is_file():
        parser.error(f"no such program file: {variant}")
    try:
        config = load_rediscovery_config(args.config)
    except ConfigError as error:
        print(f"measure_variant: {error}", file=sys.stderr)
        return 2

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    from search._cli import make_evaluator

    evaluator = make_evaluator(config.search)
    try:
        text = "\n".join(measure(config, run, variant, evaluator, log)) + "\n"
    finally:
        evaluator.close()
    print(text, end="")
    if args.report:
        Path(args.report).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
