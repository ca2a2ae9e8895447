"""``symdisc run CONFIG`` and ``symdisc resume DIR``."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from symdisc.exit_codes import BAD_INPUT

from ._config import Config, ConfigError, load_config
from ._evolution import Search
from ._progress import Progress
from ._rundir import CONFIG, RunDirectory, RunDirectoryError
from ._state import SearchError


def register(subparsers) -> None:
    run = subparsers.add_parser(
        "run",
        help="start a search from a YAML config",
        description="Start an evolutionary search from a YAML config (see configs/default.yaml).",
    )
    run.add_argument("config", help="the YAML config file")
    run.add_argument("--out", help="the run directory (default: runs/<config name>-<time>)")
    _common_options(run)
    run.set_defaults(func=_run)

    resume = subparsers.add_parser(
        "resume",
        help="continue a stopped or killed search",
        description="Continue a search from its run directory: no completed evaluation is lost.",
    )
    resume.add_argument("dir", help="the run directory")
    _common_options(resume)
    resume.set_defaults(func=_resume)


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        help="join this Ray cluster: the HOST:PORT 'ray start --head' printed, or auto "
        "(overrides workers.address; see docs/cluster.md)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line and no notes, only errors")


def _run(args) -> int:
    try:
        config = load_config(args.config)
    except (ConfigError, OSError) as error:
        print(f"symdisc run: {error}", file=sys.stderr)
        return BAD_INPUT
    if config.funnel is not None:  # a bad funnel file fails now, not after the search
        from ._funnel_cli import check_funnel_file

        try:
            check_funnel_file(config.funnel, config.task.name)
        except ConfigError as error:
            print(f"symdisc run: {Path(args.config).name}: {error}", file=sys.stderr)
            return BAD_INPUT
    out = args.out or _default_out(args.config)
    try:
        rundir = RunDirectory.create(out, config)
    except RunDirectoryError as error:
        print(f"symdisc run: {error}", file=sys.stderr)
        return BAD_INPUT
    if not args.quiet:
        print(f"run directory: {rundir.path}", file=sys.stderr)
    code = _search(config, rundir, args)
    if code != 0 and _holds_only_config(rundir):  # nothing was recorded: nothing to resume
        (rundir.path / CONFIG).unlink()
        rundir.path.rmdir()
        print(f"symdisc run: removed {rundir.path}, which held only its {CONFIG}", file=sys.stderr)
    return code


def _holds_only_config(rundir: RunDirectory) -> bool:
    try:
        return [entry.name for entry in rundir.path.iterdir()] == [CONFIG]
    except OSError:
        return False


def _resume(args) -> int:
    try:
        rundir = RunDirectory.open(args.dir)
        config = rundir.config()
    except (RunDirectoryError, ConfigError) as error:
        print(f"symdisc resume: {error}", file=sys.stderr)
        return BAD_INPUT
    return _search(config, rundir, args, resume=True)


def _default_out(config_path: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{Path(config_path).stem}-{stamp}"


def make_evaluator(config: Config, address: str | None = None, notify=None):
    """The evaluator the config asks for (``workers.backend``); ``notify`` gets notes on slow starts."""
    if config.workers.backend == "inprocess":
        from ._evaluator import InProcessEvaluator

        return InProcessEvaluator(config.task.name, config.task.stall.rule)
    from ._ray_pool import RayEvaluator

    return RayEvaluator(
        config.task.name,
        num_workers=config.workers.count,
        address=address or config.workers.address,
        max_in_flight_per_worker=config.workers.in_flight_per_worker,
        num_gpus=config.workers.gpus_per_worker,
        notify=notify,
        stall=config.task.stall.rule,
    )


def _search(config: Config, rundir: RunDirectory, args, resume: bool = False) -> int:
    progress = Progress(quiet=args.quiet)
    search = Search(config, rundir, progress)
    try:
        if resume:
            for note in search.resume():
                print(f"symdisc resume: {note}", file=sys.stderr)
            if search.finished:
                print(f"{rundir.path}: the run already finished its budget", file=sys.stderr)
                _summary(search, rundir, args.quiet)
                return _funnel_after(config, rundir, args)
    except (SearchError, RunDirectoryError) as error:
        print(f"symdisc: {error}", file=sys.stderr)
        return BAD_INPUT
    try:
        evaluator = make_evaluator(config, args.address, notify=None if args.quiet else _note)
    except Exception as error:  # Ray start-up, cluster address, a task that will not build
        print(f"symdisc: could not start the {config.workers.backend} workers: {error}", file=sys.stderr)
        return 2
    try:
        search.run(evaluator)
    except KeyboardInterrupt:
        progress.close()
        print(f"interrupted; continue with: symdisc resume {rundir.path}", file=sys.stderr)
        return 130
    except (SearchError, RunDirectoryError) as error:
        print(f"symdisc: {error}", file=sys.stderr)
        return 1
    finally:
        evaluator.close()
        rundir.close()
    _summary(search, rundir, args.quiet)
    return _funnel_after(config, rundir, args)


def _funnel_after(config: Config, rundir: RunDirectory, args) -> int:
    """The funnel the config names (``funnel:``), run on this run when its search has ended."""
    if config.funnel is None:
        return 0
    from ._funnel_cli import funnel_after_search

    return funnel_after_search(config.funnel, rundir.path, args.address, args.quiet)


def _note(message: str) -> None:
    print(f"symdisc: {message}", file=sys.stderr, flush=True)


def _summary(search: Search, rundir: RunDirectory, quiet: bool) -> None:
    stats = search.stats()
    if quiet:
        return
    hits = stats["hash_hits"] + stats["fingerprint_hits"]
    print(
        f"done: {stats['individuals']} programs ({stats['valid']} valid children of "
        f"{stats['generated']} generated), {stats['evaluated']} evaluated ({stats['failed']} failed), "
        f"{hits} cache hits ({stats['hash_hits']} hash, {stats['fingerprint_hits']} fingerprint), "
        f"{stats['restarts']} restarts, {stats['elapsed_seconds']:.0f} s",
        file=sys.stderr,
    )
    print(f"best fitness {stats['best_fitness']:.4f}: {rundir.path / 'best.txt'}", file=sys.stderr)
