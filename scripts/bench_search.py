"""Benchmark of the search machinery: breeding, Ray workers, Ray overhead, and a timed search.

Prints four tables (docs/performance.md, section Search, records them with the load):

1. programs generated/s: ``search.mutate`` + ``search.analyze_program`` only (what the
   search does per child before the cache), against the evaluations/s of table 2;
2. evaluations/s on the proxy task with 1 and 2 Ray workers (target: 2 >= 1.7x one), on
   the same distinct programs, after every worker has compiled;
3. the per-candidate overhead of the Ray path against the in-process path, same programs;
4. with ``--search``: the cache hit rate and redundant fraction after a search from AdamW
   with ``configs/default.yaml`` under a wall-time budget (default 20 minutes; the paper
   reports 89.1% and 69.8%).

Usage:
  .venv/bin/python scripts/bench_search.py [--task mlp_digits_a] [--programs 60]
      [--compare-env] [--search [--minutes 20] [--out DIR]]
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import yaml

from dsl import library
from search import (
    InProcessEvaluator,
    MutationSettings,
    RayEvaluator,
    analyze_program,
    load_config,
    mutate,
    mutation_settings,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "configs" / "default.yaml"


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def breed(count: int, seed: int = 0) -> tuple[list, int, float]:
    """Breed ``count`` valid children as the search does, without training anything.

    Parents are drawn from the last 100 valid children (warm start: AdamW), so programs
    drift away from AdamW as in a real search. A child must be valid and differ from its
    parent's hash, else the parent is mutated again.

    Returns:
      (children, mutate calls, seconds).
    """
    rng = np.random.default_rng(seed)
    settings = mutation_settings(load_config(DEFAULT_CONFIG))
    adamw = library.load_program("adamw_paper")
    pool = [(adamw, analyze_program(adamw).hash)]
    children = []
    generated = 0
    start = time.perf_counter()
    while len(children) < count:
        parent, parent_hash = pool[int(rng.integers(len(pool)))]
        child, _ = mutate(rng, parent, settings)
        generated += 1
        facts = analyze_program(child)
        if facts.valid and facts.hash != parent_hash:
            children.append(child)
            pool.append((child, facts.hash))
            pool = pool[-100:]
    return children, generated, time.perf_counter() - start


def trainable_programs(count: int, seed: int = 1) -> list:
    """``count`` distinct programs that train for the full run: library optimizers whose
    constants are scaled by 2^a, a ~ N(0, 0.5^2) (bred children often diverge at once,
    which would make an evaluation a few steps long and the table about overhead only).
    """
    rng = np.random.default_rng(seed)
    settings = MutationSettings(weights={"mutate_constant": 1.0}, constant_reset_probability=0.0)
    bases = [library.load_program(name) for name in ("adamw_paper", "lion", "adam", "momentum", "signum")]
    seen, chosen = set(), []
    while len(chosen) < count:
        program = bases[len(chosen) % len(bases)]
        for _ in range(int(rng.integers(1, 3))):
            program, _ = mutate(rng, program, settings)
        key = analyze_program(program).hash
        if key not in seen:
            seen.add(key)
            chosen.append(program)
    return chosen


def run_jobs(evaluator, programs, seed: int = 0, first_id: int = 0) -> tuple[float, list]:
    """Evaluate every program, keeping ``evaluator.capacity`` in flight; (seconds, results)."""
    pending = list(enumerate(programs, start=first_id))
    in_flight, results = 0, {}
    start = time.perf_counter()
    while pending or in_flight:
        while pending and in_flight < evaluator.capacity:
            job_id, program = pending.pop(0)
            evaluator.submit(job_id, program, seed)
            in_flight += 1
        done = evaluator.wait()
        in_flight -= len(done)
        for item in done:
            results[item.job_id] = item.result
    return time.perf_counter() - start, [results[i] for i in sorted(results)]


def warm_up(evaluator, programs) -> None:
    """Make every worker compile the task (one job per worker is dispatched to each)."""
    run_jobs(evaluator, programs[: evaluator.num_workers], first_id=10**6)


def ray_rate(task: str, programs, workers: int, depth: int, env: dict | None) -> float:
    with RayEvaluator(task, num_workers=workers, max_in_flight_per_worker=depth, env_vars=env) as pool:
        warm_up(pool, programs)
        seconds, _ = run_jobs(pool, programs)
    return len(programs) / seconds


def in_process_rate(task: str, programs) -> float:
    evaluator = InProcessEvaluator(task)
    run_jobs(evaluator, programs[:1], first_id=10**6)  # compile
    seconds, _ = run_jobs(evaluator, programs)
    return len(programs) / seconds


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def bench_throughput(args) -> None:
    print(f"load before: {load_average()}  (cpus: {os.cpu_count()})")
    children, generated, seconds = breed(args.children)
    breed_rate = generated / seconds
    valid_rate = len(children) / seconds
    programs = trainable_programs(args.programs)
    ray.init(
        num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False
    )
    try:
        envs = {"single-thread XLA": None}
        if args.compare_env:
            envs["default XLA env"] = {}
        rows = []
        rates = {}
        for label, env in envs.items():
            for workers in (1, 2):
                rate = ray_rate(args.task, programs, workers, 2, env)
                rates[label, workers] = rate
                rows.append([label, str(workers), f"{rate:.2f}", f"{rate / rates[label, 1]:.2f}x"])
        print(
            f"\nEvaluations/s on {args.task}, {len(programs)} distinct programs, 2 jobs in flight per worker:"
        )
        print(table(["worker env", "workers", "evaluations/s", "vs 1 worker"], rows))

        best_eval_rate = max(rates.values())
        print("\nPrograms generated (mutate + analyze, no training), one process:")
        print(
            table(
                ["mutations/s", "valid children/s", "valid share", "vs best evaluations/s"],
                [
                    [
                        f"{breed_rate:,.0f}",
                        f"{valid_rate:,.0f}",
                        f"{len(children) / generated:.0%}",
                        f"{valid_rate / best_eval_rate:,.0f}x",
                    ]
                ],
            )
        )

        rows = []
        for task in (args.overhead_task, args.task):
            reference = in_process_rate(task, programs)
            for depth in (1, 2):
                rate = ray_rate(task, programs, 1, depth, None)
                overhead_ms = (1 / rate - 1 / reference) * 1000
                rows.append(
                    [
                        task,
                        f"{1000 / reference:.2f}",
                        str(depth),
                        f"{1000 / rate:.2f}",
                        f"{overhead_ms:+.2f}",
                        f"{reference / rate:.2f}x",
                    ]
                )
        print("\nPer-candidate cost, 1 Ray worker vs in-process, same programs (ms per evaluation):")
        print(
            table(["task", "in-process ms", "in flight", "Ray ms", "overhead ms", "Ray / in-process"], rows)
        )
    finally:
        ray.shutdown()
    print(f"\nload after: {load_average()}")


def bench_search(args) -> None:
    """A real search (``symdisc run``) from AdamW under a wall-time budget; read its stats."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["budget"] = {"programs": None, "evaluations": None, "wall_seconds": args.minutes * 60}
    config["workers"]["count"] = args.workers
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_search_"))
    out.mkdir(parents=True, exist_ok=True)
    config_path = out.parent / f"{out.name}.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    run_dir = out / "run"
    print(f"load before: {load_average()}")
    symdisc = Path(sys.executable).parent / "symdisc"
    command = [str(symdisc), "run", str(config_path), "--out", str(run_dir), "--quiet"]
    print("running:", " ".join(command))
    start = time.perf_counter()
    subprocess.run(command, check=True)
    elapsed = time.perf_counter() - start
    print(f"load after: {load_average()}")
    summarize_run(run_dir, elapsed)


def summarize_run(run_dir: Path, elapsed: float) -> None:
    from search import RunDirectory, Search

    rundir = RunDirectory.open(run_dir)
    search = Search(rundir.config(), rundir)
    search.resume()
    stats = search.stats()
    records = [r for r in rundir.read_log() if "id" in r]
    seconds = [r["seconds"] for r in records if r.get("cache_hit") is None and r.get("seconds")]
    rows = [
        [
            f"{stats['elapsed_seconds'] / 60:.1f}",
            f"{stats['generated']:,}",
            f"{stats['valid']:,}",
            f"{stats['evaluated']:,}",
            f"{stats['hash_hits']:,} / {stats['fingerprint_hits']:,}",
            f"{stats['cache_hit_rate']:.1%}",
            f"{stats['redundant_fraction']:.1%}",
            f"{stats['evaluated'] / stats['elapsed_seconds']:.2f}",
            f"{statistics.median(seconds):.3f}" if seconds else "n/a",
            f"{stats['best_fitness']:.4f}" if math.isfinite(stats["best_fitness"]) else "-inf",
        ]
    ]
    print(f"\nSearch from AdamW ({run_dir}, {elapsed / 60:.1f} min wall incl. start-up):")
    print(
        table(
            [
                "minutes",
                "generated",
                "valid",
                "trained",
                "hits hash / fingerprint",
                "cache hit rate",
                "redundant",
                "trained/s",
                "median s/train",
                "best fitness",
            ],
            rows,
        )
    )
    print("paper (per search of 200-300K programs): cache hit rate 89.1% +- 0.6%, redundant 69.8% +- 1.9%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mlp_digits_a", help="the proxy task for tables 2 and 3 (task A)")
    parser.add_argument(
        "--overhead-task", default="mlp_digits_tiny", help="a fast task, where overhead shows"
    )
    parser.add_argument("--programs", type=int, default=60, help="distinct programs evaluated per row")
    parser.add_argument("--children", type=int, default=3000, help="valid children bred for table 1")
    parser.add_argument(
        "--compare-env", action="store_true", help="also run workers with the default XLA env"
    )
    parser.add_argument("--search", action="store_true", help="run the timed search (table 4) instead")
    parser.add_argument("--minutes", type=float, default=20.0, help="wall-time budget of the search")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers of the search")
    parser.add_argument("--out", help="directory for the search's config and run (default: a temp dir)")
    parser.add_argument("--summarize", help="only print table 4 for an existing run directory")
    args = parser.parse_args(argv)
    if args.summarize:
        summarize_run(Path(args.summarize), float("nan"))
    elif args.search:
        bench_search(args)
    else:
        bench_throughput(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
