"""proxy_tasks.tune: a grid that grows past its edge, a bound, a seed mean and a disk cache."""

from __future__ import annotations

import json
import math
import statistics

import pytest

import dsl
import proxy_tasks
from proxy_tasks import Result

TINY = "mlp_digits_tiny"
SGD_LOW = "def train(w, g, lr):\n  lr = lr * 0.003\n  update = g * lr\n  return update\n"


def _lr_values(result):
    return sorted({lr for lr, _, _ in result.grid})


def test_lr_grid_grows_upward_until_the_best_is_inside():
    # Plain SGD at lr 0.003 x (0.32, 1, 3.2) is far too slow for 100 steps: the optimum
    # lies above the initial grid.
    task = proxy_tasks.get(TINY)
    result = proxy_tasks.tune(task, dsl.parse(SGD_LOW), seeds=(0,), lr_steps=(-1, 1), max_extension=8)
    lrs = _lr_values(result)
    assert min(lrs) == pytest.approx(0.003 * 10**-0.5)  # never grew downward
    assert max(lrs) > 0.003 * 10**0.5  # grew upward
    assert min(lrs) < result.lr < max(lrs)  # the best is interior
    assert result.bound_hit == () and result.weight_decay is None
    by_lr = {lr: fitness for lr, _, fitness in result.grid}
    assert result.fitness == max(by_lr.values()) == by_lr[result.lr]
    # The tuned program really has the tuned constant and reproduces the fitness.
    assert task.evaluate(result.program, 0).fitness == result.fitness
    assert result.evaluations == len(result.grid)


def test_growth_stops_at_the_bound_and_says_so():
    task = proxy_tasks.get(TINY)
    result = proxy_tasks.tune(task, dsl.parse(SGD_LOW), seeds=(0,), lr_steps=(-1, 1), max_extension=1)
    assert _lr_values(result) == pytest.approx([0.003 * 10 ** (k / 2) for k in range(-1, 3)])
    assert result.lr == pytest.approx(0.03) and result.bound_hit == ("lr",)


def _bowl_evaluator(best_lr, best_wd, calls):
    """Fitness peaked at known constants, read from each job's program (to test the grid logic)."""
    from proxy_tasks._tune import find_lr_constant, find_wd_constant

    def evaluate_batch(jobs):
        calls.append(jobs)
        results = []
        for program, _ in jobs:
            lr = find_lr_constant(program).value(program)
            wd = find_wd_constant(program).value(program)
            fitness = -((math.log10(lr / best_lr)) ** 2) - (math.log10(wd / best_wd)) ** 2
            results.append(Result(fitness, fitness, 0.0, 1, None, 0.0))
        return results

    return evaluate_batch


@pytest.mark.parametrize(
    "best_lr, best_wd, lr_grows, wd_grows",
    [(1e-1, 1e-2, "up", None), (1e-3, 1e-4, None, "down"), (1e-6, 1e0, "down", "up")],
)
def test_each_constant_grows_independently_toward_its_optimum(best_lr, best_wd, lr_grows, wd_grows):
    lion = dsl.library.load("lion")  # lr 1e-4, wd 1e-2: the initial grid is lr 1e-6..1e-2, wd 1e-3..1e-1
    calls = []
    result = proxy_tasks.tune(
        None, lion, seeds=(0, 1), max_extension=6, evaluate_batch=_bowl_evaluator(best_lr, best_wd, calls)
    )
    assert result.lr == pytest.approx(best_lr) and result.weight_decay == pytest.approx(best_wd)
    lrs = sorted({lr for lr, _, _ in result.grid})
    wds = sorted({wd for _, wd, _ in result.grid})
    assert len(result.grid) == len(lrs) * len(wds)  # still a full rectangle
    assert lrs[0] < result.lr < lrs[-1] and wds[0] < result.weight_decay < wds[-1]
    assert (lrs[0] < 1e-6 * 0.99) == (lr_grows == "down") and (lrs[-1] > 1e-2 * 1.01) == (lr_grows == "up")
    assert (wds[0] < 1e-3 * 0.99) == (wd_grows == "down") and (wds[-1] > 1e-1 * 1.01) == (wd_grows == "up")
    assert all(len(jobs) % 2 == 0 and {seed for _, seed in jobs} == {0, 1} for jobs in calls)
    assert sum(len(jobs) for jobs in calls) == 2 * len(result.grid) == result.evaluations


def test_default_tuning_averages_three_seeds():
    task = proxy_tasks.get(TINY)
    result = proxy_tasks.tune(task, dsl.parse(SGD_LOW), lr_steps=(3, 5), max_extension=2)
    assert result.seeds == (0, 1, 2)
    per_seed = [task.evaluate(result.program, seed).fitness for seed in (0, 1, 2)]
    assert len(set(per_seed)) > 1  # the seeds differ, so a one-seed score would not match
    assert result.fitness == pytest.approx(statistics.fmean(per_seed), abs=1e-7)


def test_tuned_reads_the_disk_cache_the_second_time(tmp_path):
    task = proxy_tasks.get(TINY)
    evaluated = []

    def evaluate_batch(jobs):
        evaluated.extend(jobs)
        return [task.evaluate(program, seed) for program, seed in jobs]

    kwargs = dict(cache_dir=tmp_path, lr_steps=(3, 5), max_extension=2, evaluate_batch=evaluate_batch)
    first = proxy_tasks.tuned(SGD_LOW, TINY, seeds=(0, 1), **kwargs)
    assert len(evaluated) == first.evaluations > 0
    evaluated.clear()
    again = proxy_tasks.tuned(SGD_LOW, TINY, seeds=(0, 1), **kwargs)
    assert evaluated == []
    assert again == first
    (path,) = tmp_path.glob("mlp_digits_tiny-*.json")
    assert json.loads(path.read_text())["key"]["seeds"] == [0, 1]
    assert not list(tmp_path.glob("*.tmp"))
    # Other seeds are another key: evaluated again, in a second file.
    proxy_tasks.tuned(SGD_LOW, TINY, seeds=(0,), **kwargs)
    assert evaluated and len(list(tmp_path.glob("*.json"))) == 2


def test_tune_rejects_bad_arguments():
    with pytest.raises(ValueError, match="lr_steps"):
        proxy_tasks.tune(None, dsl.parse(SGD_LOW), lr_steps=(1, 0))
    with pytest.raises(ValueError, match="no learning-rate constant"):
        proxy_tasks.tune(None, dsl.parse("def train(w, g, lr):\n  update = g * lr\n  return update\n"))
