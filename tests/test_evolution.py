"""Regularized evolution on the tiny proxy task, in-process: determinism, cache, budgets, NaN, baselines."""

from dataclasses import replace

import pytest

from dsl import analyze, library, parse
from proxy_tasks._task import Result
from search import InProcessEvaluator, RunDirectory, Search, config_from_dict
from search import _evolution as search_evolution
from search._cache import FitnessCache
from search._evaluator import sanitize

TASK = "mlp_digits_tiny"


STABLE = ("id", "parent", "island", "mutation", "program", "hash", "fitness", "failure", "cache_hit")


def make_config(**sections):
    data = {
        "seed": 0,
        "task": {"name": TASK},
        "search": {"population_size": 8, "tournament_size": 2},
        "mutation": {"weights": {"insert": 1, "delete": 1, "modify_argument": 1, "mutate_constant": 1}},
        "budget": {"programs": 60},
        "workers": {"backend": "inprocess"},
        "run": {"checkpoint_every": 10},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return config_from_dict(data)


def run_search(path, config, evaluator=None):
    rundir = RunDirectory.create(path, config)
    search = Search(config, rundir)
    search.run(evaluator or InProcessEvaluator(config.task.name))
    rundir.close()
    records = rundir.read_log()
    if evaluator is None:  # the warm start trains: the tests below are not about failures
        assert records[0]["failure"] is None and records[0]["fitness"] > 0.5, records[0]
    return search, records


def stable(records):
    return [tuple(r[k] for k in STABLE) for r in records]


def test_same_seed_same_run_and_another_seed_another_run(tmp_path):
    config = make_config()
    _, first = run_search(tmp_path / "a", config)
    _, second = run_search(tmp_path / "b", config)
    _, other = run_search(tmp_path / "c", replace(config, seed=1))
    assert stable(first) == stable(second)
    assert stable(first) != stable(other)


def test_log_records_valid_children_distinct_from_their_parents_with_lineage(tmp_path):
    search, records = run_search(tmp_path / "run", make_config())
    by_id = {r["id"]: r for r in records}
    assert [r["id"] for r in records] == sorted(by_id) == list(range(60))
    assert records[0]["mutation"] == "initial" and records[0]["parent"] is None
    for record in records[1:]:
        analysis = analyze(parse(record["program"]))
        assert analysis.valid
        assert analysis.hash == record["hash"]
        assert record["parent"] in by_id and record["parent"] < record["id"]
        assert record["hash"] != by_id[record["parent"]]["hash"]
    assert {r["mutation"] for r in records[1:]} <= {"insert", "delete", "modify_argument", "mutate_constant"}
    best = max(records, key=lambda r: r["fitness"] if r["fitness"] is not None else -1)
    assert (tmp_path / "run" / "best.txt").read_text().endswith(best["program"])


def test_the_cache_trains_each_program_once(tmp_path):
    # a narrow space (constants only, few distinct values) makes hits frequent
    config = make_config(search={"mode": "constants_only"}, budget={"programs": 80})
    search, records = run_search(tmp_path / "run", config)
    trained_hashes, trained_prints = set(), set()
    for record in records:
        if record["cache_hit"] is None:
            assert record["hash"] not in trained_hashes  # never trained twice
            trained_hashes.add(record["hash"])
            trained_prints.add(record["fingerprint"])
        elif record["cache_hit"] == "hash":
            assert record["hash"] in trained_hashes
        else:
            assert record["fingerprint"] in trained_prints
    stats = search.stats()
    assert stats["evaluated"] == len(trained_hashes) == sum(r["cache_hit"] is None for r in records)
    assert stats["hash_hits"] + stats["fingerprint_hits"] == sum(r["cache_hit"] is not None for r in records)
    assert stats["individuals"] == len(records) == 80


def test_cache_lookup_order_hash_then_fingerprint():
    cache = FitnessCache()
    result = Result(0.5, 0.5, 1.0, 10, None, 0.1)
    cache.store("h1", "f1", result)
    calls = []
    assert cache.lookup("h1", lambda: calls.append(1) or "f1") == (result, "hash", None)
    assert calls == []  # no fingerprint computed on a hash hit
    assert cache.lookup("h2", lambda: "f1") == (result, "fingerprint", "f1")
    assert cache.lookup("h2", lambda: "zz")[1] == "hash"  # the fingerprint hit was remembered by hash
    assert cache.lookup("h3", lambda: "f3") == (None, None, "f3")


def test_budgets_by_programs_and_by_evaluations(tmp_path):
    search, records = run_search(tmp_path / "p", make_config(budget={"programs": 25}))
    assert len(records) == 25
    config = make_config(search={"mode": "constants_only"}, budget={"programs": None, "evaluations": 20})
    search, records = run_search(tmp_path / "e", config)
    assert search.stats()["evaluated"] == 20 == sum(r["cache_hit"] is None for r in records)


class NaNEvery:
    """The real in-process evaluator, with every k-th result's fitness replaced by NaN (fault injection)."""

    capacity = 1

    def __init__(self, k: int):
        self.inner = InProcessEvaluator(TASK)
        self.k = k

    def submit(self, job_id, program, seed, task_name=None):
        self.inner.submit(job_id, program, seed, task_name)

    def wait(self):
        done = self.inner.wait()
        return [
            replace(c, result=replace(c.result, fitness=float("nan"), failure=None))
            if c.job_id % self.k == 0
            else c
            for c in done
        ]

    def close(self):
        self.inner.close()


def test_nan_fitness_is_a_failure_and_never_the_best(tmp_path):
    search, records = run_search(tmp_path / "run", make_config(), NaNEvery(3))
    poisoned = [r for r in records if r["id"] % 3 == 0 and r["cache_hit"] is None]
    assert poisoned and all(r["fitness"] is None and "non-finite fitness" in r["failure"] for r in poisoned)
    best_id = search.stats()["best_id"]
    assert best_id % 3 != 0
    assert search.stats()["best_fitness"] > 0


def test_an_all_nan_search_runs_its_budget_with_worst_best(tmp_path):
    search, records = run_search(tmp_path / "run", make_config(budget={"programs": 15}), NaNEvery(1))
    assert len(records) == 15
    assert search.stats()["best_fitness"] == float("-inf")
    assert all(r["fitness"] is None for r in records)


def test_sanitize():
    nan = Result(float("nan"), 0.1, 1.0, 5, None, 0.0)
    assert sanitize(nan).fitness == float("-inf") and sanitize(nan).failed
    inf = Result(float("inf"), 0.1, 1.0, 5, None, 0.0)
    assert sanitize(inf).fitness == float("-inf")
    failed = Result(0.9, 0.1, 1.0, 5, "diverged", 0.0)
    assert sanitize(failed).fitness == float("-inf")
    good = Result(0.9, 0.9, 1.0, 5, None, 0.0)
    assert sanitize(good) == good


def test_aging_keeps_the_newest_members(tmp_path):
    search, records = run_search(tmp_path / "run", make_config())
    members = list(search.state.islands[0].members)
    assert len(members) == 8
    assert members == [r["id"] for r in records][-8:]


def test_constants_only_baseline_changes_only_constants(tmp_path):
    search, records = run_search(tmp_path / "run", make_config(search={"mode": "constants_only"}))
    initial = library.load("adamw_paper")
    shape = [(s.target, s.op, tuple(isinstance(a, str) and a for a in s.args)) for s in initial.statements]
    for record in records:
        program = parse(record["program"])
        assert [
            (s.target, s.op, tuple(isinstance(a, str) and a for a in s.args)) for s in program.statements
        ] == shape
    assert {r["mutation"] for r in records[1:]} == {"mutate_constant"}


def test_random_search_baseline_draws_fresh_programs(tmp_path):
    config = make_config(search={"mode": "random", "random_max_length": 6}, budget={"programs": 30})
    search, records = run_search(tmp_path / "run", config)
    assert {r["mutation"] for r in records[1:]} == {"random"}
    assert all(r["parent"] is None for r in records)
    assert all(1 <= r["length"] <= 6 for r in records[1:])
    assert len({r["hash"] for r in records}) > 20


def test_parallel_searches_and_restart_from_the_best(tmp_path):
    config = make_config(search={"parallel_searches": 2, "restart_after": 6}, budget={"programs": 80})
    search, records = run_search(tmp_path / "run", config)
    assert {r["island"] for r in records[1:]} == {0, 1}
    assert search.stats()["restarts"] >= 1
    best_fitness = search.stats()["best_fitness"]
    for island in search.state.islands:
        assert island.best_fitness <= best_fitness


def test_restart_refills_the_population_with_the_best(tmp_path):
    # with restart_after = 1 every child that does not improve triggers a restart
    config = make_config(search={"restart_after": 1}, budget={"programs": 30})
    search, _ = run_search(tmp_path / "run", config)
    assert search.stats()["restarts"] > 0
    best_id = search.stats()["best_id"]
    # the population is the best's copies plus the children that joined since
    assert best_id in search.state.islands[0].members


def test_meta_validation_logs_the_best_on_the_larger_task(tmp_path):
    config = make_config(meta_validation={"task": TASK, "every": 10}, budget={"programs": 40})
    search, records = run_search(tmp_path / "run", config)
    meta = RunDirectory.open(tmp_path / "run").read_log("meta_validation.jsonl")
    assert meta, "no meta-validation was logged"
    by_id = {r["id"]: r for r in records}
    for line in meta:
        assert line["task"] == TASK
        # same task and seed: the meta-validation reproduces the search fitness
        assert line["fitness"] == pytest.approx(by_id[line["individual"]]["fitness"])
    assert len({line["individual"] for line in meta}) == len(meta)  # an unchanged best is not redone


def test_an_exhausted_wall_time_budget_breeds_nothing_more(tmp_path):
    # the warm start always runs; with no time left, no child is bred after it
    config = make_config(budget={"programs": None, "wall_seconds": 1e-9})
    search, records = run_search(tmp_path / "run", config)
    assert [r["id"] for r in records] == [0]
    assert search.finished


def test_best_txt_shows_the_pruned_program(tmp_path):
    search, records = run_search(tmp_path / "run", make_config(budget={"programs": 40}))
    text = (tmp_path / "run" / "best.txt").read_text()
    best = next(r for r in records if r["id"] == search.stats()["best_id"])
    assert text.endswith(best["program"])
    if analyze(parse(best["program"])).redundant:
        assert "without its redundant statements" in text


def test_one_tournament_per_child_whose_winner_is_mutated_until_valid(tmp_path, monkeypatch):
    tournaments = []
    real_tournament = search_evolution.tournament

    def counting(*args):
        tournaments.append(real_tournament(*args))
        return tournaments[-1]

    monkeypatch.setattr(search_evolution, "tournament", counting)
    search, records = run_search(tmp_path / "run", make_config())
    bred = [r for r in records if r["mutation"] != "initial"]
    assert search.stats()["generated"] > len(bred)  # some children were invalid and re-mutated
    assert tournaments == [r["parent"] for r in bred]
