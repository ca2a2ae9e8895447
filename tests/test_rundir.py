"""Run directories: atomic checkpoints, torn log lines, and exact resume after an interruption."""

import json
import shutil

import pytest

from search import (
    InProcessEvaluator,
    Progress,
    RunDirectory,
    RunDirectoryError,
    Search,
    SearchError,
    config_from_dict,
)

TASK = "mlp_digits_tiny"
STABLE = ("seq", "id", "parent", "island", "mutation", "program", "hash", "fitness", "failure", "cache_hit")


def make_config(checkpoint_every=10, programs=70, meta=True):
    return config_from_dict(
        {
            "seed": 3,
            "task": {"name": TASK},
            "search": {
                "population_size": 8,
                "tournament_size": 2,
                "restart_after": 12,
                "parallel_searches": 2,
            },
            "mutation": {"weights": {"insert": 1, "delete": 1, "modify_argument": 1, "mutate_constant": 1}},
            "budget": {"programs": programs},
            "meta_validation": {"task": TASK if meta else None, "every": 15},
            "workers": {"backend": "inprocess"},
            "run": {"checkpoint_every": checkpoint_every},
        }
    )


class InterruptAfter(Progress):
    """Raises KeyboardInterrupt (a Ctrl-C) after ``n`` completions."""

    def __init__(self, n):
        super().__init__(quiet=True)
        self.n = n

    def update(self, stats, force=False):
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt


def stable(records):
    return [tuple(r.get(k) for k in STABLE + ("individual", "task")) for r in records]


def run(path, config, progress=None):
    rundir = RunDirectory.create(path, config)
    search = Search(config, rundir, progress)
    try:
        search.run(InProcessEvaluator(TASK))
    finally:
        rundir.close()
    return search


def resume(path, progress=None):
    rundir = RunDirectory.open(path)
    search = Search(rundir.config(), rundir, progress)
    search.resume()
    try:
        search.run(InProcessEvaluator(TASK))
    finally:
        rundir.close()
    return search


def logs(path):
    rundir = RunDirectory.open(path)
    return stable(rundir.read_log()), stable(rundir.read_log("meta_validation.jsonl"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: the state every resumed run must reproduce."""
    path = tmp_path_factory.mktemp("reference") / "run"
    search = run(path, make_config())
    individuals, meta = logs(path)
    assert len(individuals) == 70 and meta
    assert individuals[0][7] is not None  # the warm start trained
    return search, individuals, meta


@pytest.mark.parametrize("stop_after", [1, 9, 10, 37])
def test_resume_after_ctrl_c_reproduces_the_uninterrupted_run(tmp_path, reference, stop_after):
    path = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(path, make_config(), InterruptAfter(stop_after))
    checkpoint = RunDirectory.open(path).read_checkpoint()
    assert not checkpoint["finished"]
    search = resume(path)
    ref_search, individuals, meta = reference
    assert logs(path) == (individuals, meta)  # nothing lost, nothing twice
    assert search.stats() | {"elapsed_seconds": 0} == ref_search.stats() | {"elapsed_seconds": 0}
    assert (path / "best.txt").read_text() == (ref_search.rundir.path / "best.txt").read_text()


def test_resume_twice_in_a_row(tmp_path, reference):
    path = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(path, make_config(), InterruptAfter(13))
    with pytest.raises(KeyboardInterrupt):
        resume(path, InterruptAfter(21))
    resume(path)
    assert logs(path) == reference[1:]


def test_resume_with_only_the_initial_checkpoint_replays_the_whole_log(tmp_path, reference):
    path = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(path, make_config(checkpoint_every=10_000), InterruptAfter(30))
    assert RunDirectory.open(path).read_checkpoint()["seq"] == 0
    # the config differs from the reference only in checkpoint_every, which does not change the search
    resume(path)
    assert logs(path) == reference[1:]


def test_a_torn_last_line_is_dropped_and_redone(tmp_path, reference):
    path = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(path, make_config(), InterruptAfter(25))
    log = path / "individuals.jsonl"
    text = log.read_text()
    log.write_text(text + text.splitlines()[-1][:40])  # a kill in the middle of a write
    resume(path)
    assert logs(path) == reference[1:]


def test_a_changed_config_is_detected_on_resume(tmp_path):
    path = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(path, make_config(checkpoint_every=10_000, meta=False), InterruptAfter(20))
    config_file = path / "config.yaml"
    config_file.write_text(config_file.read_text().replace("mutate_constant: 1.0", "mutate_constant: 9.0"))
    with pytest.raises(SearchError, match="does not match the replayed search"):
        resume(path)


def test_resuming_a_finished_run_changes_nothing(tmp_path):
    path = tmp_path / "run"
    run(path, make_config(programs=12, meta=False))
    before = (path / "individuals.jsonl").read_text()
    search = Search(RunDirectory.open(path).config(), RunDirectory.open(path))
    search.resume()
    assert search.finished
    assert (path / "individuals.jsonl").read_text() == before


def test_checkpoints_are_written_atomically(tmp_path):
    rundir = RunDirectory.create(tmp_path / "run", make_config())
    rundir.write_checkpoint({"seq": 1, "big": list(range(1000))})
    rundir.write_checkpoint({"seq": 2})
    assert rundir.read_checkpoint() == {"seq": 2}
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.json", "config.yaml"]


def test_checkpoint_holds_population_rng_and_counts_but_not_the_cache(tmp_path, reference):
    state = json.loads((reference[0].rundir.path / "checkpoint.json").read_text())
    assert state["finished"] and state["seq"] == 70 + len(reference[2])
    assert {"islands", "members", "rng", "counts", "in_flight", "best"} <= set(state)
    assert "cache" not in state  # rebuilt from the log on resume
    assert state["rng"]["bit_generator"] == "PCG64"
    assert all(len(island["members"]) == 8 for island in state["islands"])
    referenced = {str(i) for island in state["islands"] for i in island["members"]}
    assert set(state["members"]) == referenced


def test_create_refuses_a_used_directory(tmp_path):
    path = tmp_path / "run"
    RunDirectory.create(path, make_config())
    with pytest.raises(RunDirectoryError, match="symdisc resume"):
        RunDirectory.create(path, make_config())
    with pytest.raises(RunDirectoryError, match="not a run directory"):
        RunDirectory.open(tmp_path)
    shutil.rmtree(path)
