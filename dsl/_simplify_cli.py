"""``symdisc simplify``: the shortest equal (or equally good) program, step by step."""

from __future__ import annotations

import sys
from pathlib import Path

from symdisc.exit_codes import BAD_INPUT

from ._cli import _load_or_report
from ._simplify import FITNESS_TOLERANCE, UPDATE_TOLERANCE, simplify


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "simplify",
        help="simplify a program: dead code, exact rewrites, and with --task ablation and rounding "
        "judged by fitness; prints each step as a diff and writes the result",
    )
    parser.add_argument("program", help="a program file, or a library name such as 'lion'")
    parser.add_argument(
        "--task", help="a proxy task (e.g. mlp_digits_tiny): enables ablation and judges rounding by fitness"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="with --task: seeds to average the fitness over (default 0 1 2)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=FITNESS_TOLERANCE,
        help=f"with --task: fitness an ablation or a rounding may lose (default {FITNESS_TOLERANCE})",
    )
    parser.add_argument(
        "--update-tolerance",
        type=float,
        default=UPDATE_TOLERANCE,
        help="largest relative difference of the probe updates that counts as equal, for rewrites "
        f"and (without --task) rounding (default {UPDATE_TOLERANCE})",
    )
    parser.add_argument("--no-round", action="store_true", help="keep the constants as they are")
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="where to write the result (default: <name>.simplified.txt in the current directory)",
    )
    parser.set_defaults(func=cmd_simplify)


def _fitness_callback(task_name: str, seeds: list[int]):
    """``evaluate(program) -> float``: the task's fitness averaged over ``seeds``."""
    import proxy_tasks

    task = proxy_tasks.get(task_name)  # KeyError names the known tasks

    def evaluate(program) -> float:
        return sum(task.evaluate(program, seed).fitness for seed in seeds) / len(seeds)

    return evaluate


def cmd_simplify(args) -> int:
    for flag, value in (("--tolerance", args.tolerance), ("--update-tolerance", args.update_tolerance)):
        if not value >= 0:
            print(f"{flag} must be >= 0, got {value}", file=sys.stderr)
            return BAD_INPUT
    program = _load_or_report(args.program)
    if program is None:
        return BAD_INPUT
    evaluate = None
    if args.task is not None:
        try:
            evaluate = _fitness_callback(args.task, args.seeds)
        except KeyError as error:
            print(error.args[0], file=sys.stderr)
            return 2
    result = simplify(
        program,
        evaluate=evaluate,
        tolerance=args.tolerance,
        update_tolerance=args.update_tolerance,
        round_constants=not args.no_round,
    )
    print(result.report(), end="")
    out = Path(args.out) if args.out else Path(f"{Path(args.program).stem}.simplified.txt")
    header = f"# simplified from {args.program} by 'symdisc simplify': {result.summary()}\n"
    try:
        out.write_text(header + result.program.to_text())
    except OSError as error:
        print(f"cannot write {out}: {error}", file=sys.stderr)
        return 1
    print(f"\n{result.program.to_text()}wrote {out}")
    return 0
