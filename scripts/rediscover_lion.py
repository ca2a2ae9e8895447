"""Rediscover Lion from the AdamW warm start: every seed's search, funnel, simplification, verdict, plots, report.

    python scripts/rediscover_lion.py                                  # configs/rediscover_lion.yaml
    python scripts/rediscover_lion.py --seeds 1 --minutes 5 --out runs/try
    python scripts/rediscover_lion.py --report docs/rediscovery.md --docs docs/rediscovery
    python scripts/rediscover_lion.py --seeds 2 --no-baselines     # the evolution seeds only
    python scripts/rediscover_lion.py --first-seed 5 --seeds 2     # evolution seeds 5 and 6

The same command again continues a killed pipeline (nothing finished is run twice) or, when
everything is done, only rewrites the report. The steps are in ``search._rediscovery``, the
report in ``search._rediscovery_report``; the settings in ``configs/rediscover_lion.yaml``.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from search import ConfigError, load_rediscovery_config, run_pipeline, write_rediscovery_reports
from search._funnel_candidates import CandidateError
from search._funnel_store import FunnelLogError
from search._inspect import InspectError
from search._rediscovery import WorkersError
from search._rundir import RunDirectoryError
from search._state import SearchError
from symdisc.exit_codes import BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/rediscover_lion.yaml", help="the pipeline's YAML")
    parser.add_argument("--seeds", type=int, help="how many evolution seeds (pipeline.seeds)")
    parser.add_argument("--first-seed", type=int, help="the first evolution seed (pipeline.first_seed)")
    parser.add_argument("--minutes", type=float, help="wall time of each search (pipeline.minutes)")
    parser.add_argument("--out", help="where runs and the report go (pipeline.out)")
    parser.add_argument(
        "--no-baselines", action="store_true", help="leave the baseline methods out (pipeline.baselines: [])"
    )
    parser.add_argument("--report", help="also write the report here (e.g. docs/rediscovery.md)")
    parser.add_argument(
        "--docs", help="where the report's linked files are copied (default: REPORT without .md)"
    )
    parser.add_argument("--address", help="join this Ray cluster (overrides workers.address)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "scripts/rediscover_lion.py", *(sys.argv[1:] if argv is None else argv)])

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    try:
        config = load_rediscovery_config(
            args.config,
            seeds=args.seeds,
            first_seed=args.first_seed,
            minutes=args.minutes,
            out=args.out,
            baselines=[] if args.no_baselines else None,
        )
    except ConfigError as error:
        print(f"rediscover_lion: {error}", file=sys.stderr)
        return BAD_INPUT
    try:
        summaries = run_pipeline(config, log, args.address, args.quiet)
        reports = write_rediscovery_reports(config, summaries, command, args.report, args.docs)
    except KeyboardInterrupt:
        print(f"interrupted; continue with: {command}", file=sys.stderr)
        return 130
    except (
        CandidateError,
        ConfigError,
        FunnelLogError,
        InspectError,
        OSError,
        RunDirectoryError,
        SearchError,
        WorkersError,
    ) as error:
        print(f"rediscover_lion: {error}", file=sys.stderr)
        return 1
    for report in reports:
        print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
