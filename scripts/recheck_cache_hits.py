"""Which of a search's fingerprint cache hits would today's ``dsl.fingerprint`` still make?

A fingerprint hit hands a child the fitness of the first trained program that shares its
fingerprint, and the child's hash keeps it for later hash hits (``search.FitnessCache``).
After the fingerprint changes (a second probe pass at training's gradient scale,
docs/rediscovery_analysis.md), a run logged with the old one can be rechecked from its
``individuals.jsonl``: a hit is split when the child's current fingerprint differs from that
of the program whose fitness it got, and a hash hit inherits the split of the record it
copied. Nothing is retrained; the split hits are the ones to suspect.

    python scripts/recheck_cache_hits.py runs/rediscover_v6/seed20/search runs/rediscover_v6/seed21/search
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Recheck:
    """Counts over one run's log."""

    records: int = 0
    trained: int = 0
    fingerprint_hits: int = 0
    split_fingerprint_hits: int = 0
    hash_hits: int = 0
    split_hash_hits: int = 0
    split_by_source: Counter = field(default_factory=Counter)
    """Trained record id -> how many children got its fitness by a split hit of either kind."""


def recheck(records) -> Recheck:
    """Replays the cache's lookups over ``records`` (``individuals.jsonl`` lines, in order)."""
    from dsl import fingerprint

    current: dict[str, str | None] = {}

    def current_fingerprint(program: str) -> str | None:
        if program not in current:
            current[program] = fingerprint(program, finite_only=True)
        return current[program]

    by_fingerprint: dict[str, dict] = {}  # logged fingerprint -> the trained record
    by_hash: dict[str, tuple[dict, bool]] = {}  # hash -> (trained record, whether the hit was split)
    counts = Recheck()
    for record in records:
        counts.records += 1
        if record["cache_hit"] is None:
            counts.trained += 1
            by_hash.setdefault(record["hash"], (record, False))
            if record["fingerprint"] is not None:
                by_fingerprint.setdefault(record["fingerprint"], record)
        elif record["cache_hit"] == "fingerprint":
            source = by_fingerprint[record["fingerprint"]]
            split = current_fingerprint(record["program"]) != current_fingerprint(source["program"])
            counts.fingerprint_hits += 1
            counts.split_fingerprint_hits += split
            if split:
                counts.split_by_source[source["id"]] += 1
            by_hash.setdefault(record["hash"], (source, split))
        else:
            source, split = by_hash[record["hash"]]
            counts.hash_hits += 1
            counts.split_hash_hits += split
            if split:
                counts.split_by_source[source["id"]] += 1
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="search run directories (with individuals.jsonl)")
    args = parser.parse_args(argv)
    for run in args.runs:
        with open(run / "individuals.jsonl") as lines:
            counts = recheck(json.loads(line) for line in lines)
        children = counts.records - counts.trained
        print(
            f"{run}: {counts.records} records, {counts.trained} trained; "
            f"fingerprint hits {counts.fingerprint_hits}, split {counts.split_fingerprint_hits}; "
            f"hash hits {counts.hash_hits}, inheriting a split {counts.split_hash_hits}; "
            f"{counts.split_fingerprint_hits + counts.split_hash_hits} of {children} cached records suspect"
        )
        for source, count in counts.split_by_source.most_common(5):
            print(f"  #{source}: its fitness went to {count} records by split hits")


if __name__ == "__main__":
    main()
