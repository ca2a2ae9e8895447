"""``symdisc tasks``, ``symdisc evaluate`` and ``symdisc tune``."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from dsl import ProgramError
from dsl.library import load_program
from symdisc.exit_codes import BAD_INPUT


def register(subparsers) -> None:
    tasks = subparsers.add_parser("tasks", help="list the proxy tasks (sizes a/b/c for the funnel)")
    tasks.set_defaults(func=cmd_tasks)

    evaluate = subparsers.add_parser(
        "evaluate", help="train a proxy task with a program and print its fitness"
    )
    evaluate.add_argument("program", help="a program file, or a library name such as 'lion'")
    evaluate.add_argument("--task", required=True, help="proxy task name (see: symdisc tasks)")
    evaluate.add_argument("--seeds", type=int, default=1, help="number of seeds (0..N-1); default 1")
    evaluate.set_defaults(func=cmd_evaluate)

    tune = subparsers.add_parser(
        "tune", help="log-grid over a program's learning-rate and weight-decay constants on a proxy task"
    )
    tune.add_argument("program", help="a program file, or a library name")
    tune.add_argument("--task", required=True, help="proxy task name")
    tune.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 averaged per grid point; default 3")
    tune.add_argument("--out", help="write the tuned program to this file")
    tune.set_defaults(func=cmd_tune)


def cmd_tasks(args) -> int:
    import proxy_tasks

    print(f"{'task':<18} {'family':<12} {'size':<5} {'steps':>6} {'batch':>6}  {'schedule':<14} model")
    for name in proxy_tasks.names():
        config = proxy_tasks.config(name)
        model = ", ".join(f"{key}={value}" for key, value in config.model.items())
        print(
            f"{name:<18} {config.family:<12} {config.size:<5} {config.steps:>6} {config.batch_size:>6}  "
            f"{config.schedule.kind:<14} {model}"
        )
    return 0


def _load(args):
    import proxy_tasks

    try:
        program = load_program(args.program)
        _ = program.kinds  # type-check before training
    except ProgramError as error:
        print(error.in_source(args.program), file=sys.stderr)
        return None, None
    if args.task not in proxy_tasks.names():
        print(f"unknown task {args.task!r}; known: {', '.join(proxy_tasks.names())}", file=sys.stderr)
        return None, None
    if args.seeds < 1:
        print(f"--seeds must be at least 1, got {args.seeds}", file=sys.stderr)
        return None, None
    return program, proxy_tasks.get(args.task)


def _spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} +- {spread:.4f}"


def cmd_evaluate(args) -> int:
    program, task = _load(args)
    if program is None:
        return BAD_INPUT
    results = task.evaluate_seeds(program, range(args.seeds))
    for seed, result in enumerate(results):
        status = result.failure or "ok"
        print(
            f"seed {seed}: fitness {result.fitness:.4f}  {task.model.metric_name} {result.metric:.4f}  "
            f"train_loss {result.train_loss:.4f}  steps {result.steps}  {result.seconds:.2f}s  {status}"
        )
    fitnesses = [r.fitness for r in results]
    print(f"{task.name}: fitness {_spread(fitnesses)} over {len(results)} seed(s)")
    return 0


def cmd_tune(args) -> int:
    from ._tune import tune

    program, task = _load(args)
    if program is None:
        return BAD_INPUT
    try:
        result = tune(task, program, seeds=range(args.seeds))
    except ValueError as error:
        print(f"{args.program}: {error}", file=sys.stderr)
        return BAD_INPUT
    print(f"{'lr':>10} {'weight_decay':>12} {'fitness':>8}")
    for lr, wd, fitness in result.grid:
        print(f"{lr:>10.3g} {'-' if wd is None else f'{wd:.3g}':>12} {fitness:>8.4f}")
    wd_text = "none" if result.weight_decay is None else f"{result.weight_decay:.3g}"
    print(f"best: lr {result.lr:.3g}, weight_decay {wd_text}: fitness {result.fitness:.4f} on {task.name}")
    if result.bound_hit:  # the grid grew as far as it may and the best is still on its edge
        print(f"warning: {' and '.join(result.bound_hit)} still on the grid's edge at the growth bound")
    if args.out:
        Path(args.out).write_text(result.program.to_text())
        print(f"wrote {args.out}")
    return 0
