"""Tuned baselines: every library optimizer on every proxy task and size.

For each task family: tune each library program's learning-rate constant (and its
weight-decay constant, if it has one) on size A with seed 0 over a log grid, then
evaluate the tuned program with fresh seeds on sizes A, B and (for the programs named by
``--c-programs``, to fit the budget) C. Sizes B and C reuse A's tuned constants: they are
not re-tuned. The grid follows ``proxy_tasks._tune`` (the constants are found by
dataflow, one grid point is the mean over the tuning seeds) but is wider in the
learning rate: multipliers 10^-1 .. 10^2 of the program's default, half-decade steps,
and weight-decay multipliers 10^-1, 1, 10.

Every evaluation is cached in a JSON file per family (``--data-dir``), so an interrupted
run resumes where it stopped and several processes (one per family) can share the work;
the Markdown table is rewritten from all cache files after each stage.

    python scripts/baselines.py --families charlm vit_digits mlp_digits
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
from proxy_tasks._tune import find_lr_constant, find_wd_constant, with_constant

REPO = Path(__file__).resolve().parent.parent
LR_FACTORS = tuple(10.0 ** (k / 2) for k in range(-2, 5))
WD_FACTORS = (0.1, 1.0, 10.0)
FAMILIES = ("mlp_digits", "vit_digits", "charlm")
SIZES = ("a", "b", "c")


class Cache:
    """Results of (task, program text, seed), persisted as JSON after every new entry."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, dict] = json.loads(path.read_text()) if path.exists() else {}

    @staticmethod
    def key(task: str, program: dsl.Program, seed: int) -> str:
        return json.dumps([task, program.to_text(), seed])

    def task(self, task_name: str) -> proxy_tasks.Task:
        """The task ``task_name`` names (a registered one here; subclasses may add variants)."""
        return proxy_tasks.get(task_name)

    def evaluate(self, task_name: str, program: dsl.Program, seed: int) -> dict:
        key = self.key(task_name, program, seed)
        if key not in self.entries:
            result = self.task(task_name).evaluate(program, seed)
            self.entries[key] = {
                "fitness": result.fitness,
                "metric": result.metric,
                "failure": result.failure,
                "seconds": result.seconds,
            }
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self.entries))
            os.replace(temporary, self.path)
        return self.entries[key]


def tuned_program(cache: Cache, task_name: str, program: dsl.Program, seeds) -> tuple[dsl.Program, dict]:
    """The grid point with the best mean fitness over ``seeds`` (ties: first in grid order)."""
    lr_site = find_lr_constant(program)
    wd_site = find_wd_constant(program)
    lr0 = lr_site.value(program)
    wd0 = wd_site.value(program) if wd_site else None
    best = None
    for lr_index, lr_factor in enumerate(LR_FACTORS):
        for wd_index, wd_factor in enumerate(WD_FACTORS if wd_site else (None,)):
            candidate = with_constant(program, lr_site, lr0 * lr_factor)
            if wd_site:
                candidate = with_constant(candidate, wd_site, wd0 * wd_factor)
            fitnesses = [cache.evaluate(task_name, candidate, seed)["fitness"] for seed in seeds]
            fitness = statistics.fmean(fitnesses) if all(math.isfinite(f) for f in fitnesses) else -math.inf
            if best is None or fitness > best[0]["fitness"]:
                edges = []
                if lr_index in (0, len(LR_FACTORS) - 1):
                    edges.append("lr")
                if wd_site and wd_index in (0, len(WD_FACTORS) - 1):
                    edges.append("wd")
                info = {
                    "fitness": fitness,
                    "lr": lr0 * lr_factor,
                    "wd": wd0 * wd_factor if wd_site else None,
                    "edges": edges,
                }
                best = (info, candidate)
    return best[1], best[0]


def summary(cache: Cache, task_name: str, program: dsl.Program, seeds) -> dict | None:
    results = [cache.entries.get(Cache.key(task_name, program, seed)) for seed in seeds]
    if any(r is None for r in results):
        return None
    metrics = [r["metric"] for r in results if r["failure"] is None]
    return {
        "mean": statistics.fmean(metrics) if metrics else math.nan,
        "std": statistics.stdev(metrics) if len(metrics) > 1 else 0.0,
        "failures": sum(r["failure"] is not None for r in results),
        "seconds": statistics.fmean(r["seconds"] for r in results),
    }


def run_family(family: str, args, cache: Cache) -> None:
    programs = {name: dsl.library.load(name) for name in dsl.library.names()}
    tuned: dict[str, dsl.Program] = {}
    for name, program in programs.items():
        start = time.perf_counter()
        tuned[name], info = tuned_program(cache, f"{family}_a", program, args.tune_seeds)
        print(
            f"[{family}] tuned {name}: lr={info['lr']:.3g} wd={info['wd']} fitness={info['fitness']:.4f}"
            f" edges={info['edges']} ({time.perf_counter() - start:.0f}s)",
            flush=True,
        )
    render(args)
    for size in SIZES:
        names = list(programs) if size != "c" else [n for n in programs if n in args.c_programs]
        for name in names:
            start = time.perf_counter()
            for seed in args.seeds:
                cache.evaluate(f"{family}_{size}", tuned[name], seed)
            s = summary(cache, f"{family}_{size}", tuned[name], args.seeds)
            print(
                f"[{family}_{size}] {name}: {s['mean']:.4f} +- {s['std']:.4f}, {s['failures']} failed"
                f" ({time.perf_counter() - start:.0f}s)",
                flush=True,
            )
        render(args)


def render(args) -> None:
    """Rewrite the Markdown table from every family's cache file."""
    lines = [
        "# Tuned baselines on the proxy tasks",
        "",
        "Produced by `scripts/baselines.py` (command below). Each library program's learning-rate",
        "constant (and weight-decay constant, when it has one) is tuned on size A with seed"
        f" {', '.join(map(str, args.tune_seeds))}",
        "over a log grid: learning rate x 10^-1 .. 10^2 of the program's default in half-decade steps,",
        "weight decay x 0.1, 1, 10. The tuned constants are then evaluated with seeds"
        f" {', '.join(map(str, args.seeds))}",
        "(not the tuning seed) on sizes A and B, and on size C for "
        + ", ".join(f"`{n}`" for n in args.c_programs)
        + " only (compute budget).",
        "**B and C reuse A's constants** (not re-tuned). Cells: validation metric, mean +- standard",
        "deviation over the seeds (accuracy: higher is better; log perplexity in nats: lower is",
        "better); `(k failed)` counts diverged seeds. `edge` marks a tuned value on the grid's edge.",
        "",
        f"Command: `{args.command}` (this run: `--families charlm` and `--families vit_digits"
        " mlp_digits` as two processes sharing the cache, then `--render-only`).",
        "",
    ]
    notes = Path(args.data_dir) / "notes.md"
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    programs = {name: dsl.library.load(name) for name in dsl.library.names()}
    for family in FAMILIES:
        path = Path(args.data_dir) / f"{family}.json"
        if not path.exists():
            continue
        cache = Cache(path)
        metric = "accuracy" if family != "charlm" else "log perplexity"
        lines += [
            f"## {family} ({metric})",
            "",
            "| program | lr | wd | A | B | C |",
            "|---|---|---|---|---|---|",
        ]
        rows = []
        for name, program in programs.items():
            try:
                tuned, info = tuned_from_cache(cache, f"{family}_a", program, args.tune_seeds)
            except KeyError:
                continue
            cells = []
            for size in SIZES:
                s = summary(cache, f"{family}_{size}", tuned, args.seeds)
                if s is None:
                    cells.append("")
                    continue
                failed = f" ({s['failures']} failed)" if s["failures"] else ""
                cells.append(f"{s['mean']:.4f} +- {s['std']:.4f}{failed}")
            lr = f"{info['lr']:.3g}" + (" edge" if "lr" in info["edges"] else "")
            wd = (
                "-"
                if info["wd"] is None
                else f"{info['wd']:.3g}" + (" edge" if "wd" in info["edges"] else "")
            )
            rows.append(f"| {name} | {lr} | {wd} | " + " | ".join(cells) + " |")
        lines += rows + [""]
    target = Path(args.out)
    temporary = target.with_suffix(".tmp")
    temporary.write_text("\n".join(lines))
    os.replace(temporary, target)


def tuned_from_cache(cache: Cache, task_name: str, program: dsl.Program, seeds):
    """Like ``tuned_program`` but only from cached entries (KeyError if any is missing)."""

    class ReadOnly(Cache):
        def __init__(self, entries):
            self.entries = entries

        def evaluate(self, task_name, program, seed):
            return self.entries[self.key(task_name, program, seed)]

    return tuned_program(ReadOnly(cache.entries), task_name, program, seeds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--tune-seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--c-programs", nargs="+", default=["adamw", "lion"])
    parser.add_argument("--data-dir", default=str(REPO / "docs" / "baselines_data"))
    parser.add_argument("--out", default=str(REPO / "docs" / "baselines.md"))
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args(argv)
    args.command = "python scripts/baselines.py"
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    if not args.render_only:
        for family in args.families:
            run_family(family, args, Cache(Path(args.data_dir) / f"{family}.json"))
    render(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
