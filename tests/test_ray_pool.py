"""The Ray backend: real actors give the in-process results, survive a killed worker, report NaN."""

from __future__ import annotations

import logging
import re
from dataclasses import astuple, replace

import pytest

ray = pytest.importorskip("ray")

from dsl import library, parse  # noqa: E402
from search import _ray_pool  # noqa: E402
from search._evaluator import InProcessEvaluator  # noqa: E402
from search._ray_pool import RayEvaluator, WorkerPoolError  # noqa: E402

TASK = "mlp_digits_tiny"
META_TASK = "mlp_digits_a"  # a larger task, as the search submits for meta-validation

# Tests that start Ray run one after another on one xdist worker (--dist loadgroup): each
# cluster claims every core, and two at once would starve each other's workers.
pytestmark = pytest.mark.xdist_group("ray")

PROGRAM_NAMES = ("adamw_paper", "lion", "sgd", "momentum", "adam", "signsgd")

# log(0 * g) is -inf everywhere: the first step sends the weights to infinity.
NAN_PROGRAM = parse(
    """def train(w, g, lr):
  zero = g * 0.0
  update = log(zero)
  return update
"""
)


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for the module (starting Ray costs seconds).

    Three logical CPUs: two for the shared 2-worker pool, one for the tests that start
    their own actor while that pool is alive.
    """
    ray.init(num_cpus=3, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def evaluator(ray_session):
    with RayEvaluator(TASK, num_workers=2) as pool:
        yield pool


def in_process(jobs):
    """{job_id: result} of (job_id, program, seed[, task_name]) jobs run in-process."""
    reference = InProcessEvaluator(TASK)
    results = {}
    for job in jobs:
        reference.submit(*job)
        (done,) = reference.wait()
        results[done.job_id] = done.result
    return results


def run_all(pool, jobs, after_first_wait=None):
    """Feed ``jobs`` through ``pool`` never exceeding its capacity; {job_id: Completed}."""
    pending = list(jobs)
    in_flight = 0
    completed = {}
    first = True
    while pending or in_flight:
        while pending and in_flight < pool.capacity:
            pool.submit(*pending.pop(0))
            in_flight += 1
        done = pool.wait()
        assert done, "wait() returned nothing while jobs were in flight"
        for item in done:
            assert item.job_id not in completed, f"job {item.job_id} returned twice"
            completed[item.job_id] = item
        in_flight -= len(done)
        if first and after_first_wait is not None:
            while pending and in_flight < pool.capacity:  # refill, so every actor is busy
                pool.submit(*pending.pop(0))
                in_flight += 1
            after_first_wait(pool)
        first = False
    assert pool.wait() == []
    return completed


def without_time(result):
    """The result's fields but its wall time, with NaN made comparable (repr of a float is exact)."""
    return tuple(repr(value) for value in astuple(replace(result, seconds=0.0)))


def test_two_workers_give_the_in_process_results_bit_for_bit(evaluator):
    jobs = [(i, library.load_program(name), 10 + i) for i, name in enumerate(PROGRAM_NAMES)]
    completed = run_all(evaluator, jobs)
    expected = in_process(jobs)
    assert sorted(completed) == sorted(expected)
    for job_id, item in completed.items():
        assert without_time(item.result) == without_time(expected[job_id]), jobs[job_id]
        assert not item.result.failed
    assert {item.worker for item in completed.values()} == {"ray-0", "ray-1"}


@pytest.mark.slow  # each process compiles the larger task's training loop once
def test_a_meta_validation_job_runs_on_its_own_task(evaluator):
    program = library.load_program("adamw_paper")
    jobs = [(300, program, 3), (301, program, 3, META_TASK)]
    completed = run_all(evaluator, jobs)
    expected = in_process(jobs)
    for job_id, item in completed.items():
        assert without_time(item.result) == without_time(expected[job_id])
    assert completed[301].result.steps != completed[300].result.steps


def test_a_killed_worker_is_replaced_and_every_job_completes(evaluator):
    jobs = [(100 + i, library.load_program(name), 1) for i, name in enumerate(PROGRAM_NAMES * 2)]
    deaths_before = evaluator.deaths
    killed = []

    def kill_first_actor(pool):
        killed.append(pool.actors[0])
        ray.kill(pool.actors[0])  # it has max_in_flight_per_worker jobs queued right now

    completed = run_all(evaluator, jobs, after_first_wait=kill_first_actor)
    assert sorted(completed) == [job_id for job_id, _, _ in jobs]
    assert evaluator.deaths == deaths_before + 1
    assert evaluator.actors[0] is not killed[0]
    assert any(item.worker.startswith("ray-0.") for item in completed.values())
    expected = in_process(jobs)
    for job_id, item in completed.items():
        assert without_time(item.result) == without_time(expected[job_id])


def test_a_nan_candidate_is_a_failed_result(evaluator):
    completed = run_all(evaluator, [(200, NAN_PROGRAM, 0), (201, library.load_program("sgd"), 0)])
    nan_result = completed[200].result
    assert nan_result.failed and nan_result.fitness == float("-inf")
    assert without_time(nan_result) == without_time(in_process([(200, NAN_PROGRAM, 0)])[200])
    assert not completed[201].result.failed


def test_a_task_the_workers_cannot_build_is_a_clear_error_and_ray_stays_up(ray_session):
    with pytest.raises(WorkerPoolError, match="could not build proxy task 'no_such_task'"):
        RayEvaluator("no_such_task", num_workers=1)
    assert ray.is_initialized()  # the evaluator did not start Ray, so it must not stop it


def test_workers_that_cannot_be_scheduled_are_a_clear_error(ray_session):
    with pytest.raises(WorkerPoolError, match="did not start within 2 s .*1 GPU"):
        RayEvaluator(TASK, num_workers=1, num_gpus=1, startup_timeout=2)  # this cluster has no GPU
    assert ray.is_initialized()


def test_a_cluster_short_of_cpus_says_what_it_waits_for(ray_session, monkeypatch):
    """Ray started by someone else may grow (an autoscaler): wait, but say why, and keep saying."""
    monkeypatch.setattr(_ray_pool, "_WAIT_NOTE_EVERY", 1.0)
    notes = []
    with pytest.raises(WorkerPoolError, match="did not start within 3 s"):
        RayEvaluator(TASK, num_workers=5, startup_timeout=3, notify=notes.append)
    assert notes[0] == (
        "5 Ray workers need 5 CPUs (1 per worker), it has 3 now; waiting for nodes to join "
        "(an autoscaler may add them)"
    )
    pattern = r"\d of 5 Ray workers still starting \(building 'mlp_digits_tiny'\); free now: .*; giving up in"
    assert any(re.match(pattern, note) for note in notes[1:]), notes
    assert ray.is_initialized()


def test_a_stall_rule_stops_the_main_tasks_jobs_only(ray_session):
    """The rule travels to the actor; a job naming its task (meta-validation) trains fully."""
    from proxy_tasks import StallRule

    zero = parse("def train(w, g, lr):\n  update = g * 0.0\n  return update\n")
    with RayEvaluator(TASK, num_workers=1, stall=StallRule(check=0.25)) as pool:
        completed = run_all(pool, [(400, zero, 0), (401, zero, 0, TASK)])
    main, named = completed[400].result, completed[401].result
    assert main.failure.startswith("stalled") and main.steps == 25
    assert not named.failed and named.steps == 100
