"""Does Lion gain on AdamW as the batch grows? Tuned AdamW vs tuned Lion per batch size.

The paper (Chen et al. 2023) reports Lion's advantage over AdamW growing with the batch
size, and being largest on Transformers. This script takes one registered proxy task,
replaces its batch size (the number of steps stays fixed, so compute grows with the
batch; ``--steps`` changes it too), tunes the learning-rate and weight-decay constants of ``adamw`` and ``lion`` on
seed 0 with the same grid as ``scripts/baselines.py``, and evaluates the tuned programs
on fresh seeds. Results are cached per task variant, like the baselines.

    python scripts/lion_batch_size.py --task charlm_a --batch-sizes 16 64 256
"""

from __future__ import annotations

import argparse
import functools
import sys
from dataclasses import replace
from pathlib import Path

import dsl
import proxy_tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import REPO, Cache, summary, tuned_program  # noqa: E402


class VariantCache(Cache):
    """A ``Cache`` whose task names may be variants ``<task>@batch<N>[@steps<M>]``."""

    def task(self, task_name: str) -> proxy_tasks.Task:
        return _variant_task(task_name)


@functools.cache
def _variant_task(task_name: str) -> proxy_tasks.Task:
    base, batch, *steps = task_name.replace("@steps", "@batch").split("@batch")
    config = replace(proxy_tasks.config(base), name=task_name, batch_size=int(batch))
    if steps:
        config = replace(config, steps=int(steps[0]))
    return proxy_tasks.build(config)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="charlm_a")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 64, 256])
    parser.add_argument("--steps", type=int, help="replace the task's number of steps too")
    parser.add_argument("--programs", nargs="+", default=["adamw", "lion"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--data-dir", default=str(REPO / "docs" / "baselines_data"))
    args = parser.parse_args(argv)
    steps_suffix = f"@steps{args.steps}" if args.steps else ""
    cache = VariantCache(Path(args.data_dir) / f"batch_{args.task}{steps_suffix}.json")
    steps = args.steps or proxy_tasks.config(args.task).steps
    print(f"{args.task}: {steps} steps; tuned on seed 0, evaluated on seeds {args.seeds}")
    print("| batch | program | lr | wd | metric (mean +- std) |")
    print("|---|---|---|---|---|")
    for batch in args.batch_sizes:
        task_name = f"{args.task}@batch{batch}{steps_suffix}"
        for name in args.programs:
            tuned, info = tuned_program(cache, task_name, dsl.library.load(name), [0])
            for seed in args.seeds:
                cache.evaluate(task_name, tuned, seed)
            s = summary(cache, task_name, tuned, args.seeds)
            failed = f" ({s['failures']} failed)" if s["failures"] else ""
            edges = f" edge:{','.join(info['edges'])}" if info["edges"] else ""
            wd = "-" if info["wd"] is None else f"{info['wd']:.3g}"
            print(
                f"| {batch} | {name} | {info['lr']:.3g} | {wd} | {s['mean']:.4f} +- {s['std']:.4f}{failed}{edges} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
