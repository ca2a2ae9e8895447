"""Tune one library program with the project's ``proxy_tasks.tuned`` and evaluate it on held-out seeds.

The project's own protocol (3 tuning seeds, the growing grid around the program's default
constants, disk cache), as the funnel uses it; writes the tuned constants, the grid's
``bound_hit`` and the test metric per evaluation seed to ``--out`` (JSON).

    python scripts/proxy_tuned_check.py --task markov_lm_a --program lion --out lion.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--program", required=True)
    parser.add_argument("--eval-seeds", nargs="+", type=int, default=[3, 4, 5, 6, 7])
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    import dsl
    import proxy_tasks

    start = time.process_time()
    result = proxy_tasks.tuned(dsl.library.load(args.program), args.task)
    task = proxy_tasks.get(args.task)
    test = [task.evaluate(result.program, seed).test_metric for seed in args.eval_seeds]
    report = {
        "task": args.task,
        "program": args.program,
        "lr": result.lr,
        "weight_decay": result.weight_decay,
        "bound_hit": list(result.bound_hit),
        "tune_fitness": result.fitness,
        "evaluations": result.evaluations + len(args.eval_seeds),
        "cpu_seconds": time.process_time() - start,
        "eval_seeds": args.eval_seeds,
        "test": test,
    }
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
