"""Tuned baselines: every library optimizer on every proxy task and size.

For each task family: tune each library program's learning-rate constant (and its
weight-decay constant, if it has one) on size A with ``proxy_tasks.tune`` (seeds 0, 1, 2,
mean validation fitness, the edge-growing grid ``BASELINE_GRID``), then train the tuned
program with seeds the tuning never saw (``--seeds``, default 3, 4, 5) on sizes A and B,
and on size C for the programs named by ``--c-programs`` (compute budget), and report the
**test** metric. Sizes B and C reuse A's constants; AdamW and Lion tuned on every size
with ten seeds are in ``docs/noise.md`` (``scripts/noise.py``), whose noise figures this
table quotes.

Every evaluation is recorded in ``docs/baselines_data/evaluations_<family>.json`` (shared
with ``scripts/noise.py``), so an interrupted run resumes where it stopped and several
processes can share the work; the Markdown is rewritten from the records after each stage.

    nice -n 19 python scripts/baselines.py --families mlp_digits vit_digits charlm
    python scripts/baselines.py --render-only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import dsl
import proxy_tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _evaluations import BASELINE_GRID, TUNE_SEEDS, Evaluations  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FAMILIES = ("mlp_digits", "vit_digits", "charlm")
SIZES = ("a", "b", "c")


class Unrecorded(KeyError):
    """A needed evaluation is not in the record (``--render-only`` does not train)."""


def tune_recorded(evaluations: Evaluations, task_name: str, program: dsl.Program, train: bool = True):
    """``proxy_tasks.tune`` with every run going through ``evaluations``.

    With ``train=False`` only recorded runs are used (``Unrecorded`` if one is missing).
    """

    def evaluate_batch(jobs):
        results = []
        for job, seed in jobs:
            result = (
                evaluations.evaluate(task_name, job, seed) if train else evaluations.get(task_name, job, seed)
            )
            if result is None:
                raise Unrecorded(task_name)
            results.append(result)
        return results

    return proxy_tasks.tune(None, program, TUNE_SEEDS, evaluate_batch=evaluate_batch, **BASELINE_GRID)


def summary(evaluations: Evaluations, task_name: str, program: dsl.Program, seeds) -> dict | None:
    """Test-metric mean and spread over ``seeds`` from the record (None if a run is missing)."""
    results = [evaluations.get(task_name, program, seed) for seed in seeds]
    if any(r is None for r in results):
        return None
    metrics = [r.test_metric for r in results if not r.failed]
    return {
        "mean": statistics.fmean(metrics) if metrics else math.nan,
        "std": statistics.stdev(metrics) if len(metrics) > 1 else 0.0,
        "failures": sum(r.failed for r in results),
        "seconds": statistics.fmean(r.seconds for r in results),
    }


def run_family(family: str, args, evaluations: Evaluations) -> None:
    programs = {name: dsl.library.load(name) for name in args.programs}
    tuned: dict[str, dsl.Program] = {}
    for name, program in programs.items():
        start = time.perf_counter()
        result = tune_recorded(evaluations, f"{family}_a", program)
        tuned[name] = result.program
        print(
            f"[{family}] tuned {name}: lr={result.lr:.3g} wd={result.weight_decay} fitness={result.fitness:.4f}"
            f" bound={list(result.bound_hit)} ({result.evaluations} runs, {time.perf_counter() - start:.0f}s)",
            flush=True,
        )
    render(args)
    for size in SIZES:
        names = [n for n in programs if size != "c" or n in args.c_programs]
        for name in names:
            for seed in args.seeds:
                evaluations.evaluate(f"{family}_{size}", tuned[name], seed)
            s = summary(evaluations, f"{family}_{size}", tuned[name], args.seeds)
            print(f"[{family}_{size}] {name}: test {s['mean']:.4f} +- {s['std']:.4f}", flush=True)
        render(args)


def _noise_lines(data_dir: Path, family: str) -> list[str]:
    """One line quoting docs/noise.md's per-size noise for ``family``, if measured."""
    path = data_dir / "noise.json"
    if not path.exists():
        return []
    noise = json.loads(path.read_text())
    parts = []
    for size in SIZES:
        stds = [
            cell["test_std"]
            for key, cell in noise.items()
            if key.startswith(f"{family}_{size}/") and cell["test_std"] is not None
        ]
        if stds:
            parts.append(f"{size.upper()} {max(stds):.4f}")
    if not parts:
        return []
    return [
        "Seed noise of the test metric (standard deviation over 10 seeds, the larger of tuned AdamW and",
        f"Lion, `docs/noise.md`): {', '.join(parts)}.",
        "",
    ]


def render(args) -> None:
    """Rewrite the Markdown from every family's record."""
    seeds = ", ".join(map(str, args.seeds))
    lines = [
        "# Tuned baselines on the proxy tasks",
        "",
        "Produced by `scripts/baselines.py` (command below). Each library program's learning-rate",
        "constant (and weight-decay constant, when it has one) is tuned on size A with training seeds",
        "0, 1, 2 (mean validation fitness) by `proxy_tasks.tune`: initial grid learning rate x 10^-1 ..",
        "10^1 and weight decay x 10^-0.5 .. 10^0.5 of the program's constants in half-decade steps, grown",
        "by up to two decades in each direction while the best point is on an edge (`bound` marks a",
        f"constant still on the edge at that limit). The tuned program is then trained with seeds {seeds}",
        "(not tuning seeds) on sizes A and B, and on size C for "
        + ", ".join(f"`{n}`" for n in args.c_programs)
        + " only (compute budget).",
        "**B and C reuse A's constants** (not re-tuned; `docs/noise.md` has AdamW and Lion tuned per",
        "size). Cells: **test** metric (held-out split, never used for tuning), mean +- standard",
        "deviation over the seeds (accuracy: higher is better; log perplexity in nats: lower is",
        "better); `(k failed)` counts diverged seeds; an empty cell was not measured in this session.",
        "",
        f"Command: `{args.command}`.",
        "",
    ]
    data_dir = Path(args.data_dir)
    notes = data_dir / "notes.md"
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    programs = {name: dsl.library.load(name) for name in dsl.library.names()}
    for family in FAMILIES:
        path = data_dir / f"evaluations_{family}.json"
        if not path.exists():
            continue
        evaluations = Evaluations(path)
        metric = "accuracy" if family != "charlm" else "log perplexity"
        rows = []
        for name, program in programs.items():
            try:
                result = tune_recorded(evaluations, f"{family}_a", program, train=False)
            except Unrecorded:
                continue
            cells = []
            for size in SIZES:
                s = summary(evaluations, f"{family}_{size}", result.program, args.seeds)
                failed = "" if s is None or not s["failures"] else f" ({s['failures']} failed)"
                cells.append("" if s is None else f"{s['mean']:.4f} +- {s['std']:.4f}{failed}")
            lr = f"{result.lr:.3g}" + (" bound" if "lr" in result.bound_hit else "")
            wd = "-" if result.weight_decay is None else f"{result.weight_decay:.3g}"
            wd += " bound" if "weight_decay" in result.bound_hit else ""
            rows.append(f"| {name} | {lr} | {wd} | " + " | ".join(cells) + " |")
        if not rows:
            continue
        lines += [f"## {family} (test {metric})", ""] + _noise_lines(data_dir, family)
        lines += ["| program | lr | wd | A | B | C |", "|---|---|---|---|---|---|", *rows, ""]
    target = Path(args.out)
    temporary = target.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text("\n".join(lines))
    os.replace(temporary, target)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--programs", nargs="+", default=dsl.library.names(), choices=dsl.library.names())
    parser.add_argument("--seeds", nargs="+", type=int, default=[3, 4, 5])
    parser.add_argument("--c-programs", nargs="+", default=["adamw", "lion"])
    parser.add_argument("--data-dir", default=str(REPO / "docs" / "baselines_data"))
    parser.add_argument("--out", default=str(REPO / "docs" / "baselines.md"))
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args(argv)
    args.command = "nice -n 19 python scripts/baselines.py"
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    if not args.render_only:
        for family in args.families:
            run_family(family, args, Evaluations(Path(args.data_dir) / f"evaluations_{family}.json"))
    render(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
