"""Whole searches on real Ray workers: the in-process order with one worker, and a killed worker."""

import logging

import pytest
import ray
from test_evolution import make_config, run_search, stable

from search import RunDirectory, Search
from search._ray_pool import RayEvaluator

# Tests that start Ray run one after another on one xdist worker (--dist loadgroup): each
# cluster claims every core, and two at once would starve each other's workers.
pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield
    ray.shutdown()


def test_one_ray_worker_one_in_flight_gives_the_in_process_search(tmp_path, ray_session):
    config = make_config(budget={"programs": 40})
    _, in_process = run_search(tmp_path / "inprocess", config)
    with RayEvaluator(config.task.name, num_workers=1, max_in_flight_per_worker=1) as pool:
        _, on_ray = run_search(tmp_path / "ray", config, evaluator=pool)
    assert stable(on_ray) == stable(in_process)
    assert {r["worker"] for r in on_ray if not r["cache_hit"]} != {r["worker"] for r in in_process}


class KillsAWorker:
    """The real pool, with one actor killed after the first results come back."""

    def __init__(self, pool: RayEvaluator, after_waits: int):
        self.pool, self.after_waits, self.waits = pool, after_waits, 0
        self.capacity = pool.capacity

    def submit(self, *args, **kwargs):
        self.pool.submit(*args, **kwargs)

    def wait(self):
        self.waits += 1
        if self.waits == self.after_waits:
            ray.kill(self.pool.actors[0], no_restart=True)
        return self.pool.wait()

    def close(self):
        self.pool.close()


@pytest.mark.slow
def test_a_search_with_a_killed_worker_still_finishes_its_budget(tmp_path, ray_session):
    # the evaluation budget alone: trainings, not programs (cache hits), decide the end
    config = make_config(budget={"programs": None, "evaluations": 40}, workers={"backend": "ray", "count": 2})
    rundir = RunDirectory.create(tmp_path / "run", config)
    with RayEvaluator(config.task.name, num_workers=2) as pool:
        search = Search(config, rundir)
        search.run(KillsAWorker(pool, after_waits=5))
        assert pool.deaths == 1
    rundir.close()
    records = rundir.read_log()
    trained = [r for r in records if not r["cache_hit"]]
    assert len(trained) == 40  # the killed worker's jobs ran again, once each
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids))
