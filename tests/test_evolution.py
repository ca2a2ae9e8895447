"""Regularized evolution on the tiny proxy task, in-process: determinism, cache, budgets, NaN, baselines."""

import math
from dataclasses import replace

import numpy as np
import pytest

import proxy_tasks
from dsl import analyze, library, parse
from proxy_tasks import Result
from search import InProcessEvaluator, RunDirectory, Search, config_from_dict, mean_result, tournament
from search import _evolution as search_evolution
from search._cache import FitnessCache
from search._evaluator import sanitize
from search._records import finite_or_none

TASK = "mlp_digits_tiny"
META_TASK = "mlp_digits_a"


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


def mean(values):
    return math.fsum(values) / len(values)


def test_fitness_is_the_mean_over_the_task_seeds(tmp_path):
    config = make_config(task={"seeds": [0, 1]}, budget={"programs": 12})
    assert config.task.seeds == (0, 1)
    search, records = run_search(tmp_path / "run", config)
    task = proxy_tasks.get(TASK)
    trained = [r for r in records if r["cache_hit"] is None]
    for record in trained[:6]:
        runs = [task.evaluate(parse(record["program"]), seed) for seed in (0, 1)]
        if any(r.failure is not None for r in runs):
            assert record["fitness"] is None and record["failure"] == next(
                r.failure for r in runs if r.failure
            )
            continue
        assert record["fitness"] == (runs[0].fitness + runs[1].fitness) / 2
        assert record["train_loss"] == pytest.approx((runs[0].train_loss + runs[1].train_loss) / 2)
        assert runs[0].fitness != runs[1].fitness  # the seeds do differ: a one-seed mean would fail
    assert "(seeds 0, 1)" in (tmp_path / "run" / "best.txt").read_text()


def test_mean_result_averages_the_figures_and_fails_if_one_seed_failed():
    a = Result(0.5, 0.6, 1.0, 10, None, 1.0, test_fitness=0.4, test_metric=0.45)
    b = Result(0.7, 0.8, 3.0, 10, None, 2.0, test_fitness=0.6, test_metric=0.55)
    both = mean_result([a, b])
    assert (both.fitness, both.metric, both.train_loss) == (0.6, 0.7, 2.0)
    assert (both.test_fitness, both.test_metric, both.steps, both.seconds) == (0.5, 0.5, 10, 3.0)
    assert not both.failed
    assert mean_result([a]) == a
    diverged = Result(float("-inf"), float("nan"), 9.0, 3, "diverged at step 3", 0.5)
    failed = mean_result([a, diverged])
    assert failed.failure == "diverged at step 3" and failed.fitness == float("-inf") and failed.steps == 3


def meta_validations_expected(records, every):
    """From the individuals log alone: the (evaluations, best id, best fitness) of each due meta-validation.

    One is due each time the evaluation count reaches a multiple of ``every`` (in-process, one job
    in flight); it runs only if the best changed since the last one.
    """
    evaluated, best, last, expected = 0, None, None, []
    for record in records:
        fitness = record["fitness"] if record["fitness"] is not None else float("-inf")
        if best is None or fitness > best[1]:
            best = (record["id"], fitness)
        if record["cache_hit"] is None:
            evaluated += 1
            if evaluated % every == 0 and best[0] != last:
                expected.append((evaluated, *best))
                last = best[0]
    return expected


@pytest.mark.slow  # compiles the larger task's training loop
def test_meta_validation_evaluates_a_changed_best_on_the_larger_task_and_skips_an_unchanged_one(tmp_path):
    # a weak warm start (plain SGD, fitness 0.14) so the best changes often in a short run
    every = 5
    config = make_config(
        seed=0,
        search={"initial_program": "sgd"},
        meta_validation={"task": META_TASK, "every": every, "seeds": [0, 1]},
        budget={"programs": None, "evaluations": 40},
    )
    search, records = run_search(tmp_path / "run", config, InProcessEvaluator(TASK))
    meta = RunDirectory.open(tmp_path / "run").read_log("meta_validation.jsonl")
    expected = meta_validations_expected(records, every)
    assert [(m["evaluations"], m["individual"], m["search_fitness"]) for m in meta] == expected
    assert 3 <= len(meta) < 40 // every  # several, and at least one skipped as unchanged
    by_id = {r["id"]: r for r in records}
    task = proxy_tasks.get(META_TASK)
    for line in meta:
        assert line["task"] == META_TASK and line["seeds"] == [0, 1]
        assert line["program"] == by_id[line["individual"]]["program"]
        assert line["individuals"] == sum(r["seq"] < line["seq"] for r in records)
        runs = [task.evaluate(parse(line["program"]), seed) for seed in (0, 1)]
        assert line["fitness"] == mean([r.fitness for r in runs])
        assert line["metric"] == mean([r.metric for r in runs])
        assert line["test_metric"] == finite_or_none(mean([r.test_metric for r in runs]))
        assert line["fitness"] != line["search_fitness"]  # another task: not the search's number again
    assert search.stats()["meta_validations"] == len(meta)


def test_an_exhausted_wall_time_budget_breeds_nothing_more(tmp_path):
    # the warm start always runs; with no time left, no child is bred after it
    config = make_config(budget={"programs": None, "wall_seconds": 1e-9})
    search, records = run_search(tmp_path / "run", config)
    assert [r["id"] for r in records] == [0]
    assert search.finished


WARM_START_WITH_DEAD_CODE = """def train(w, g, m, lr):
  m = interp(g, m, 0.9)
  unused = m * 3.0
  update = sign(m)
  update = update * lr
  update = update * 0.01
  return update, m
"""


def test_best_txt_shows_the_pruned_program(tmp_path):
    program_file = tmp_path / "warm_start.txt"
    program_file.write_text(WARM_START_WITH_DEAD_CODE)
    # only the warm start is recorded, so it is the best; its statement "unused" reaches no output
    config = make_config(search={"initial_program": str(program_file)}, budget={"programs": 1})
    search, records = run_search(tmp_path / "run", config)
    assert search.stats()["best_id"] == 0
    fitness = records[0]["fitness"]
    assert (tmp_path / "run" / "best.txt").read_text() == (
        f"# individual 0, fitness {fitness} on {TASK} (seed 0)\n"
        "# without its redundant statements (same updates):\n"
        "# def train(w, g, m, lr):\n"
        "#   m = interp(g, m, 0.9)\n"
        "#   update = sign(m)\n"
        "#   update = update * lr\n"
        "#   update = update * 0.01\n"
        "#   return update, m\n" + WARM_START_WITH_DEAD_CODE
    )


def test_tournament_picks_the_fittest_of_the_sampled_members():
    fitness = {10: 0.3, 11: 0.9, 12: 0.5, 13: float("-inf")}
    ids = list(fitness)
    rng = np.random.default_rng(0)
    # T = P samples every member: always the fittest
    assert {tournament(rng, ids, fitness.__getitem__, 4) for _ in range(50)} == {11}
    # T = 2 of 3: each pair is equally likely, the pair's fitter member wins
    three = [10, 11, 12]
    wins = [tournament(rng, three, fitness.__getitem__, 2) for _ in range(3000)]
    assert wins.count(10) == 0  # the least fit never wins a pair
    assert wins.count(11) / 3000 == pytest.approx(2 / 3, abs=0.04)  # in 2 of the 3 pairs
    assert wins.count(12) / 3000 == pytest.approx(1 / 3, abs=0.04)
    # copies of one program: ids repeat in a population
    assert tournament(rng, [13, 13, 11, 13], fitness.__getitem__, 4) == 11


def test_a_parsimony_tournament_picks_the_shortest_member_the_fitness_cannot_tell_from_the_fittest():
    fitness = {10: -1.00, 11: -1.03, 12: -1.20, 13: -1.04, 14: float("-inf")}
    length = {10: 12, 11: 5, 12: 2, 13: 5, 14: 1}
    ids = list(fitness)
    rng = np.random.default_rng(0)

    def winner(tolerance):  # T = P: every member is sampled
        return tournament(rng, ids, fitness.__getitem__, 5, tolerance, length.__getitem__)

    assert winner(0.0) == 10  # off: the fittest
    assert winner(0.02) == 10  # nothing shorter within 0.02 of -1.00
    assert winner(0.05) == 11  # 11 and 13 are within 0.05 and have 5 statements: the fitter of the two
    assert winner(0.25) == 12  # 2 statements, 0.20 below the fittest
    assert winner(math.inf) == 12  # a failed member is never within the tolerance of a finite best
    with pytest.raises(ValueError, match="live_statements"):
        tournament(rng, ids, fitness.__getitem__, 5, 0.05)


def test_a_search_with_parsimony_breeds_from_shorter_parents(tmp_path):
    """Same seed, same first tournament samples: parsimony changes which parents breed, toward shorter ones."""
    _, plain = run_search(tmp_path / "plain", make_config())
    _, lean = run_search(tmp_path / "lean", make_config(search={"parsimony_tolerance": 1.0}))

    def mean_parent_length(records):
        by_id = {r["id"]: r for r in records}
        lengths = [
            by_id[r["parent"]]["length"] * (1 - by_id[r["parent"]]["redundant_fraction"]) for r in records[1:]
        ]
        return sum(lengths) / len(lengths)

    assert stable(plain) != stable(lean)
    assert mean_parent_length(lean) < mean_parent_length(plain)


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


# Trains on small gradients but is NaN on the fingerprint's probe (arctanh of |g| >= 1), as
# are most of its children: before the fix they all shared one fingerprint, and a child
# that fails training (m * log(v) from zero state) was handed this program's fitness.
NAN_ON_THE_PROBE = """def train(w, g, m, v, lr):
  m = arctanh(g)
  g2 = square(g)
  m = interp(lr, lr, m)
  v = interp(g2, v, 0.7934)
  sqrt_v = sqrt(v)
  update = g / sqrt_v
  lr = m * 0.0216
  update = update * lr
  return update, m, v
"""


def test_programs_that_are_not_finite_on_the_probe_get_no_fingerprint_and_no_fingerprint_hit(tmp_path):
    from dsl import fingerprint, probe_updates
    from dsl._fingerprint import flat_probe_updates

    start = tmp_path / "start.txt"
    start.write_text(NAN_ON_THE_PROBE)
    assert fingerprint(NAN_ON_THE_PROBE, finite_only=True) is None
    failing = "def train(w, g, m, v, lr):\n  lr = log(v)\n  update = m * lr\n  return update, m, v\n"
    # NaN everywhere on the probe's first pass, as is the program that fails: a fingerprint
    # of that pass alone made them collide (the second pass, at training's scale, now differs).
    for text in (failing, NAN_ON_THE_PROBE):
        assert np.isnan(flat_probe_updates(text)).all()
    config = make_config(search={"initial_program": str(start)}, budget={"programs": 80})
    _, records = run_search(tmp_path / "run", config)
    non_finite = [
        r
        for r in records
        if not all(np.isfinite(leaf).all() for update in probe_updates(r["program"]) for leaf in update)
    ]
    assert len(non_finite) > 10  # the test exercises the case
    assert all(r["fingerprint"] is None and r["cache_hit"] != "fingerprint" for r in non_finite)
