"""The ``symdisc`` command. Each package contributes its subcommands through ``register``."""

from __future__ import annotations

import argparse
import os
import sys

from dsl import _cli as dsl_cli
from dsl import _simplify_cli as dsl_simplify_cli
from dsl import _tools_cli as dsl_tools_cli
from proxy_tasks import _cli as proxy_tasks_cli
from search import _cli as search_cli
from search import _funnel_cli as funnel_cli
from search import _inspect_cli as inspect_cli

# Each module has register(subparsers); a subcommand sets ``func(args) -> int``.
COMMAND_MODULES = [
    dsl_cli,
    dsl_simplify_cli,
    dsl_tools_cli,
    search_cli,
    proxy_tasks_cli,
    inspect_cli,
    funnel_cli,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symdisc",
        description="Discover optimizers by evolutionary search over programs.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # so a closed pipe is seen here, not at interpreter exit
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader left (``symdisc ops | head``): stop quietly, as Unix tools do. Point
        # stdout at devnull so the flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
