"""``symdisc export`` (a program as a standalone optax module) and ``symdisc convert`` (from the authors' notation)."""

from __future__ import annotations

import sys
from pathlib import Path

from symdisc.exit_codes import BAD_INPUT

from ._cli import _load_or_report
from ._export import export_module
from ._hero import HERO_DIFFERENCES, from_hero
from ._program import ProgramError


def register(subparsers) -> None:
    export = subparsers.add_parser(
        "export",
        help="write a program as a self-contained Python module (an optax optimizer, jax + optax only)",
    )
    export.add_argument("program", help="a program file, or a library name such as 'lion'")
    export.add_argument("--out", metavar="FILE.py", help="write the module here (default: print it)")
    export.add_argument(
        "--name", help="the optimizer's name in the module docstring (default: the program's)"
    )
    export.set_defaults(func=cmd_export)

    convert = subparsers.add_parser(
        "convert", help="convert a program written in another notation into the DSL (prints the program)"
    )
    convert.add_argument("file", help="the program to convert")
    convert.add_argument(
        "--from",
        dest="notation",
        required=True,
        choices=["hero"],
        help="hero: the authors' released notation, def train(w, <state...>, gradient)",
    )
    convert.add_argument("--out", metavar="FILE", help="write the DSL program here (default: print it)")
    convert.add_argument(
        "--no-lr",
        action="store_true",
        help="do not append 'update = update * lr' (the schedule then has no effect)",
    )
    convert.set_defaults(func=cmd_convert)


def _write(text: str, out: str | None) -> int:
    if out is None:
        print(text, end="")
        return 0
    try:
        Path(out).write_text(text)
    except OSError as error:
        print(f"cannot write {out}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(f"wrote {out}", file=sys.stderr)
    return 0


def cmd_export(args) -> int:
    program = _load_or_report(args.program)
    if program is None:
        return BAD_INPUT
    source = export_module(program, name=args.name or Path(args.program).stem)
    return _write(source, args.out)


def cmd_convert(args) -> int:
    try:
        text = Path(args.file).read_text()
        program = from_hero(text, scale_by_lr=not args.no_lr)
        _ = program.kinds
    except (ProgramError, OSError, UnicodeDecodeError) as error:
        print(f"{args.file}: {getattr(error, 'strerror', None) or error}", file=sys.stderr)
        return BAD_INPUT
    for op in dict.fromkeys(s.op for s in program.statements):
        if op in HERO_DIFFERENCES:
            print(f"note: {op}: {HERO_DIFFERENCES[op]}", file=sys.stderr)
    header = f"# Converted from {Path(args.file).name} (the authors' released notation, arXiv:2302.06675).\n"
    return _write(header + program.to_text(), args.out)
