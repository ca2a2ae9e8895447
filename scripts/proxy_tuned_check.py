"""Tune one program with the project's ``proxy_tasks.tuned`` and evaluate it on held-out seeds.

The project's own protocol (3 tuning seeds, the growing grid around the program's default
constants, disk cache), as the funnel uses it; writes the tuned constants, the grid's
``bound_hit`` and the test metric per evaluation seed to ``--out`` (JSON).

    python scripts/proxy_tuned_check.py --task markov_lm_a --program lion --out lion.json
    python scripts/proxy_tuned_check.py --task markov_lm_a --program docs/rediscovery_v4/seed1.txt --out s1.json

``--program`` is a library name or a program file (a search's simplified winner, say: its
``lr * c`` constant is the learning rate tuned).

``--variant "mlp_ratio=0 seq_len=8 steps=600"`` registers ``--task`` (a new name) for this
process only, as ``markov_lm_a`` with those keys overridden (``proxy_cost.variant_config``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_cost import parse_variant, variant_config  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--program", required=True, help="a library name or a program file")
    parser.add_argument("--eval-seeds", nargs="+", type=int, default=[3, 4, 5, 6, 7])
    parser.add_argument("--out", required=True)
    parser.add_argument("--variant", help='markov_lm_a\'s keys to override, e.g. "mlp_ratio=0 steps=600"')
    args = parser.parse_args(argv)
    import dsl
    import proxy_tasks
    from proxy_tasks import _registry

    if args.variant:
        if args.task in _registry.TASK_CONFIGS:
            parser.error(f"--variant needs a new task name; {args.task!r} is registered")
        variant = variant_config(parse_variant(args.variant))
        _registry.TASK_CONFIGS[args.task] = replace(variant, name=args.task)

    start = time.process_time()
    result = proxy_tasks.tuned(dsl.library.load_program(args.program), args.task)
    task = proxy_tasks.get(args.task)
    test = [task.evaluate(result.program, seed).test_metric for seed in args.eval_seeds]
    report = {
        "task": args.task,
        "variant": args.variant,
        "task_config": repr(proxy_tasks.config(args.task)),
        "program": args.program,
        "lr": result.lr,
        "weight_decay": result.weight_decay,
        "bound_hit": list(result.bound_hit),
        "tune_fitness": result.fitness,
        "evaluations": result.evaluations + len(args.eval_seeds),
        "cpu_seconds": time.process_time() - start,
        "eval_seeds": args.eval_seeds,
        "higher_is_better": task.model.higher_is_better,
        "test": test,
    }
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
