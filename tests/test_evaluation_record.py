"""scripts/_evaluations.py: the baseline scripts' record resumes, and never reuses another task's runs."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import dsl
import proxy_tasks

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from _evaluations import Evaluations  # noqa: E402

TINY = "mlp_digits_tiny"


class Counting(Evaluations):
    """Counts the training runs; with ``changed`` the tiny task has one more step."""

    trained = 0
    changed = False

    def task(self, task_name):
        task = _variant() if self.changed else proxy_tasks.get(task_name)
        outer = self

        class Counted:
            config, dataset = task.config, task.dataset

            def evaluate(self, program, seed):
                outer.trained += 1
                return task.evaluate(program, seed)

        return Counted()


_VARIANT = []


def _variant():
    if not _VARIANT:
        config = proxy_tasks.config(TINY)
        _VARIANT.append(proxy_tasks.build(replace(config, steps=config.steps + 1)))
    return _VARIANT[0]


def test_record_resumes_from_disk_and_keys_on_the_task(tmp_path):
    path = tmp_path / "record.json"
    program = dsl.library.load("adamw")
    first = Counting(path)
    result = first.evaluate(TINY, program, 3)
    assert first.trained == 1 and first.evaluate(TINY, program, 3) == result and first.trained == 1
    again = Counting(path)  # a new process reads the file
    assert again.evaluate(TINY, program, 3) == result and again.trained == 0
    assert result.test_metric == proxy_tasks.get(TINY).evaluate(program, 3).test_metric
    # The same task name with another config (one more step): not reused, trained again.
    again.changed = True
    assert again.get(TINY, program, 3) is None
    again.evaluate(TINY, program, 3)
    assert again.trained == 1
