"""The pipeline's ablation step, after the fact, on finished pipeline runs that ran without it.

arXiv:2302.06675, section 5: after the search, statements that are not redundant but barely
change the fitness were removed by re-evaluation. The pipeline does this when
``pipeline.ablation_tolerance`` is set (``search._rediscovery_ablation``); this script applies
the same step, with the same code, to runs of a method that did not (``--tolerance``): the
funnel is reopened from its log (nothing is retrained), the probe-simplified winner
(``simplified.txt``) is ablated on the mean validation fitness over the funnel's tuning seeds,
and a changed program goes through the funnel's stages against the same tuned baselines.

Each run gets ``ablated.txt``, ``ablation.txt``, ``ablation/`` (its evaluations, so a killed
run resumes) and ``ablation.json`` (the figures, as the pipeline's ``summary.json`` holds
them under ``ablation``); the run's ``summary.json`` and its verdict are left as they were.
The table goes to stdout and to ``--report``. A verdict found this way is post hoc: the
method that produced the run did not include the step.

    python scripts/ablate_winners.py --config configs/rediscover_lion_v4.yaml --tolerance 0.001 runs/rediscover_v4/seed2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from search import ConfigError, load_rediscovery_config

ABLATION_JSON = "ablation.json"


def ablate_run(config, run: Path, tolerance: float, evaluator, log) -> dict:
    """The pipeline's ablation step on one finished run; its summary with ``ablation`` added."""
    from dsl.library import load_program
    from search._funnel import run_funnel
    from search._rediscovery import FUNNEL_DIR, SEARCH_DIR, SIMPLIFIED, ablation_summary, funnel_winner
    from search._rediscovery_ablation import ablate_winner

    summary = json.loads((run / "summary.json").read_text())
    funnel = run_funnel(config.funnel, [str(run / SEARCH_DIR)], run / FUNNEL_DIR, evaluator, log)
    _, winner = funnel_winner(funnel)
    simplified = load_program(str(run / SIMPLIFIED))
    ablation = ablate_winner(funnel, winner, simplified, tolerance, run, run / FUNNEL_DIR, evaluator, log)
    summary["ablation"] = ablation_summary(ablation, tolerance, summary["verdict"], summary["reference"])
    (run / ABLATION_JSON).write_text(json.dumps(summary["ablation"], indent=1, allow_nan=False))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="finished pipeline runs (OUT/<run>, each with summary.json)")
    parser.add_argument("--config", required=True, help="the pipeline config the runs were made with")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="validation fitness a removal may cost")
    parser.add_argument("--report", help="also write the table here")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    runs = [Path(run) for run in args.runs]
    missing = [str(run) for run in runs if not (run / "summary.json").is_file()]
    if missing:
        parser.error(f"not a finished pipeline run (no summary.json): {', '.join(missing)}")
    if not args.tolerance >= 0:
        parser.error(f"--tolerance: expected a number >= 0, got {args.tolerance}")
    try:
        config = load_rediscovery_config(args.config)
    except ConfigError as error:
        print(f"ablate_winners: {error}", file=sys.stderr)
        return 2

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    from search._cli import make_evaluator
    from search._rediscovery_ablation import ABLATED, ABLATION_STEPS
    from search._rediscovery_report import ablation_rows

    evaluator = make_evaluator(config.search)
    try:
        summaries = [ablate_run(config, run, args.tolerance, evaluator, log) for run in runs]
    finally:
        evaluator.close()
    files = {}
    for summary, run in zip(summaries, runs, strict=True):
        summary["name"] = str(run)  # runs of several pipelines may share a name (seed0)
        files[str(run)] = {"ablated": run / ABLATED, "ablation_steps": run / ABLATION_STEPS}
    base = Path(args.report).parent if args.report else Path.cwd()
    text = "\n".join(ablation_rows(summaries, files, base)) + "\n"
    print(text, end="")
    if args.report:
        Path(args.report).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
