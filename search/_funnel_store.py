"""The funnel's evaluations: an append-only log of every finished (program, task, seed), and a runner.

``evaluations.jsonl`` in the funnel directory has one line per finished evaluation, keyed
by the program's functional hash, the task and the seed, written (and flushed) as each
one completes. A funnel started again on the same directory reads it back first and only
submits what is missing, so a killed funnel resumes with nothing evaluated twice: the
tuning grids, the candidates and the baselines alike. (A result depends only on program,
task and seed; see ``search._evaluator``.)
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from dsl import Program, analyze
from proxy_tasks import Result

from ._evaluator import Evaluator, sanitize

EVALUATIONS = "evaluations.jsonl"

Key = tuple[str, str, int]
"""(functional hash, task name, seed)."""


def result_record(result: Result) -> dict:
    """``Result`` fields as JSON-safe data (non-finite floats become None)."""
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in dataclasses.asdict(result).items()
    }


def result_from_record(record: dict) -> Result:
    """Inverse of ``result_record``: a missing fitness is ``-inf``, any other missing float NaN.

    Fields the record lacks (older logs) take the ``Result`` defaults.
    """
    values = {}
    for f in dataclasses.fields(Result):
        if f.name not in record:
            continue
        value = record[f.name]
        if value is None and f.name != "failure":
            value = -math.inf if f.name.endswith("fitness") else math.nan
        values[f.name] = value
    return Result(**values)


class FunnelLogError(RuntimeError):
    """``evaluations.jsonl`` is damaged (a line before the last is not a JSON record)."""


def read_records(path: Path) -> list[dict]:
    """Every complete line of the JSONL file ``path``; a line torn by a kill is cut from the file.

    Raises:
      FunnelLogError: naming the file and line, if a complete line is not JSON.
    """
    if not path.is_file():
        return []
    data = path.read_bytes()
    complete = data.rfind(b"\n") + 1
    if complete < len(data):  # never acknowledged: the next append must start on a fresh line
        with open(path, "r+b") as handle:
            handle.truncate(complete)
    records = []
    for number, line in enumerate(data[:complete].splitlines(), start=1):
        try:
            records.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise FunnelLogError(
                f"{path}: line {number} is not a JSON record ({error}); the log is damaged"
            ) from None
    return records


def submit(evaluator: Evaluator, job_id: int, program: Program, task_name: str, seed: int) -> None:
    """The funnel's one call into ``Evaluator.submit``: one seed per job, so workers run seeds in parallel."""
    evaluator.submit(job_id, program, (seed,), task_name)


class FunnelEvaluations:
    """Results by (program, task, seed): from the log if known, else trained on the evaluator.

    Args:
      directory: the funnel directory (holds ``evaluations.jsonl``).
      evaluator: where missing evaluations run (its ``capacity`` jobs at a time).
      on_result: called after each new evaluation with (done, total) of the current batch.
    """

    def __init__(
        self,
        directory: str | Path,
        evaluator: Evaluator,
        on_result: Callable[[int, int], None] | None = None,
    ):
        self.path = Path(directory) / EVALUATIONS
        self.evaluator = evaluator
        self.on_result = on_result
        self.known: dict[Key, Result] = {}
        for record in read_records(self.path):
            self.known[(record["hash"], record["task"], record["seed"])] = result_from_record(record)
        self._file = None
        self.reused = 0
        self.evaluated = 0
        self._next_job = 0

    def reuse(self, directory: str | Path) -> None:
        """Also answer from the log in ``directory`` (another funnel's or step's; a missing log
        adds nothing), never retraining what it holds; this log's own results come first."""
        for record in read_records(Path(directory) / EVALUATIONS):
            key = (record["hash"], record["task"], record["seed"])
            self.known.setdefault(key, result_from_record(record))

    def results(self, jobs: Sequence[tuple[Program, str, int]]) -> list[Result]:
        """The result of every (program, task name, seed) job, in order; only unknown ones are trained."""
        keys = [(analyze(program).hash, task, seed) for program, task, seed in jobs]
        missing: dict[Key, tuple[Program, str, int]] = {}
        for key, job in zip(keys, jobs, strict=True):
            if key in self.known:
                self.reused += 1
            else:
                missing.setdefault(key, job)
        self._train(missing)
        return [self.known[key] for key in keys]

    def _train(self, missing: dict[Key, tuple[Program, str, int]]) -> None:
        queue = deque(missing.items())
        in_flight: dict[int, tuple[Key, Program]] = {}
        done = 0
        while queue or in_flight:
            while queue and len(in_flight) < self.evaluator.capacity:
                key, (program, task, seed) = queue.popleft()
                job_id = self._next_job
                self._next_job += 1
                submit(self.evaluator, job_id, program, task, seed)
                in_flight[job_id] = (key, program)
            completed = self.evaluator.wait()
            if not completed:
                raise RuntimeError("the evaluator returned nothing while funnel jobs were in flight")
            for completion in completed:
                key, program = in_flight.pop(completion.job_id)
                result = sanitize(completion.result)
                record = {
                    "hash": key[0],
                    "task": key[1],
                    "seed": key[2],
                    "program": program.to_text(),
                    **result_record(result),
                    "worker": completion.worker,
                }
                self._append(record)
                self.known[key] = result
                self.evaluated += 1
                done += 1
                if self.on_result is not None:
                    self.on_result(done, len(missing))

    def _append(self, record: dict) -> None:
        """One line, flushed to the OS at once: it survives a killed process."""
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
