"""Time ``dsl.closest_optimizer`` here against another checkout of the project, in one run.

The reference is another tree (say the commit before a change, from ``git worktree add``):
each program is classified alternately by this checkout and by the reference, each in its own
fresh Python process (the same interpreter and packages), so both see the same machine
load. Prints seconds per program, the ratio reference / this, and whether the two verdicts
(closest optimizer, Lion family, Lion) agree.

    git worktree add /tmp/before HEAD~1
    python scripts/bench_closest.py --reference-tree /tmp/before lion adamw signum docs/rediscovery_v5/seed1[234].txt
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CLASSIFY = """
import json, sys, time
import dsl
from dsl.library import load_program
program = load_program(sys.argv[1])
start = time.perf_counter()
match = dsl.closest_optimizer(program)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "verdict": [match.name, match.lion_family, match.is_lion],
                  "dsl": dsl.__file__}))
"""


def classify(tree: Path, program: str) -> dict:
    """``closest_optimizer`` of ``program`` with the ``dsl`` package of ``tree``, in a fresh process."""
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    # Run from the tree, so that its packages come first (a file path is made absolute).
    name = str(Path(program).resolve()) if Path(program).is_file() else program
    output = subprocess.run(
        [sys.executable, "-c", _CLASSIFY, name],
        cwd=tree,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(output.splitlines()[-1])
    if not Path(result["dsl"]).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"{tree}: imported dsl from {result['dsl']}, not from the tree")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("programs", nargs="+", help="library names or program files")
    parser.add_argument("--reference-tree", required=True, help="another checkout of the project")
    args = parser.parse_args(argv)
    reference = Path(args.reference_tree)
    if not (reference / "dsl" / "_closest.py").is_file():
        parser.error(f"--reference-tree: {reference} is not a checkout of this project (no dsl/_closest.py)")
    print("| program | reference s | this s | reference / this | same verdict |")
    print("|---|---:|---:|---:|---|")
    totals = [0.0, 0.0]
    for program in args.programs:
        theirs, ours = classify(reference, program), classify(ROOT, program)
        totals[0] += theirs["seconds"]
        totals[1] += ours["seconds"]
        same = (
            "yes" if theirs["verdict"] == ours["verdict"] else f"no: {theirs['verdict']} / {ours['verdict']}"
        )
        ratio = theirs["seconds"] / ours["seconds"]
        print(f"| {program} | {theirs['seconds']:.2f} | {ours['seconds']:.2f} | {ratio:.2f} | {same} |")
    print(f"| total | {totals[0]:.2f} | {totals[1]:.2f} | {totals[0] / totals[1]:.2f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
