"""One small seeded search, run once per test session and shared by the inspect and plot tests.

Two islands with restarts after a short plateau, meta-validation every few evaluations
and a few cache hits, so every part of a run directory has something in it. The meta-
validation task is the search task (no second compilation): its fitness equals the search
fitness, which the plot tests work around where it matters.
"""

from __future__ import annotations

from pathlib import Path

from search import InProcessEvaluator, RunDirectory, Search, config_from_dict

CONFIG = {
    "seed": 3,
    "task": {"name": "mlp_digits_tiny"},
    "search": {"population_size": 6, "tournament_size": 2, "parallel_searches": 2, "restart_after": 5},
    "mutation": {"weights": {"insert": 1, "delete": 1, "modify_argument": 1, "mutate_constant": 1}},
    "budget": {"programs": 60},
    "meta_validation": {"task": "mlp_digits_tiny", "every": 15},
    "workers": {"backend": "inprocess"},
    "run": {"checkpoint_every": 25},
}

_runs: dict[str, Path] = {}


def seeded_run(tmp_path_factory) -> Path:
    """The run directory of the shared search (made on the first call of the session)."""
    if "run" not in _runs:
        path = tmp_path_factory.mktemp("seeded") / "run"
        config = config_from_dict(CONFIG)
        rundir = RunDirectory.create(path, config)
        Search(config, rundir).run(InProcessEvaluator(config.task.name))
        rundir.close()
        _runs["run"] = path
    return _runs["run"]
