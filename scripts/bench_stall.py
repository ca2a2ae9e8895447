"""What a stall rule (``task.stall``) saves and what it loses, on a search's own children.

Draws programs a finished search trained (its ``individuals.jsonl``: cache misses that did
not fail), trains each with and without the rule on the same task and seed, in this
process one after the other, and prints:

- how many the rule stops, and how many of those had learned nothing (final fitness
  within ``--no-learning-margin`` of the untrained model's, which the untrained run of an
  all-zero update gives);
- the full-training fitness of the stopped ones (what the rule loses), beside the others';
- the training seconds with the rule over those without it (a ratio measured here).

Usage:
  .venv/bin/python scripts/bench_stall.py RUN_DIR [--programs 80] [--check 0.2] [--window 0.05]
      [--min-drop 0.0005] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import proxy_tasks
from search import RunDirectory

ZERO_UPDATE = "def train(w, g, m, v, lr):\n  update = g * 0.0\n  return update, m, v\n"


def trained_programs(run: RunDirectory) -> list[dict]:
    """The run's children that were trained (not cache hits) and did not fail."""
    return [r for r in run.read_log() if r.get("cache_hit") is None and r.get("failure") is None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a search run directory")
    parser.add_argument("--programs", type=int, default=80, help="programs drawn from the run")
    parser.add_argument("--check", type=float, default=0.2)
    parser.add_argument("--window", type=float, default=0.05)
    parser.add_argument("--min-drop", type=float, default=0.0005)
    parser.add_argument("--no-learning-margin", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=0, help="seeds the draw of programs")
    args = parser.parse_args(argv)

    run = RunDirectory.open(args.run)
    config = run.config()
    name, seed = config.task.name, config.task.seeds[0]
    rule = proxy_tasks.StallRule(args.check, args.window, args.min_drop)
    plain, stalling = proxy_tasks.get(name), proxy_tasks.get(name, rule)
    untrained = plain.evaluate(ZERO_UPDATE, seed).fitness
    stalling.evaluate(ZERO_UPDATE, seed)  # compile both before timing

    rows = trained_programs(run)
    draw = np.random.default_rng(args.seed).choice(len(rows), min(args.programs, len(rows)), replace=False)
    seconds_plain = seconds_stalling = 0.0
    stopped, stopped_not_learning, lost, kept = 0, 0, [], []
    not_learning = 0
    for i in sorted(draw):
        program = rows[i]["program"]
        full, short = plain.evaluate(program, seed), stalling.evaluate(program, seed)
        seconds_plain += full.seconds
        seconds_stalling += short.seconds
        learned_nothing = abs(full.fitness - untrained) <= args.no_learning_margin
        not_learning += learned_nothing
        if short.failed:
            stopped += 1
            stopped_not_learning += learned_nothing
            lost.append(full.fitness)
            continue
        kept.append(full.fitness)
        if short.fitness != full.fitness:
            print(
                f"individual {rows[i]['id']}: fitness {short.fitness} with the rule, {full.fitness} without"
            )
            return 1

    print(
        f"task {name}, seed {seed}, {len(draw)} programs from {args.run}; untrained fitness {untrained:.5f}"
    )
    print(f"rule: check {args.check}, window {args.window}, min_drop {args.min_drop}")
    print(f"learned nothing (within {args.no_learning_margin} of untrained): {not_learning}")
    print(f"stopped by the rule: {stopped} ({stopped_not_learning} of them had learned nothing)")
    if lost:
        better = sum(f > max(lost) for f in kept)
        print(
            f"full-training fitness of the stopped: {min(lost):.5f} .. {max(lost):.5f}; "
            f"{better} of the {len(kept)} not stopped did better than the best of them"
        )
        print(f"full-training fitness of the not stopped: median {np.median(kept):.5f}, best {max(kept):.5f}")
    print(
        f"training seconds, with the rule / without: {seconds_stalling:.1f} / {seconds_plain:.1f} "
        f"= {seconds_stalling / seconds_plain:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
