"""Benchmark: the program interpreter against optimizers compiled directly.

Prints three tables for one proxy task (default ``mlp_digits_a``):

1. AdamW and Lion: seconds per evaluation through the interpreter vs the same
   training loop with the optimizer written directly in optax (``optax.adamw``,
   ``optax.lion``, jitted once), and their ratio (target <= 1.5x).
2. The cost of one interpreted statement per training step: evaluations of chains
   of 1 and 17 statements of one kind, the slope between them divided by the steps.
   Statements of ``lr``, ``step`` and constants only are hoisted out of the loop.
3. 50 distinct programs: candidates per second through the interpreter (one
   compilation for all) vs a fresh ``jax.jit`` of the loop per program
   (``dsl.to_optax(program)`` in the same loop), and their ratio (target >= 20x).

The machine may be shared, so every timing is the best of ``--repeats`` rounds in
which the compared runs alternate, and the load average is printed with the tables.

Usage: ``.venv/bin/python scripts/bench_proxy.py [--task mlp_digits_a] [--repeats 20]``
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import optax

import dsl
import proxy_tasks


def _best_seconds(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """The fastest of ``repeats`` timings of each run, the runs alternating in every round.

    Alternating spreads the other load on the machine fairly over the compared runs,
    and the minimum is the least disturbed measurement.
    """
    for run in runs.values():
        run()  # compile
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


# Statement chains for the per-statement cost: (label, first statement, repeated statement).
CHAINS = (
    ("multiply (tree)", "t = g * 1.5", "t = t * 0.999"),
    ("interp (tree)", "t = g * 1.5", "t = interp(t, g, 0.9)"),
    ("sqrt (tree)", "t = g * 1.5", "t = sqrt(t)"),
    ("power (tree)", "t = g * 1.5", "t = power(t, 1.0)"),
    ("power of step (hoisted)", "s = power(0.9, step)", "s = power(s, 1.0)"),
)


def _chain(first: str, repeated: str, count: int) -> dsl.Program:
    """A program of ``count`` chained statements (plus the two that form the update)."""
    variable = first.split("=")[0].strip()
    lines = ["def train(w, g, m, lr, step):", f"  {first}"] + [f"  {repeated}"] * (count - 1)
    lines += [f"  u = g * {variable}", "  update = u * lr", "  return update, m"]
    return dsl.parse("\n".join(lines) + "\n")


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
    print(
        f"task {task.name}: {task.layout.size} params, {task.config.steps} steps, batch {task.config.batch_size}"
    )
    references = {
        "adamw": optax.adamw(lambda c: 1e-3 * schedule(c), b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4),
        "lion": optax.lion(lambda c: 1e-4 * schedule(c), b1=0.9, b2=0.99, weight_decay=0.01),
    }
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print()
    runs = {}
    for name, reference in references.items():
        program = dsl.library.load(name)
        runs[(name, "interpreted")] = lambda p=program: task.evaluate(p)
        runs[(name, "direct")] = lambda r=reference: task.train_optax(r)
    best = _best_seconds(runs, args.repeats)
    print(f"{'optimizer':<10} {'interpreted s/eval':>19} {'direct optax s/eval':>20} {'ratio':>6}")
    for name in references:
        interpreted, direct = best[(name, "interpreted")], best[(name, "direct")]
        print(f"{name:<10} {interpreted:>19.4f} {direct:>20.4f} {interpreted / direct:>5.2f}x")

    lengths = (1, 17)
    chains = {
        (label, count): _chain(first, repeated, count)
        for label, first, repeated in CHAINS
        for count in lengths
    }
    runs = {key: lambda p=program: task.evaluate(p) for key, program in chains.items()}
    best = _best_seconds(runs, max(3, args.repeats // 2))
    steps = task.config.steps
    print()
    print(f"{'statement':<24} {'1 stmt s/eval':>14} {'17 stmts s/eval':>16} {'us per statement-step':>22}")
    for label, _, _ in CHAINS:
        one, many = best[(label, lengths[0])], best[(label, lengths[1])]
        per_statement = (many - one) / (lengths[1] - lengths[0]) / steps * 1e6
        print(f"{label:<24} {one:>14.4f} {many:>16.4f} {per_statement:>22.2f}")

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
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
