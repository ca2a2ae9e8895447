"""Seed noise of the proxy tasks: the spread of the test metric over ten training seeds.

For every task (family x size A, B, C) and for AdamW and Lion: tune the learning-rate and
weight-decay constants on seeds 0, 1, 2 (validation fitness, ``proxy_tasks.tune`` with
the edge-growing grid ``BASELINE_GRID``), then train the tuned program with seeds 3..12
and record the test metric of each run. Size A starts the grid at the library's
constants; sizes B and C start it at the constants tuned on the size below (the grid
still grows as far as it needs). Writes ``docs/noise.md`` and the summary
``docs/baselines_data/noise.json``; every evaluation is recorded in
``docs/baselines_data/evaluations_<family>.json`` (shared with ``scripts/baselines.py``),
so an interrupted run resumes and a rerun only renders.

    nice -n 19 python scripts/noise.py --families mlp_digits vit_digits charlm
    python scripts/noise.py --render-only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from pathlib import Path

import dsl
import proxy_tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _evaluations import BASELINE_GRID, EVAL_SEEDS, TUNE_SEEDS, Evaluations  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FAMILIES = ("mlp_digits", "vit_digits", "charlm")
SIZES = ("a", "b", "c")
PROGRAMS = ("adamw", "lion")
COMMAND = "nice -n 19 python scripts/noise.py --families {families}"


class Unrecorded(KeyError):
    """A needed evaluation is not in the record."""


def measure_cell(evaluations: Evaluations, task_name: str, start: dsl.Program, train: bool = True) -> dict:
    """Tune ``start`` on ``task_name`` (seeds 0-2), then test it on seeds 3-12.

    With ``train=False`` the cell is read from the record alone (``Unrecorded`` if a run
    is missing), so the summary is always derived from the records.
    """

    def evaluate(job_task: str, program: dsl.Program, seed: int):
        result = (
            evaluations.evaluate(job_task, program, seed)
            if train
            else evaluations.get(job_task, program, seed)
        )
        if result is None:
            raise Unrecorded(task_name)
        return result

    tuned = proxy_tasks.tune(
        None,
        start,
        TUNE_SEEDS,
        evaluate_batch=lambda jobs: [evaluate(task_name, program, seed) for program, seed in jobs],
        **BASELINE_GRID,
    )
    results = [evaluate(task_name, tuned.program, seed) for seed in EVAL_SEEDS]
    passed = [r for r in results if not r.failed]
    test = [r.test_metric for r in passed]
    validation = [r.metric for r in passed]
    return {
        "task": task_name,
        "lr": tuned.lr,
        "weight_decay": tuned.weight_decay,
        "tune_fitness": tuned.fitness if math.isfinite(tuned.fitness) else None,
        "bound_hit": list(tuned.bound_hit),
        "tune_evaluations": tuned.evaluations,
        "program": tuned.program.to_text(),
        "seeds": list(EVAL_SEEDS),
        "test_metrics": test,
        "test_mean": statistics.fmean(test) if test else None,
        "test_std": statistics.stdev(test) if len(test) > 1 else None,
        "validation_mean": statistics.fmean(validation) if validation else None,
        "validation_std": statistics.stdev(validation) if len(validation) > 1 else None,
        "failures": len(results) - len(passed),
        "seconds_per_evaluation": statistics.fmean(r.seconds for r in results),
    }


def _cells(family: str, data_dir: Path, train_sizes=(), programs=PROGRAMS):
    """Yield ``(key, cell)`` for ``family``'s sizes in order; sizes in ``train_sizes`` are
    measured (training what is missing), the others read from the record (None if missing).
    """
    evaluations = Evaluations(data_dir / f"evaluations_{family}.json")
    start = {name: dsl.library.load(name) for name in programs}
    for size in SIZES:
        for name in programs:
            cell = None
            if start[name] is not None:
                try:
                    cell = measure_cell(
                        evaluations, f"{family}_{size}", start[name], train=size in train_sizes
                    )
                except Unrecorded:
                    pass
            start[name] = dsl.parse(cell["program"]) if cell else None
            yield f"{family}_{size}/{name}", cell


def collect(data_dir: Path) -> dict:
    """Every cell the records hold, for every family (nothing is trained)."""
    return {key: cell for family in FAMILIES for key, cell in _cells(family, data_dir) if cell is not None}


def run(args) -> None:
    data_dir = Path(args.data_dir)
    for family in args.families:
        for key, cell in _cells(family, data_dir, args.sizes, args.programs):
            if cell is None or key.split("/")[0][-1] not in args.sizes:
                continue
            print(
                f"[{key}] lr {cell['lr']:.3g} wd {cell['weight_decay']}"
                f" test {cell['test_mean']:.4f} +- {cell['test_std']:.4f}"
                f" ({cell['failures']} failed, bound {cell['bound_hit']}, {cell['tune_evaluations']} tuning runs)",
                flush=True,
            )
            write(args)


def write(args) -> None:
    """Rebuild ``noise.json`` and ``docs/noise.md`` from all records."""
    summary = collect(Path(args.data_dir))
    _write_json(Path(args.data_dir) / "noise.json", summary)
    render(args, summary)


def _write_json(path: Path, data) -> None:
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(temporary, path)


def _cell_text(cell: dict | None, digits: int) -> str:
    if cell is None or cell["test_mean"] is None:
        return "not measured" if cell is None else "all failed"
    failed = f", {cell['failures']} failed" if cell["failures"] else ""
    return f"{cell['test_mean']:.{digits}f} +- {cell['test_std']:.{digits}f}{failed}"


def _constants_text(cell: dict | None) -> str:
    if cell is None:
        return ""
    wd = "-" if cell["weight_decay"] is None else f"{cell['weight_decay']:.2g}"
    bound = " (bound)" if cell["bound_hit"] else ""
    return f"{cell['lr']:.2g} / {wd}{bound}"


def _difference(first: dict | None, second: dict | None, paired: bool) -> tuple[float, float] | None:
    """Mean of ``second`` minus mean of ``first`` and its standard error.

    ``paired``: the two cells trained the same seeds (same initialisation and batches), so
    the error is that of the per-seed differences; otherwise of two independent means.
    """
    if not first or not second or first["test_std"] is None or second["test_std"] is None:
        return None
    if paired and not first["failures"] and not second["failures"]:
        differences = [b - a for a, b in zip(first["test_metrics"], second["test_metrics"], strict=True)]
        return statistics.fmean(differences), statistics.stdev(differences) / math.sqrt(len(differences))
    error = math.sqrt(
        first["test_std"] ** 2 / len(first["test_metrics"])
        + second["test_std"] ** 2 / len(second["test_metrics"])
    )
    return second["test_mean"] - first["test_mean"], error


def _difference_lines(summary: dict) -> list[str]:
    lines = [
        "## Lion against AdamW",
        "",
        "Test metric of tuned Lion minus tuned AdamW, mean over the 10 seeds of the per-seed difference (both",
        "trained with the same seeds: same initialisation and batches) and its standard error (paired);",
        "accuracy: positive favours Lion; log perplexity: negative favours Lion.",
        "",
        "| task | Lion - AdamW | SE | in SE |",
        "|---|---|---|---|",
    ]
    for family in FAMILIES:
        for size in SIZES:
            task_name = f"{family}_{size}"
            found = _difference(
                summary.get(f"{task_name}/adamw"), summary.get(f"{task_name}/lion"), paired=True
            )
            if found:
                difference, error = found
                lines.append(f"| {task_name} | {difference:+.4f} | {error:.4f} | {difference / error:+.1f} |")
    return lines + [""]


def _rise_lines(summary: dict) -> list[str]:
    lines = [
        "## Do the sizes rise?",
        "",
        "Tuned AdamW (tuned on each size), test metric of each size minus the size below it (sign flipped",
        "for log perplexity, so positive is better), against the seed noise `s` (the larger standard",
        "deviation of the two sizes) and the standard error of the difference of the 10-seed means.",
        "",
        "| family | step | better by | s | SE |",
        "|---|---|---|---|---|",
    ]
    for family in FAMILIES:
        sign = -1.0 if family == "charlm" else 1.0
        for lower, upper in (("a", "b"), ("b", "c")):
            first = summary.get(f"{family}_{lower}/adamw")
            second = summary.get(f"{family}_{upper}/adamw")
            found = _difference(first, second, paired=False)
            if found:
                s = max(first["test_std"], second["test_std"])
                lines.append(
                    f"| {family} | {lower.upper()} -> {upper.upper()} | {sign * found[0]:+.4f} | {s:.4f} | {found[1]:.4f} |"
                )
    return lines + [""]


def render(args, summary: dict) -> None:
    """Write ``docs/noise.md`` from the summary (cells not measured are marked so)."""
    n = len(EVAL_SEEDS)
    lines = [
        "# Seed noise of the proxy tasks",
        "",
        "Produced by `scripts/noise.py`. For each task and for `adamw` and `lion`: the learning-rate and",
        "weight-decay constants are tuned on that task with training seeds 0, 1, 2 (mean validation",
        "fitness; `proxy_tasks.tune`, initial grid learning rate x 10^-1 .. 10^1 and weight decay x",
        "10^-0.5 .. 10^0.5 in half-decade steps, grown by up to two decades while the best point is on an",
        "edge; size A starts from the library constants, B and C from the constants tuned on the size",
        f"below). The tuned program is then trained with {n} other seeds (3 .. {2 + n}) and scored on the",
        "**held-out test split** (digits: 300 test images, so one image is 0.0033 accuracy; char LM: the",
        "last 10% of the text, 46,505 characters). Cells: test metric, mean +- standard deviation over",
        f"the {n} seeds (accuracy: higher is better; log perplexity in nats: lower is better); `lr / wd` are",
        "the tuned constants, `(bound)` marks a constant still on the grid's edge at the growth bound.",
        "",
        "**Noise level to compare against.** `s` is the larger of the two programs' standard deviations",
        f"on the task; a difference between two programs' means over {n} seeds has a standard error of",
        f"about `s x sqrt(2/{n})` (`SE{n}`), over 3 seeds `s x sqrt(2/3)` (`SE3`). Treat differences below",
        "2 SE as noise. Seed noise only: the test set is fixed, so its sampling error (a different draw",
        "of test images) comes on top.",
        "",
        "| task | AdamW lr / wd | AdamW test | Lion lr / wd | Lion test | s | SE10 | SE3 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    missing = []
    for family in FAMILIES:
        digits = 3 if family == "charlm" else 4
        for size in SIZES:
            task_name = f"{family}_{size}"
            cells = {name: summary.get(f"{task_name}/{name}") for name in PROGRAMS}
            missing += [f"{task_name}/{name}" for name, cell in cells.items() if cell is None]
            stds = [c["test_std"] for c in cells.values() if c is not None and c["test_std"] is not None]
            s = max(stds) if stds else None
            noise = (
                [
                    f"{s:.{digits}f}",
                    f"{s * math.sqrt(2 / n):.{digits}f}",
                    f"{s * math.sqrt(2 / 3):.{digits}f}",
                ]
                if s is not None
                else ["", "", ""]
            )
            lines.append(
                f"| {task_name} | {_constants_text(cells['adamw'])} | {_cell_text(cells['adamw'], digits)}"
                f" | {_constants_text(cells['lion'])} | {_cell_text(cells['lion'], digits)} | "
                + " | ".join(noise)
                + " |"
            )
    lines += [""] + _difference_lines(summary) + _rise_lines(summary)
    if missing:
        families = [f for f in FAMILIES if any(m.startswith(f) for m in missing)]
        lines += [
            "**Not measured in this session** (compute): " + ", ".join(f"`{m}`" for m in missing) + ".",
            "To finish them (resumes from the recorded evaluations):",
            "",
            f"    {COMMAND.format(families=' '.join(families))}",
            "",
        ]
    lines += [
        "Raw data: `docs/baselines_data/noise.json` (per cell: tuned constants and program, the ten test",
        "metrics, validation mean and spread, tuning cost) and `docs/baselines_data/evaluations_<family>.json`",
        "(every training run, tuning grids included).",
        "",
    ]
    target = Path(args.out)
    temporary = target.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text("\n".join(lines))
    os.replace(temporary, target)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=SIZES)
    parser.add_argument("--programs", nargs="+", default=list(PROGRAMS), choices=PROGRAMS)
    parser.add_argument("--data-dir", default=str(REPO / "docs" / "baselines_data"))
    parser.add_argument("--out", default=str(REPO / "docs" / "noise.md"))
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args(argv)
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    if not args.render_only:
        run(args)
    write(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
