"""The ``symdisc`` command. Each package contributes its subcommands through ``register``."""

from __future__ import annotations

import argparse
import sys

from dsl import _cli as dsl_cli
from proxy_tasks import _cli as proxy_tasks_cli
from search import _cli as search_cli

# Each module has register(subparsers); a subcommand sets ``func(args) -> int``.
COMMAND_MODULES = [dsl_cli, search_cli, proxy_tasks_cli]


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
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
