"""Benchmark: the program interpreter against optimizers compiled directly.

Prints two tables for one proxy task (default ``mlp_digits_a``):

1. AdamW and Lion: seconds per evaluation through the interpreter vs the same
   training loop with the optimizer written directly in optax (``optax.adamw``,
   ``optax.lion``, jitted once), and their ratio (target <= 1.5x).
2. 50 distinct programs: candidates per second through the interpreter (one
   compilation for all) vs a fresh ``jax.jit`` of the loop per program
   (``dsl.to_optax(program)`` in the same loop), and their ratio (target >= 20x).

Usage: ``.venv/bin/python scripts/bench_proxy.py [--task mlp_digits_a] [--repeats 20]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import optax

import dsl
import proxy_tasks


def _seconds_per_eval(run, repeats: int) -> float:
    run()  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _distinct_programs(count: int) -> list[dsl.Program]:
    """``count`` different valid programs: momentum-sign variants with varied constants and ops."""
    ops = ("sign", "tanh", "arctan", "cbrt", "sinh")
    programs = []
    for k in range(count):
        op = ops[k % len(ops)]
        beta = round(0.5 + 0.01 * k, 4)
        programs.append(
            dsl.parse(
                "def train(w, g, m, lr):\n"
                f"  m = interp(g, m, {beta})\n"
                f"  d = {op}(m)\n"
                "  wd = w * 0.001\n"
                "  d = d + wd\n"
                "  lr = lr * 0.003\n"
                "  update = d * lr\n"
                "  return update, m\n"
            )
        )
    return programs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mlp_digits_a")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--programs", type=int, default=50)
    parser.add_argument("--jit-programs", type=int, default=5, help="programs timed with a fresh jit each")
    args = parser.parse_args()

    task = proxy_tasks.build(proxy_tasks.config(args.task))
    schedule = task.schedule
    print(f"task {task.name}: {task.layout.size} params, {task.config.steps} steps, batch {task.config.batch_size}")
    references = {
        "adamw": optax.adamw(lambda c: 1e-3 * schedule(c), b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4),
        "lion": optax.lion(lambda c: 1e-4 * schedule(c), b1=0.9, b2=0.99, weight_decay=0.01),
    }
    print()
    print(f"{'optimizer':<10} {'interpreted s/eval':>19} {'direct optax s/eval':>20} {'ratio':>6}")
    for name, reference in references.items():
        program = dsl.library.load(name)
        interpreted = _seconds_per_eval(lambda p=program: task.evaluate(p), args.repeats)
        direct = _seconds_per_eval(lambda r=reference: task.train_optax(r), args.repeats)
        print(f"{name:<10} {interpreted:>19.4f} {direct:>20.4f} {interpreted / direct:>5.2f}x")

    programs = _distinct_programs(args.programs)
    task.evaluate(programs[0])  # the one compilation, outside the timing (the other side pays its own)
    start = time.perf_counter()
    for program in programs:
        result = task.evaluate(program)
        assert result.failure is None, result.failure
    interpreted_rate = len(programs) / (time.perf_counter() - start)
    timed = programs[: args.jit_programs]
    start = time.perf_counter()
    for program in timed:
        task.train_optax(dsl.to_optax(program, schedule))  # a new optimizer object: a new jit
    jit_rate = len(timed) / (time.perf_counter() - start)
    print()
    print(f"{'approach':<36} {'programs':>8} {'candidates/s':>13}")
    print(f"{'interpreter (compiled once)':<36} {len(programs):>8} {interpreted_rate:>13.2f}")
    print(f"{'fresh jax.jit per program':<36} {len(timed):>8} {jit_rate:>13.2f}")
    print(f"ratio: {interpreted_rate / jit_rate:.1f}x")
    print(f"interpreter traces: {task.trace_count}")


if __name__ == "__main__":
    main()
