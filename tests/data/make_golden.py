"""Golden logs of two short seeded in-process searches, pinned by tests/test_golden.py.

Regenerate them (after a change that is meant to alter the search's trajectory, such as a
new data split of the proxy task) with one command from the repository root::

    python tests/data/make_golden.py

and commit the changed files under tests/data/golden/ with the reason in the message.
The logs hold every line of ``individuals.jsonl`` and ``meta_validation.jsonl`` minus the
wall-time fields (``seconds``, ``worker``), and ``stats.json`` the final counters.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"
WALL_TIME_FIELDS = ("seconds", "worker", "elapsed_seconds")
LOGS = ("individuals.jsonl", "meta_validation.jsonl")

_MUTATIONS = {"insert": 1, "delete": 1, "modify_argument": 1, "mutate_constant": 1}

CONFIGS = {
    # two populations, plateau restarts, constant mutations, meta-validation on a larger task
    "evolution": {
        "seed": 7,
        "task": {"name": "mlp_digits_tiny"},
        "search": {"population_size": 8, "tournament_size": 2, "parallel_searches": 2, "restart_after": 10},
        "mutation": {"weights": _MUTATIONS},
        "budget": {"evaluations": 150},
        "meta_validation": {"task": "mlp_digits_a", "every": 40},
        "workers": {"backend": "inprocess"},
        "run": {"checkpoint_every": 25},
    },
    "random": {
        "seed": 11,
        "task": {"name": "mlp_digits_tiny"},
        "search": {"mode": "random", "population_size": 8, "tournament_size": 2, "random_max_length": 8},
        "budget": {"evaluations": 60},
        "workers": {"backend": "inprocess"},
        "run": {"checkpoint_every": 25},
    },
}


def without_wall_time(record: dict) -> dict:
    """``record`` minus the fields that depend on the machine's speed (NaN as None: NaN != NaN)."""
    return {
        k: None if isinstance(v, float) and math.isnan(v) else v
        for k, v in record.items()
        if k not in WALL_TIME_FIELDS
    }


def run(name: str, directory: Path) -> dict[str, list[dict] | dict]:
    """Run golden search ``name`` in ``directory``: its logs and stats, wall-time fields removed."""
    from search import InProcessEvaluator, RunDirectory, Search, config_from_dict

    config = config_from_dict(CONFIGS[name])
    rundir = RunDirectory.create(directory, config)
    search = Search(config, rundir)
    try:
        search.run(InProcessEvaluator(config.task.name))
    finally:
        rundir.close()
    outputs: dict[str, list[dict] | dict] = {
        log: [without_wall_time(r) for r in rundir.read_log(log)] for log in LOGS
    }
    outputs["stats.json"] = without_wall_time(search.stats())
    return outputs


def read(name: str) -> dict[str, list[dict] | dict]:
    """The stored golden outputs of ``name``."""
    outputs: dict[str, list[dict] | dict] = {}
    for log in LOGS:
        text = (GOLDEN / name / log).read_text(encoding="utf-8")
        outputs[log] = [json.loads(line) for line in text.splitlines() if line]
    outputs["stats.json"] = json.loads((GOLDEN / name / "stats.json").read_text(encoding="utf-8"))
    return outputs


def write(name: str, outputs: dict[str, list[dict] | dict]) -> None:
    folder = GOLDEN / name
    folder.mkdir(parents=True, exist_ok=True)
    for log in LOGS:
        lines = "".join(json.dumps(r, allow_nan=False) + "\n" for r in outputs[log])
        (folder / log).write_text(lines, encoding="utf-8")
    (folder / "stats.json").write_text(json.dumps(outputs["stats.json"], indent=1) + "\n", encoding="utf-8")


def main() -> None:
    sys.path.insert(0, str(GOLDEN.parent.parent.parent))  # the repository, for `python tests/data/...`
    for name in CONFIGS:
        with tempfile.TemporaryDirectory() as scratch:
            outputs = run(name, Path(scratch) / "run")
        write(name, outputs)
        print(f"{GOLDEN / name}: {len(outputs['individuals.jsonl'])} individuals")


if __name__ == "__main__":
    main()
