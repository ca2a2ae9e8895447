"""Run directories: atomic checkpoints, torn log lines, and exact resume after an interruption."""

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from dsl import analyze, parse
from search import (
    InProcessEvaluator,
    Progress,
    RunDirectory,
    RunDirectoryError,
    Search,
    SearchError,
    config_from_dict,
)
from search._cache import FitnessCache
from search._state import SearchState
from symdisc.cli import main

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


def evaluator(capacity=1):
    """The in-process evaluator; with ``capacity`` > 1 the search keeps that many jobs queued on it."""
    evaluator = InProcessEvaluator(TASK)
    evaluator.capacity = capacity
    return evaluator


def run(path, config, progress=None, capacity=1):
    rundir = RunDirectory.create(path, config)
    search = Search(config, rundir, progress)
    try:
        search.run(evaluator(capacity))
    finally:
        rundir.close()
    return search


def resume(path, progress=None, capacity=1):
    rundir = RunDirectory.open(path)
    search = Search(rundir.config(), rundir, progress)
    search.resume()
    try:
        search.run(evaluator(capacity))
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


def test_a_parsimony_search_resumes_exactly_and_its_checkpoint_holds_live_statement_counts(tmp_path):
    lean = replace(make_config(meta=False), search=replace(make_config().search, parsimony_tolerance=0.5))
    uninterrupted = run(tmp_path / "whole", lean)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", lean, InterruptAfter(23))
    resume(tmp_path / "cut")
    assert logs(tmp_path / "cut") == logs(tmp_path / "whole")
    assert uninterrupted.stats()["restarts"] > 0  # a restart's copies of the best carry the count too

    state = json.loads((tmp_path / "whole" / "checkpoint.json").read_text())
    for member in state["members"].values():
        analysis = analyze(parse(member["program"]))
        assert member["live_statements"] == len(analysis.program.statements) - len(analysis.redundant)

    # a checkpoint written before the counts existed loads them from the programs
    for member in state["members"].values():
        del member["live_statements"]
    counts = {k: m.live_statements for k, m in SearchState.from_dict(state).members.items()}
    written = json.loads((tmp_path / "whole" / "checkpoint.json").read_text())["members"]
    assert counts == {int(k): m["live_statements"] for k, m in written.items()}


def test_create_refuses_a_used_directory(tmp_path):
    path = tmp_path / "run"
    RunDirectory.create(path, make_config())
    with pytest.raises(RunDirectoryError, match="symdisc resume"):
        RunDirectory.create(path, make_config())
    with pytest.raises(RunDirectoryError, match="not a run directory"):
        RunDirectory.open(tmp_path)
    shutil.rmtree(path)


# -- the fitness cache is rebuilt from the log, not stored in the checkpoint -----------------


def small_config(evaluations):
    """Population 8, short programs; insertions and deletions often regenerate a known program."""
    return config_from_dict(
        {
            "seed": 2,
            "task": {"name": TASK},
            "search": {"population_size": 8, "tournament_size": 2},
            "mutation": {"weights": {"insert": 1, "delete": 1, "modify_argument": 1}, "max_length": 14},
            "budget": {"evaluations": evaluations},
            "workers": {"backend": "inprocess"},
            "run": {"checkpoint_every": 10},
        }
    )


def test_checkpoint_size_does_not_grow_with_the_programs_seen(tmp_path):
    sizes = {}
    for evaluations in (25, 100):
        search = run(tmp_path / str(evaluations), small_config(evaluations))
        assert search.stats()["evaluated"] == evaluations
        sizes[evaluations] = (tmp_path / str(evaluations) / "checkpoint.json").stat().st_size
    # the same population of 8 programs; a cache would add ~75 results and hashes (~15 kB)
    assert abs(sizes[100] - sizes[25]) < 0.2 * sizes[25], sizes


def test_a_resumed_run_gets_cache_hits_for_programs_trained_before_the_interruption(tmp_path):
    config = small_config(60)
    reference = tmp_path / "reference"
    run(reference, config)
    path = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(path, config, InterruptAfter(40))
    covered = RunDirectory.open(path).read_checkpoint()["seq"]
    assert covered > 0
    resume(path)
    records = RunDirectory.open(path).read_log()
    trained_before = [r for r in records if r["seq"] <= covered and r["cache_hit"] is None]
    known_hashes = {r["hash"] for r in trained_before}
    known_prints = {r["fingerprint"] for r in trained_before}
    hits_after = [r for r in records if r["seq"] > covered and r["cache_hit"] is not None]
    assert any(r["hash"] in known_hashes or r["fingerprint"] in known_prints for r in hits_after)
    assert stable(records) == stable(RunDirectory.open(reference).read_log())


def test_the_cache_rebuilt_from_a_log_is_the_cache_of_the_search(tmp_path):
    search = run(tmp_path / "run", small_config(30))
    rebuilt = FitnessCache.from_log(RunDirectory.open(tmp_path / "run").read_log())
    assert search.stats()["fingerprint_hits"] + search.stats()["hash_hits"] > 0
    assert rebuilt.by_fingerprint.keys() == search.cache.by_fingerprint.keys()
    assert rebuilt.by_hash.keys() == search.cache.by_hash.keys()
    for table, original in (
        (rebuilt.by_hash, search.cache.by_hash),
        (rebuilt.by_fingerprint, search.cache.by_fingerprint),
    ):
        for key, result in table.items():  # repr: NaN metrics of failed runs compare equal
            assert repr(replace(result, seconds=0)) == repr(replace(original[key], seconds=0))


# -- damaged run directories -------------------------------------------------------------


@contextlib.contextmanager
def unprivileged():
    """Drop to an unprivileged effective user while inside (root ignores file permissions)."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture
def public_tmp():
    """A scratch directory an unprivileged user can reach (pytest's own are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="symdisc-test-"))
    folder.chmod(0o755)
    yield folder
    for item in [folder, *folder.rglob("*")]:
        if item.is_dir():
            item.chmod(0o755)
    shutil.rmtree(folder)


def test_a_damaged_middle_line_is_an_error_naming_file_and_line(tmp_path, capsys):
    path = tmp_path / "run"
    run(path, make_config(programs=12, meta=False))
    log = path / "individuals.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    lines[4] = lines[4][:50] + "\n"
    log.write_text("".join(lines))
    with pytest.raises(RunDirectoryError, match=r"individuals.jsonl: line 5 is not a JSON record"):
        Search(make_config(), RunDirectory.open(path)).resume()
    assert main(["resume", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "individuals.jsonl: line 5 is not a JSON record" in err and "Traceback" not in err


def test_a_checkpoint_cut_in_half_falls_back_to_replaying_the_whole_log(tmp_path, reference):
    path = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(path, make_config(), InterruptAfter(37))
    checkpoint = path / "checkpoint.json"
    text = checkpoint.read_text()
    assert json.loads(text)["seq"] > 0
    checkpoint.write_text(text[: len(text) // 2])
    rundir = RunDirectory.open(path)
    search = Search(rundir.config(), rundir)
    notes = search.resume()
    assert len(notes) == 1 and "checkpoint.json is damaged" in notes[0] and "from the start" in notes[0]
    search.run(InProcessEvaluator(TASK))
    rundir.close()
    assert logs(path) == reference[1:]


def test_replaying_the_whole_log_breeds_with_the_capacity_each_session_had(tmp_path):
    # sessions with 3 and then 1 job in flight; the whole log is replayed after the checkpoint is lost
    path = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(path, make_config(meta=False), InterruptAfter(20), capacity=3)
    with pytest.raises(KeyboardInterrupt):
        resume(path, InterruptAfter(25), capacity=1)
    before = (path / "individuals.jsonl").read_text().splitlines()
    assert {json.loads(line)["capacity"] for line in before} == {1, 3}
    (path / "checkpoint.json").write_text("{")
    resume(path, capacity=1)
    after = (path / "individuals.jsonl").read_text().splitlines()
    assert after[: len(before)] == before  # nothing rewritten
    assert sorted(json.loads(line)["id"] for line in after) == list(range(70))


def test_a_finished_run_whose_last_line_was_torn_redoes_it(tmp_path):
    path = tmp_path / "run"
    first = run(path, make_config(programs=12, meta=False))
    log = path / "individuals.jsonl"
    before = log.read_text()
    log.write_text(before[: before.rstrip("\n").rfind("\n") + 1] + before.splitlines()[-1][:30])
    rundir = RunDirectory.open(path)
    search = Search(rundir.config(), rundir)
    notes = search.resume()
    assert "cut a torn last line" in notes[0]
    assert "covers the logs up to seq 12, but they end at seq 11" in notes[1]
    assert not search.finished  # the lost individual is redone, not silently dropped
    search.run(InProcessEvaluator(TASK))
    rundir.close()
    assert stable(rundir.read_log()) == stable([json.loads(line) for line in before.splitlines()])
    state = rundir.read_checkpoint()
    assert state["finished"] and state["seq"] == state["counts"]["individuals"] == 12
    assert search.stats() | {"elapsed_seconds": 0} == first.stats() | {"elapsed_seconds": 0}


def test_a_read_only_run_directory_is_a_clear_error(public_tmp, capsys):
    path = public_tmp / "run"
    with pytest.raises(KeyboardInterrupt):
        run(path, make_config(meta=False), InterruptAfter(5))
    for file in path.iterdir():
        file.chmod(0o444)
    path.chmod(0o555)
    try:
        with unprivileged():
            status = main(["resume", str(path), "--quiet"])
    finally:
        path.chmod(0o755)
    assert status == 2
    err = capsys.readouterr().err
    assert "the run directory is not writable (Permission denied" in err and "Traceback" not in err


def test_resume_with_an_unreadable_or_invalid_config_is_a_clear_error(public_tmp, capsys):
    path = public_tmp / "run"
    run(path, make_config(programs=5, meta=False))
    config_file = path / "config.yaml"
    good = config_file.read_text()
    config_file.chmod(0o000)
    try:
        with unprivileged():
            status = main(["resume", str(path), "--quiet"])
    finally:
        config_file.chmod(0o644)
    assert status == 2
    assert "config.yaml: cannot read it (Permission denied)" in capsys.readouterr().err
    for bad, message in [
        ("seed: [1\n", "config.yaml: expected valid YAML"),
        (good.replace("population_size: 8", "population_size: eight"), "search.population_size: expected"),
        ("- a list\n", "expected a mapping of keys"),
        (b"\xff\xfe", "config.yaml: expected valid YAML"),
    ]:
        if isinstance(bad, bytes):
            config_file.write_bytes(bad)
        else:
            config_file.write_text(bad)
        assert main(["resume", str(path), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
