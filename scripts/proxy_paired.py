"""Paired test differences (rival - reference, same seeds) from ``proxy_tuned_check.py`` outputs.

Prints a Markdown table, best program first: each program's tuned constants, the grid bound it
hit, its test metric (mean +- standard error over the evaluation seeds) and its paired
difference to the reference program (mean +- standard error of the per-seed differences), and
whether the reference beats it by at least 2 standard errors. The metric's direction is the
task's (``higher_is_better`` in the reports; reports without it are of loss tasks, where lower
is better).

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
    higher_is_better = reference.get("higher_is_better", False)
    if any(report.get("higher_is_better", False) != higher_is_better for report in reports.values()):
        raise SystemExit("the reports measure metrics of opposite directions")
    better = 1.0 if higher_is_better else -1.0
    print(
        f"| program | lr | wd | bound hit | test (mean +- SE) | minus {args.reference} (paired) "
        f"| {args.reference} ahead by >= 2 SE | CPU-s (evals) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    ranked = sorted(reports.items(), key=lambda item: -better * statistics.fmean(item[1]["test"]))
    for name, report in ranked:
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
            verdict = "yes" if -better * difference >= 2 * difference_se else "no"
        weight_decay = "-" if report["weight_decay"] is None else f"{report['weight_decay']:.3g}"
        print(
            f"| {name} | {report['lr']:.3g} | {weight_decay} | "
            f"{', '.join(report['bound_hit']) or '-'} | {mean:.4f} +- {se:.4f} | {paired} | {verdict} | "
            f"{report['cpu_seconds']:.0f} ({report['evaluations']}) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
