"""``symdisc inspect RUN_DIR | PROGRAM`` and ``symdisc plot RUN_DIR``."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

from dsl import Program, ProgramError, parse, prune
from dsl.library import load_program

from ._inspect import (
    InspectError,
    Run,
    best_by_length,
    best_per_island,
    closest_optimizer_report,
    fitness_of,
    lineage,
    live_length,
    marked_program,
    read_run,
    summarize,
)
from ._lion_scan import lion_family_line

_LONG_NUMBER = re.compile(r"\d+\.\d{5,}(e-?\d+)?")


def register(subparsers) -> None:
    inspect = subparsers.add_parser(
        "inspect",
        help="what a search run spent and found, or one program: redundant lines, closest known optimizer",
        description="With a run directory: budgets, cache hits, restarts, meta-validations and halls of "
        "fame; with --id N or --best, one individual with its lineage from the warm start. "
        "With a program (file or library name): its redundant statements and closest known optimizer.",
    )
    inspect.add_argument("target", help="a run directory, a program file, or a library name")
    which = inspect.add_mutually_exclusive_group()
    which.add_argument("--id", type=int, metavar="N", help="individual N of the run")
    which.add_argument("--best", action="store_true", help="the run's best individual")
    inspect.add_argument(
        "--lion-family",
        action="store_true",
        help="with a run directory: add when the first Lion-family program appeared "
        "(fits the closest known optimizer to each candidate program: seconds per program)",
    )
    inspect.set_defaults(func=cmd_inspect)

    plot = subparsers.add_parser(
        "plot",
        help="PNG plots of a search run (fitness, cache hits, meta-validation, funnel)",
        description="Write PNG plots of a run: fitness over the search, cache hit rate and redundant "
        "fraction, meta-validation, and the funnel's results when --funnel is given.",
    )
    plot.add_argument("dir", help="the run directory")
    plot.add_argument("--out", help="where the PNG files go (default: the run directory)")
    plot.add_argument("--funnel", metavar="FUNNEL_JSON", help="a funnel report to draw as bars")
    plot.set_defaults(func=cmd_plot)


def _error(message: str) -> int:
    print(f"symdisc inspect: {message}", file=sys.stderr)
    return 2


def cmd_inspect(args) -> int:
    if not Path(args.target).is_dir():
        if args.id is not None or args.best:
            return _error(f"--id and --best need a run directory; {args.target} is not a directory")
        try:
            program = load_program(args.target)
        except ProgramError as error:  # load_program names the file unless the error already does
            return _error(str(error.in_source(args.target)))
        print(marked_program(program), end="")
        return _print_closest(program)
    try:
        run = read_run(args.target)
        if args.id is None and not args.best:
            print(run_report(run, lion_family=args.lion_family), end="")
            return 0
        record = run.best() if args.best else run.individual(args.id)
        print(individual_report(run, record["id"]), end="")
    except InspectError as error:
        return _error(str(error))
    return _print_closest(parse(record["program"]))


def _print_closest(program: Program) -> int:
    print(f"\n{closest_optimizer_report(program).rstrip()}")
    return 0


def cmd_plot(args) -> int:
    from ._plots import FunnelError, plot_run  # matplotlib is imported only to plot

    try:
        run = read_run(args.dir)
        written = plot_run(run, args.out or run.path, args.funnel)
    except (InspectError, FunnelError, OSError) as error:
        print(f"symdisc plot: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


# -- text ---------------------------------------------------------------------------------


def _fitness(value: float | None) -> str:
    return "failed" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _percent(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def _budget(spent: float | None, limit: float | None, wall: bool) -> str:
    spent_text = "?" if spent is None else (f"{spent:.0f} s" if wall else str(spent))
    if limit is None:
        return f"{spent_text} (no limit)"
    limit_text = f"{limit:.0f} s" if wall else str(limit)
    return f"{spent_text} of {limit_text}"


def run_report(run: Run, lion_family: bool = False) -> str:
    """The text of ``symdisc inspect RUN_DIR`` (with ``lion_family``, the first Lion-family program)."""
    config, s = run.config, summarize(run)
    search = config.search
    lines = [
        f"run {run.path}: {search.mode} from {search.initial_program} on {config.task.name} "
        f"(seed {config.seed}), {search.parallel_searches} island(s) of {search.population_size}, "
        f"tournaments of {search.tournament_size}",
        "budgets: "
        + ", ".join(
            f"{name} {_budget(spent, limit, name == 'wall seconds')}" for name, spent, limit in s.budgets
        ),
    ]
    generated = "?" if s.generated is None else str(s.generated)
    note = ""
    if run.counts is not None and run.checkpoint_seq != _last_seq(run):
        note = f" (mutation attempts as of the checkpoint at seq {run.checkpoint_seq})"
    lines += [
        f"programs: {generated} generated, {s.children} valid children recorded, "
        f"{s.individuals} individuals with the warm start{note}",
        f"trained: {s.evaluated} ({s.failed} failed); the others came from the cache",
        f"cache hits: {s.hash_hits + s.fingerprint_hits} of {s.children} children "
        f"({_percent(s.hash_hits + s.fingerprint_hits, s.children)}): {s.hash_hits} by functional hash, "
        f"{s.fingerprint_hits} by fingerprint",
        "redundant: "
        + ("-" if math.isnan(s.redundant_fraction) else f"{s.redundant_fraction:.1%}")
        + " of a child's statements on average",
    ]
    lines.append(_restarts_line(run, s.restarts))
    lines += _meta_lines(run)
    if lion_family:
        lines.append(lion_family_line(run))
    lines.append("")
    lines.append(
        "best program of each live length (statements that reach the update; * on the Pareto front;\n"
        "constants to 4 digits):"
    )
    lines.append(f"  {'live':>4} {'stmts':>5} {'id':>7} {'fitness':>8} {'island':>6}  live statements")
    for record, on_front in best_by_length(run):
        lines.append(
            f"{'*' if on_front else ' '} {live_length(record):>4} {record['length']:>5} {record['id']:>7} "
            f"{_fitness(fitness_of(record)):>8} {record['island']:>6}  {_one_line(record['program'])}"
        )
    lines.append("")
    lines.append("best of each island:")
    for island, record in enumerate(best_per_island(run)):
        if record is None:
            lines.append(f"  island {island}: no individual yet")
        else:
            lines.append(
                f"  island {island}: individual {record['id']}, fitness {_fitness(fitness_of(record))}, "
                f"{record['length']} statements ({live_length(record)} live)"
            )
    if run.individuals:
        best = run.best()
        lines.append("")
        lines.append(
            f"best: individual {best['id']}, fitness {_fitness(fitness_of(best))} "
            f"(symdisc inspect {run.path} --best)"
        )
    return "\n".join(lines) + "\n"


def _one_line(program_text: str, width: int = 90) -> str:
    """The statements of the program without its redundant ones, on one line, constants to 4 digits."""
    text = "; ".join(statement.to_text() for statement in prune(program_text).statements)
    text = _LONG_NUMBER.sub(lambda match: f"{float(match.group()):.4g}", text)
    return text if len(text) <= width else text[: width - 3] + "..."


def _last_seq(run: Run) -> int:
    return max([r["seq"] for r in run.individuals + run.meta_validations], default=0)


def _restarts_line(run: Run, restarts: list[tuple[int, int]]) -> str:
    if run.config.search.restart_after is None:
        return "restarts: off"
    per_island = [
        sum(island == i for _, island in restarts) for i in range(run.config.search.parallel_searches)
    ]
    line = f"restarts: {len(restarts)} (per island: {', '.join(map(str, per_island))})"
    counted = None if run.counts is None else run.counts.get("restarts")
    if counted is not None and run.checkpoint_seq == _last_seq(run) and counted != len(restarts):
        line += f"; the checkpoint counts {counted}: the log does not replay as this version expects"
    return line


def _meta_lines(run: Run) -> list[str]:
    task = run.config.meta_validation.task
    if task is None:
        return ["meta-validation: off"]
    lines = [f"meta-validations on {task}: {len(run.meta_validations)}"]
    if run.meta_validations:
        lines.append(f"  {'individual':>10} {'evaluations':>11} {'search fitness':>14} {'meta fitness':>12}")
    for record in run.meta_validations:
        search_fitness = fitness_of(run.individual(record["individual"]))
        lines.append(
            f"  {record['individual']:>10} {record['evaluations']:>11} {_fitness(search_fitness):>14} "
            f"{_fitness(fitness_of(record)):>12}"
        )
    return lines


def individual_report(run: Run, individual_id: int) -> str:
    """The text of ``symdisc inspect RUN_DIR --id N``: the program and its lineage."""
    record = run.individual(individual_id)
    task = run.config.task.name
    lines = [
        f"individual {record['id']} (island {record['island']}, {record['mutation']}), "
        f"fitness {_fitness(fitness_of(record))} on {task}"
        + (f", failed: {record['failure']}" if record["failure"] else ""),
    ]
    if record.get("test_fitness") is not None:
        lines[0] += f", test fitness {_fitness(record['test_fitness'])}"
    lines.append(marked_program(record["program"]).rstrip("\n"))
    steps = lineage(run, individual_id)
    lines.append("")
    lines.append(f"lineage from the warm start ({len(steps) - 1} mutations):")
    previous = None
    for step in steps:
        fitness = fitness_of(step.record)
        change = ""
        if previous is not None and math.isfinite(fitness) and math.isfinite(previous):
            change = f" ({fitness - previous:+.4f})"
        origin = (
            "warm start" if step.parent is None else f"from {step.parent['id']} by {step.record['mutation']}"
        )
        cache = f", cache hit by {step.record['cache_hit']}" if step.record["cache_hit"] else ""
        lines.append(
            f"  individual {step.record['id']}: {origin}, fitness {_fitness(fitness)}{change}{cache}"
        )
        lines += [f"      - line {line}: {text}" for line, text in step.removed]
        lines += [f"      + line {line}: {text}" for line, text in step.added]
        previous = fitness
    return "\n".join(lines) + "\n"
