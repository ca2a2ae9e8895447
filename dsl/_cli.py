"""``symdisc ops``, ``symdisc show``, ``symdisc check``."""

from __future__ import annotations

import shutil
import subprocess
import sys

from symdisc.exit_codes import BAD_INPUT

from ._analysis import analyze
from ._dataflow import dataflow, to_dot
from ._fingerprint import fingerprint
from ._ops import OPS
from ._program import Program, ProgramError
from .library import load_program


def register(subparsers) -> None:
    ops = subparsers.add_parser("ops", help="list the DSL's 45 functions")
    ops.set_defaults(func=cmd_ops)

    show = subparsers.add_parser("show", help="pretty-print a program (file path or library name)")
    show.add_argument("program", help="a program file, or a library name such as 'lion'")
    show.add_argument(
        "--graph", action="store_true", help="print the dataflow graph as Graphviz DOT text instead"
    )
    show.add_argument(
        "--png",
        metavar="PATH",
        help="with --graph: also draw it to a PNG (with Graphviz's 'dot' if installed, else networkx+matplotlib)",
    )
    show.set_defaults(func=cmd_show)

    check = subparsers.add_parser(
        "check",
        help="validate a program and report its hash, fingerprint, redundant statements and live state; "
        "non-zero exit if invalid",
    )
    check.add_argument("program", help="a program file, or a library name")
    check.set_defaults(func=cmd_check)


def cmd_ops(args) -> int:
    print(f"{'function':<12} {'arity':>5}  {'kind':<11}  meaning")
    for op in OPS.values():
        name = f"{op.name} ({op.symbol})" if op.symbol else op.name
        print(f"{name:<12} {op.arity:>5}  {op.kind:<11}  {op.doc}")
    print(f"{len(OPS)} functions")
    return 0


def _load_or_report(source: str, type_check: bool = True) -> Program | None:
    """The program at ``source`` (a file or a library name), or None after printing why not."""
    try:
        program = load_program(source)
        if type_check:
            _ = program.kinds  # cached on the program
        return program
    except ProgramError as error:
        print(error.in_source(source), file=sys.stderr)
        return None


def cmd_show(args) -> int:
    if args.png and not args.graph:
        print("--png needs --graph", file=sys.stderr)
        return BAD_INPUT
    # A graph is drawn even if the program does not type-check.
    program = _load_or_report(args.program, type_check=not args.graph)
    if program is None:
        return BAD_INPUT
    if not args.graph:
        print(program.to_text(), end="")
        return 0
    graph = dataflow(program)
    dot_text = to_dot(graph)
    print(dot_text, end="")
    if args.png:
        return _render_png(graph, dot_text, args.png)
    return 0


def _render_png(graph, dot_text: str, path: str) -> int:
    """Draw with Graphviz's ``dot`` when it is installed, else with networkx and matplotlib."""
    dot = shutil.which("dot")
    if dot is None:
        from ._dataflow_png import draw_dataflow_png  # imports matplotlib, which is slow

        try:
            draw_dataflow_png(graph, path)
        except OSError as error:
            print(f"cannot write {path}: {error}", file=sys.stderr)
            return 1
        print(
            f"wrote {path} (drawn with networkx and matplotlib: Graphviz 'dot' is not installed)",
            file=sys.stderr,
        )
        return 0
    completed = subprocess.run([dot, "-Tpng", "-o", path], input=dot_text, text=True, capture_output=True)
    if completed.returncode != 0:
        print(f"dot failed: {completed.stderr.strip()}", file=sys.stderr)
        return 1
    print(f"wrote {path}", file=sys.stderr)
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def cmd_check(args) -> int:
    program = _load_or_report(args.program, type_check=False)  # analyze reports type errors
    if program is None:
        return BAD_INPUT
    analysis = analyze(program)
    if not analysis.valid:
        print(f"{args.program}: invalid: {analysis.error}", file=sys.stderr)
        return BAD_INPUT
    n = len(program.statements)
    slots = len(program.state)
    print(f"{args.program}: valid ({_count(n, 'statement')}, {_count(slots, 'state slot')})")
    print(f"  hash:         {analysis.hash}")
    print(f"  fingerprint:  {fingerprint(program)}")
    print(f"  live state:   {', '.join(analysis.live_state_slots) or 'none'}")
    if analysis.unused_state_slots:
        unused = ", ".join(analysis.unused_state_slots)
        print(f"  unused state: {unused} (never read, or overwritten before it is read)")
    print(f"  redundant:    {len(analysis.redundant)} of {n} statements ({analysis.redundant_fraction:.0%})")
    for index in analysis.redundant:
        print(f"    line {program.line_of(index)}: {program.statements[index].to_text()}")
    return 0
