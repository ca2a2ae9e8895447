"""``symdisc ops``, ``symdisc show``, ``symdisc check``."""

from __future__ import annotations

import sys

from ._ops import OPS
from ._program import ProgramError
from .library import load_program


def register(subparsers) -> None:
    ops = subparsers.add_parser("ops", help="list the DSL's 45 functions")
    ops.set_defaults(func=cmd_ops)

    show = subparsers.add_parser("show", help="pretty-print a program (file path or library name)")
    show.add_argument("program", help="a program file, or a library name such as 'lion'")
    show.set_defaults(func=cmd_show)

    check = subparsers.add_parser("check", help="parse and validate a program; non-zero exit on error")
    check.add_argument("program", help="a program file, or a library name")
    check.set_defaults(func=cmd_check)


def cmd_ops(args) -> int:
    print(f"{'function':<12} {'arity':>5}  {'kind':<11}  meaning")
    for op in OPS.values():
        name = f"{op.name} ({op.symbol})" if op.symbol else op.name
        print(f"{name:<12} {op.arity:>5}  {op.kind:<11}  {op.doc}")
    print(f"{len(OPS)} functions")
    return 0


def _load_or_report(source: str):
    try:
        program = load_program(source)
        program.kinds  # type-check
        return program
    except (ProgramError, FileNotFoundError) as error:
        print(f"{source}: {error}", file=sys.stderr)
        return None


def cmd_show(args) -> int:
    program = _load_or_report(args.program)
    if program is None:
        return 1
    print(program.to_text(), end="")
    return 0


def cmd_check(args) -> int:
    program = _load_or_report(args.program)
    if program is None:
        return 1
    print(f"{args.program}: ok ({len(program.statements)} statements, {len(program.state)} state slots)")
    return 0
