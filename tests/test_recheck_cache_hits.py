"""scripts/recheck_cache_hits.py: replays a log's cache hits against today's fingerprint."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from test_fingerprint import DECAY_ONLY, LION_BELOW_ONE

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from recheck_cache_hits import main, recheck  # noqa: E402


def program(lines: str) -> str:
    body = "".join(f"  {line.strip()}\n" for line in lines.strip().splitlines())
    return f"def train(w, g, m, v, lr):\n{body}  return update, m, v\n"


def record(id_: int, text: str, hash_: str, cache_hit: str | None, fingerprint: str | None = "old") -> dict:
    return {"id": id_, "program": text, "hash": hash_, "fingerprint": fingerprint, "cache_hit": cache_hit}


# As in seed 20 of the sixth method: the Lion-like program is trained, pure decay shares its
# old fingerprint, a copy of the decay program then hits by hash; a rewriting of the trained
# program (the same function) hits by fingerprint rightly; an unrelated program is trained.
LION, DECAY = program(LION_BELOW_ONE), program(DECAY_ONLY)
LION_REWRITTEN = LION.replace("update = update * t20", "update = t20 * update")
LOG = [
    record(1, LION, "h-lion", None),
    record(2, DECAY, "h-decay", "fingerprint"),
    record(3, DECAY, "h-decay", "hash"),
    record(4, LION_REWRITTEN, "h-rewritten", "fingerprint"),
    record(5, LION_REWRITTEN, "h-rewritten", "hash"),
    record(6, program("update = g * lr"), "h-sgd", None, fingerprint="other"),
]


def test_split_hits_are_the_ones_todays_fingerprint_would_not_make():
    counts = recheck(LOG)
    assert (counts.records, counts.trained) == (6, 2)
    assert (counts.fingerprint_hits, counts.split_fingerprint_hits) == (2, 1)
    assert (counts.hash_hits, counts.split_hash_hits) == (2, 1)
    assert counts.split_by_source == {1: 2}


def test_the_command_prints_one_line_per_run_and_the_sources(tmp_path, capsys):
    run = tmp_path / "search"
    run.mkdir()
    (run / "individuals.jsonl").write_text("".join(json.dumps(r) + "\n" for r in LOG))
    main([str(run)])
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("2 of 4 cached records suspect")
    assert out[1] == "  #1: its fitness went to 2 records by split hits"
