"""CPU-seconds per evaluation of Markov-language Transformer variants (docs/proxy_design.md, section 8).

Each variant is ``markov_lm_a``'s config with some keys overridden (``key=value`` pairs);
the task is built directly (``proxy_tasks.build``), not registered. For each variant it
prints one JSON line: the parameter count, steps x batch, and the CPU time
(``time.process_time``, all threads; XLA's CPU backend pinned to one thread, as a search
worker is) per evaluation, after a warm-up that compiles, for:

* ``interpreted``: the library program ``--program`` through the task's interpreter (what
  the search pays);
* ``optax_lion``: ``optax.lion`` written directly in the same loop (the optimizer's own cost
  without the interpreter);
* ``optax_sgd``: plain SGD in the same loop (about the model's forward and backward alone).

The other load on a shared machine changes CPU time too (a busy sibling hyperthread slows
each instruction), so ``--rounds N`` instead compares the variants against each other: the
interpreted cost only, the variants alternating in N rounds of ``--repeats`` evaluations,
and each variant's fastest round (as ``bench_proxy.py`` does with wall time).

    python scripts/proxy_cost.py --out costs.jsonl "mlp_ratio=0" "mlp_ratio=0 heads=1 steps=600"
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import os
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")


def parse_variant(text: str) -> dict:
    """``"mlp_ratio=0 steps=600"`` -> ``{"mlp_ratio": 0, "steps": 600}`` (values as Python literals)."""
    variant = {}
    for pair in text.split():
        key, _, value = pair.partition("=")
        variant[key] = ast.literal_eval(value)
    return variant


def variant_config(overrides: dict):
    """``markov_lm_a``'s ``TaskConfig`` with ``overrides``; the pool holds at least 2 x steps x batch."""
    import proxy_tasks

    base = proxy_tasks.config("markov_lm_a")
    size = {**base.model, "steps": base.steps, "batch_size": base.batch_size, **overrides}
    steps, batch = int(size.pop("steps")), int(size.pop("batch_size"))
    size.setdefault("train_size", max(65_536, 2 * steps * batch))
    name = "markov_lm_" + "_".join(f"{k}{v}" for k, v in overrides.items())
    return proxy_tasks.TaskConfig(
        name=name, family="markov_lm", size="x", steps=steps, batch_size=batch, model=size
    )


def emit(row: dict, out: str | None) -> None:
    """Print ``row`` as one JSON line and, given ``out``, append that line to the file."""
    line = json.dumps(row)
    print(line, flush=True)
    if out:
        with open(out, "a") as file:
            file.write(line + "\n")


def cpu_seconds(run, repeats: int) -> float:
    """Mean CPU-seconds of ``run()`` over ``repeats`` calls after one warm-up (compiling) call."""
    run()
    start = time.process_time()
    for _ in range(repeats):
        run()
    return (time.process_time() - start) / repeats


def measure(overrides: dict, program: str, repeats: int, optax_too: bool) -> dict:
    import optax

    import dsl
    import proxy_tasks

    task = proxy_tasks.build(variant_config(overrides))
    library_program = dsl.library.load(program)
    seeds = iter(range(10_000))
    row = {
        "variant": overrides,
        "params": task.layout.size,
        "steps": task.config.steps,
        "batch_size": task.config.batch_size,
        "interpreted": cpu_seconds(lambda: task.evaluate(library_program, next(seeds)), repeats),
    }
    if optax_too:
        schedule = task.schedule
        lion = optax.lion(lambda c: 1e-3 * schedule(c), b1=0.9, b2=0.99, weight_decay=1.0)
        sgd = optax.sgd(lambda c: 0.1 * schedule(c))
        row["optax_lion"] = cpu_seconds(lambda: task.train_optax(lion, next(seeds)), repeats)
        row["optax_sgd"] = cpu_seconds(lambda: task.train_optax(sgd, next(seeds)), repeats)
    return row


def interleaved(variants: list[dict], program: str, repeats: int, rounds: int) -> list[dict]:
    """Each variant's best-round interpreted CPU-s per evaluation, the variants alternating."""
    import dsl
    import proxy_tasks

    library_program = dsl.library.load(program)
    tasks = [proxy_tasks.build(variant_config(overrides)) for overrides in variants]
    runs = [functools.partial(task.evaluate, library_program) for task in tasks]
    for run in runs:
        run(0)  # compile
    best = [float("inf")] * len(runs)
    for _ in range(rounds):
        for k, run in enumerate(runs):
            start = time.process_time()
            for seed in range(repeats):
                run(seed)
            best[k] = min(best[k], (time.process_time() - start) / repeats)
    return [
        {
            "variant": overrides,
            "params": task.layout.size,
            "steps": task.config.steps,
            "batch_size": task.config.batch_size,
            "interpreted_best_of_rounds": seconds,
            "rounds": rounds,
        }
        for overrides, task, seconds in zip(variants, tasks, best, strict=True)
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help='overrides of markov_lm_a, e.g. "mlp_ratio=0 heads=1"')
    parser.add_argument("--program", default="lion")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-optax", action="store_true", help="measure the interpreted program only")
    parser.add_argument("--rounds", type=int, help="alternate the variants in this many rounds (see above)")
    parser.add_argument("--out", help="append the JSON lines to this file")
    args = parser.parse_args(argv)
    variants = [parse_variant(text) for text in args.variants]
    if args.rounds:
        rows = interleaved(variants, args.program, args.repeats, args.rounds)
    else:
        rows = (measure(variant, args.program, args.repeats, not args.no_optax) for variant in variants)
    for row in rows:
        emit(row, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
