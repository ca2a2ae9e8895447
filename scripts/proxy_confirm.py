"""Confirm a proxy on the registered task: tuned library programs, held-out seeds and test data.

The real thing the search sees: each library program (``adamw``, ``lion``,
``ablation_0.9``, ``ablation_0.99``) runs through the task's compiled interpreter. Its
learning-rate and weight-decay constants (found by dataflow, ``proxy_tasks._tune``) are tuned
on a log grid with the mean validation fitness over ``--tune-seeds``; the grid grows one step
past any edge the best point sits on (up to ``--max-extend`` times). The tuned program is then
evaluated on ``--eval-seeds`` and the table gives the test metric, mean +- standard error,
and each rival's paired difference to Lion (same seeds: same init, same minibatches).

Every evaluation is cached in ``--out`` (JSON), so a killed run resumes, and several
processes (one per program) may share a task by writing separate files.

    python scripts/proxy_confirm.py --task zipf_teacher_a --programs lion --out docs/proxy_design_data/confirm_lion.json
    python scripts/proxy_confirm.py --render docs/proxy_design_data/confirm_*.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

HALF_DECADE = 10.0**0.5
LR_CENTRES = {"adamw": 3e-3, "lion": 3e-4, "ablation_0.9": 3e-4, "ablation_0.99": 3e-4}
WD_GRID = (1e-3, 1e-2, 1e-1, 1.0)


def tune_and_evaluate(task, name, tune_seeds, eval_seeds, max_extend, cache, save):
    """The edge-extending grid for library program ``name``; returns its report dict."""
    import dsl
    from proxy_tasks import find_lr_constant, find_wd_constant, with_constant

    program = dsl.library.load(name)
    lr_site, wd_site = find_lr_constant(program), find_wd_constant(program)

    def evaluate(lr, wd, seed):
        key = f"{lr:.6g},{wd:.6g},{seed}"
        if key not in cache:
            candidate = with_constant(with_constant(program, lr_site, lr), wd_site, wd)
            start = time.process_time()
            result = task.evaluate(candidate, seed)
            cache[key] = {
                "fitness": result.fitness,
                "metric": result.metric,
                "test_metric": result.test_metric,
                "train_loss": result.train_loss,
                "failure": result.failure,
                "cpu_seconds": time.process_time() - start,
            }
            save()
        return cache[key]

    lr_grid = [LR_CENTRES[name] * HALF_DECADE**k for k in range(-2, 3)]
    wd_grid = list(WD_GRID)
    for _ in range(max_extend + 1):
        mean = {}
        for lr in lr_grid:
            for wd in wd_grid:
                fitnesses = [evaluate(lr, wd, s)["fitness"] for s in tune_seeds]
                mean[(lr, wd)] = (
                    float(np.mean(fitnesses)) if all(map(math.isfinite, fitnesses)) else -math.inf
                )
        lr, wd = max(mean, key=mean.get)
        edges = []
        if lr == lr_grid[0]:
            lr_grid.insert(0, lr / HALF_DECADE)
            edges.append("lr-low")
        if lr == lr_grid[-1]:
            lr_grid.append(lr * HALF_DECADE)
            edges.append("lr-high")
        if wd == wd_grid[0]:
            wd_grid.insert(0, wd / 10)
            edges.append("wd-low")
        if wd == wd_grid[-1]:
            wd_grid.append(wd * 10)
            edges.append("wd-high")
        if not edges:
            break
    test = [evaluate(lr, wd, s)["test_metric"] for s in eval_seeds]
    return {
        "lr": lr,
        "wd": wd,
        "edges": edges,
        "tune_fitness": mean[(lr, wd)],
        "eval_seeds": list(eval_seeds),
        "test": test,
        "grid": {f"{k[0]:.6g},{k[1]:.6g}": v for k, v in mean.items()},
    }


def render(paths) -> str:
    reports = {}
    cpu = 0.0
    evaluations = 0
    for path in paths:
        data = json.loads(Path(path).read_text())
        reports.update(data["reports"])
        for entries in data["cache"].values():
            cpu += sum(e["cpu_seconds"] for e in entries.values())
            evaluations += len(entries)
    lion = reports.get("lion")
    lines = [
        "| program | lr | wd | edge | test (mean +- SE) | minus Lion (paired) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in sorted(reports.items()):
        test = np.asarray(r["test"])
        cell = f"{test.mean():.4f} +- {test.std(ddof=1) / math.sqrt(len(test)):.4f}"
        diff = "-"
        if lion and name != "lion":
            d = test - np.asarray(lion["test"])
            diff = f"{d.mean():+.4f} +- {d.std(ddof=1) / math.sqrt(len(d)):.4f}"
        lines.append(
            f"| {name} | {r['lr']:.3g} | {r['wd']:.3g} | {','.join(r['edges']) or '-'} | {cell} | {diff} |"
        )
    lines.append(
        f"\n{evaluations} evaluations, {cpu:.0f} CPU-seconds ({cpu / max(1, evaluations):.3f} s each)."
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="zipf_teacher_a")
    parser.add_argument("--programs", nargs="+", default=list(LR_CENTRES))
    parser.add_argument("--tune-seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--eval-seeds", nargs="+", type=int, default=[3, 4, 5, 6, 7])
    parser.add_argument("--max-extend", type=int, default=2)
    parser.add_argument("--out")
    parser.add_argument("--render", nargs="+", help="print the table of these result files and exit")
    args = parser.parse_args(argv)
    if args.render:
        print(render(args.render))
        return 0
    import proxy_tasks

    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {"task": args.task, "cache": {}, "reports": {}}

    def save():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=1))

    task = proxy_tasks.get(args.task)
    for name in args.programs:
        cache = data["cache"].setdefault(name, {})
        report = tune_and_evaluate(task, name, args.tune_seeds, args.eval_seeds, args.max_extend, cache, save)
        data["reports"][name] = report
        save()
        print(name, {k: v for k, v in report.items() if k != "grid"}, flush=True)
    print(render([out]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
