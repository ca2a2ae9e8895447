"""``symdisc funnel RUN_DIR [RUN_DIR ...]``: funnel selection of the best programs of search runs."""

from __future__ import annotations

import datetime
import sys
from dataclasses import replace
from pathlib import Path

from symdisc.exit_codes import BAD_INPUT

from ._config import Config, ConfigError, TaskSection
from ._funnel import run_funnel, stage_tasks
from ._funnel_candidates import CandidateError, search_task
from ._funnel_config import FunnelConfig, funnel_config_from_dict, load_funnel_config
from ._funnel_report import FUNNEL_MD, best_verdict
from ._funnel_store import FunnelLogError
from ._rundir import RunDirectory, RunDirectoryError


def register(subparsers) -> None:
    funnel = subparsers.add_parser(
        "funnel",
        help="promote the best programs of search runs to larger tasks, against tuned baselines",
        description=(
            "Funnel selection (arXiv:2302.06675, section 5): the best distinct programs of the runs are "
            "trained on stages of growing tasks beside tuned AdamW and Lion; those that beat tuned AdamW on "
            "validation by more than 2 standard errors go on, and test says whether they beat it. Writes "
            "funnel.md and funnel.json. Running it again with the same --out resumes it without training "
            "anything twice (see configs/funnel.yaml)."
        ),
    )
    funnel.add_argument("runs", nargs="+", metavar="RUN_DIR", help="search run directories")
    funnel.add_argument(
        "--config", help="the funnel YAML (default: the defaults written in configs/funnel.yaml)"
    )
    funnel.add_argument(
        "--out",
        help="the funnel directory (default: RUN_DIR/funnel for one run, runs/funnel-<time> for several)",
    )
    funnel.add_argument("--address", help="join this Ray cluster (overrides workers.address)")
    funnel.add_argument("--quiet", action="store_true", help="no progress lines")
    funnel.set_defaults(func=_funnel)


def _funnel(args) -> int:
    try:
        config = load_funnel_config(args.config) if args.config else funnel_config_from_dict({})
    except ConfigError as error:
        print(f"symdisc funnel: {error}", file=sys.stderr)
        return BAD_INPUT
    if args.out:
        out = Path(args.out)
    elif len(args.runs) == 1:
        out = Path(args.runs[0]) / "funnel"
    else:
        out = Path("runs") / f"funnel-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    return funnel_command(config, args.runs, out, args.address, args.quiet, args.config)


def check_funnel_file(path: str, task: str) -> FunnelConfig:
    """Load the funnel config a search config names and check its stages against the search task.

    Raises:
      ConfigError: naming ``funnel`` and the bad key path.
    """
    try:
        config = load_funnel_config(path)
        stage_tasks(config, task, [])
    except ConfigError as error:
        raise ConfigError(f"funnel: {error.path}", error.expected, error.got) from None
    return config


def funnel_after_search(path: str, rundir: Path, address: str | None, quiet: bool) -> int:
    """The funnel a search config names, run on that search's directory (into ``rundir/funnel``)."""
    try:
        config = load_funnel_config(path)
    except ConfigError as error:
        print(f"symdisc: funnel: {error}", file=sys.stderr)
        return BAD_INPUT
    if not quiet:
        print(
            f"funnel {path} on {rundir} (resume it with: symdisc funnel {rundir} --config {path})",
            file=sys.stderr,
        )
    return funnel_command(config, [str(rundir)], rundir / "funnel", address, quiet, path)


def funnel_command(
    config: FunnelConfig,
    runs: list[str],
    out: Path,
    address: str | None,
    quiet: bool,
    config_path: str | None = None,
) -> int:
    """Start the workers, run (or resume) the funnel, print where the report is. Returns the exit code."""

    def log(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr)

    try:
        task, seeds = search_task(runs)
        first_task = stage_tasks(config, task, seeds)[0]
        workers = config.workers or RunDirectory.open(runs[0]).config().workers
    except (CandidateError, ConfigError, RunDirectoryError) as error:
        print(f"symdisc funnel: {error}", file=sys.stderr)
        return BAD_INPUT
    from ._cli import make_evaluator  # the search's own worker set-up (late: _cli imports this module)

    log(f"funnel directory: {out}")
    try:
        evaluator = make_evaluator(
            replace(Config(), task=TaskSection(name=first_task), workers=workers), address
        )
    except Exception as error:  # Ray start-up, cluster address, a task that will not build
        print(f"symdisc funnel: could not start the {workers.backend} workers: {error}", file=sys.stderr)
        return BAD_INPUT
    try:
        outcome = run_funnel(config, runs, out, evaluator, log)
    except KeyboardInterrupt:
        again = f"symdisc funnel {' '.join(runs)}" + (f" --config {config_path}" if config_path else "")
        print(f"interrupted; continue with: {again} --out {out}", file=sys.stderr)
        return 130
    except (CandidateError, ConfigError, FunnelLogError, RunDirectoryError) as error:
        print(f"symdisc funnel: {error}", file=sys.stderr)
        return BAD_INPUT
    finally:
        evaluator.close()
    for stage in outcome.stages:
        verdict = best_verdict(outcome, stage)
        answer = (
            "not evaluated" if not verdict["evaluated"] else ("yes" if verdict["beats_reference"] else "no")
        )
        log(
            f"stage {stage.config.name} ({stage.task}): best search program beats tuned "
            f"{config.baselines.reference} on test: {answer}"
        )
    log(f"report: {out / FUNNEL_MD}")
    return 0
