"""Does Lion gain on AdamW as the batch grows? Tuned AdamW vs tuned Lion per batch size.

The paper (Chen et al. 2023) reports Lion's advantage over AdamW growing with the batch
size, and being largest on Transformers. This script takes one registered proxy task,
replaces its batch size (the number of steps stays fixed, so compute grows with the
batch; ``--steps`` changes it too), tunes the learning-rate and weight-decay constants of
``adamw`` and ``lion`` on seeds 0, 1, 2 with the same edge-growing grid as
``scripts/baselines.py``, and reports the test metric of the tuned programs on fresh
seeds. Every evaluation is recorded per task variant, like the baselines.

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
from _evaluations import Evaluations  # noqa: E402
from baselines import REPO, summary, tune_recorded  # noqa: E402


class VariantEvaluations(Evaluations):
    """``Evaluations`` whose task names may be variants ``<task>@batch<N>[@steps<M>]``."""

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
    parser.add_argument("--seeds", nargs="+", type=int, default=[3, 4, 5])
    parser.add_argument("--data-dir", default=str(REPO / "docs" / "baselines_data"))
    args = parser.parse_args(argv)
    steps_suffix = f"@steps{args.steps}" if args.steps else ""
    evaluations = VariantEvaluations(
        Path(args.data_dir) / f"evaluations_batch_{args.task}{steps_suffix}.json"
    )
    steps = args.steps or proxy_tasks.config(args.task).steps
    print(f"{args.task}: {steps} steps; tuned on seeds 0-2, test metric on seeds {args.seeds}")
    print("| batch | program | lr | wd | test metric (mean +- std) |")
    print("|---|---|---|---|---|")
    for batch in args.batch_sizes:
        task_name = f"{args.task}@batch{batch}{steps_suffix}"
        for name in args.programs:
            tuned = tune_recorded(evaluations, task_name, dsl.library.load(name))
            for seed in args.seeds:
                evaluations.evaluate(task_name, tuned.program, seed)
            s = summary(evaluations, task_name, tuned.program, args.seeds)
            failed = f" ({s['failures']} failed)" if s["failures"] else ""
            bound = f" bound:{','.join(tuned.bound_hit)}" if tuned.bound_hit else ""
            wd = "-" if tuned.weight_decay is None else f"{tuned.weight_decay:.3g}"
            print(
                f"| {batch} | {name} | {tuned.lr:.3g} | {wd} | {s['mean']:.4f} +- {s['std']:.4f}{failed}{bound} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
