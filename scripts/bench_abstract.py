"""Programs analysed per second: ``dsl.analyze`` vs a ``jax.eval_shape`` shape check.

The released search space checks a child's shapes by tracing it abstractly with JAX
(``jax.eval_shape``); ``dsl.analyze`` does more (types, functional hash, cross-step
redundancy) in a pure-Python pass. Both run here on the same random programs (the
generator the search's mutations use), in one process pinned to one core, and the table
gives the ratio. ``fingerprint/s`` is the second-level deduplication (NumPy probe run),
for information.

Usage:
  .venv/bin/python scripts/bench_abstract.py [--programs 2000] [--baseline-programs 60] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import dsl
from dsl import random_program

LENGTHS = (10, 20, 40)
STATE_SLOTS = 2


def params_example():
    """A two-layer MLP's parameters, as abstract arrays."""
    spec = jax.ShapeDtypeStruct
    return {
        "layer0": {"kernel": spec((64, 32), jnp.float32), "bias": spec((32,), jnp.float32)},
        "layer1": {"kernel": spec((32, 10), jnp.float32), "bias": spec((10,), jnp.float32)},
    }


def fresh_copies(programs):
    """New Program objects, so no cached type inference is reused."""
    return [dsl.Program(p.state, p.statements, p.update, p.uses_step) for p in programs]


def rate(function, programs, repeats: int) -> float:
    """Best programs-per-second over ``repeats`` passes (each on fresh copies)."""
    best = 0.0
    for _ in range(repeats):
        copies = fresh_copies(programs)
        start = time.perf_counter()
        for program in copies:
            function(program)
        best = max(best, len(copies) / (time.perf_counter() - start))
    return best


def eval_shape_check(program, params):
    """The baseline: trace one step abstractly with JAX to check every shape."""
    state = tuple(params for _ in program.state)
    scalar = jax.ShapeDtypeStruct((), jnp.float32)
    return jax.eval_shape(partial(dsl.execute, program), params, params, state, scalar)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=2000, help="programs per length for analyze")
    parser.add_argument(
        "--baseline-programs", type=int, default=60, help="programs per length for eval_shape"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    params = params_example()
    rng = np.random.default_rng(args.seed)
    load_before = os.getloadavg()
    print(f"command: {sys.executable} {' '.join(sys.argv)}")
    print(f"jax {jax.__version__}, numpy {np.__version__}, cpu affinity {sorted(os.sched_getaffinity(0))}")
    header = f"{'statements':>10} {'analyze/s':>10} {'eval_shape/s':>12} {'ratio':>7} {'fingerprint/s':>13} {'redundant':>9}"
    print(header)
    print("-" * len(header))
    for length in LENGTHS:
        programs = [random_program(rng, length, STATE_SLOTS) for _ in range(args.programs)]
        baseline_programs = programs[: args.baseline_programs]
        eval_shape_check(baseline_programs[0], params)  # warm JAX up once
        analyze_rate = rate(lambda p: dsl.analyze(p, params), programs, args.repeats)
        baseline_rate = rate(lambda p: eval_shape_check(p, params), baseline_programs, args.repeats)
        fingerprint_rate = rate(dsl.fingerprint, programs[: max(1, args.programs // 4)], args.repeats)
        redundant = np.mean([dsl.analyze(p).redundant_fraction for p in programs])
        print(
            f"{length:>10} {analyze_rate:>10,.0f} {baseline_rate:>12,.1f} {analyze_rate / baseline_rate:>6,.0f}x"
            f" {fingerprint_rate:>13,.0f} {redundant:>8.0%}"
        )
    load_after = os.getloadavg()
    print(
        f"load average (1 min) before/after: {load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
