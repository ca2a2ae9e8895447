"""Paired test differences (rival - reference, same seeds) from ``proxy_tuned_check.py`` outputs.

Prints a Markdown table: each program's tuned constants, the grid bound it hit, its test
metric (mean +- standard error over the evaluation seeds) and its paired difference to the
reference program (mean +- standard error of the per-seed differences), and whether the
reference beats it by at least 2 standard errors (lower metric is better).

    python scripts/proxy_paired.py docs/proxy_design_data/tuned_markov_fast_f1_*.json --reference lion
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys


def mean_se(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--reference", default="lion")
    args = parser.parse_args(argv)
    reports = {report["program"]: report for report in (json.load(open(path)) for path in args.files)}
    reference = reports[args.reference]
    print(
        "| program | lr | wd | bound hit | test (mean +- SE) | minus Lion (paired) | >= 2 SE | CPU-s (evals) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, report in sorted(reports.items(), key=lambda item: statistics.fmean(item[1]["test"])):
        if report["eval_seeds"] != reference["eval_seeds"]:
            raise SystemExit(f"{name}: evaluation seeds differ from {args.reference}'s")
        mean, se = mean_se(report["test"])
        paired = "-"
        verdict = "-"
        if name != args.reference:
            difference, difference_se = mean_se(
                [a - b for a, b in zip(report["test"], reference["test"], strict=True)]
            )
            paired = f"{difference:+.4f} +- {difference_se:.4f}"
            verdict = "yes" if difference >= 2 * difference_se else "no"
        print(
            f"| {name} | {report['lr']:.3g} | {report['weight_decay']:.3g} | "
            f"{', '.join(report['bound_hit']) or '-'} | {mean:.4f} +- {se:.4f} | {paired} | {verdict} | "
            f"{report['cpu_seconds']:.0f} ({report['evaluations']}) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
