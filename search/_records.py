"""The JSON records of a run: results, individuals (``individuals.jsonl``) and meta-validations.

Every record is a flat JSON object whose non-finite floats are written as ``null`` (JSON
has no NaN or infinity). Reading a record back gives the same ``Result``: a missing
fitness is ``-inf`` (a failed run), other missing floats NaN.
"""

from __future__ import annotations

import math
from dataclasses import asdict, fields
from typing import TYPE_CHECKING

from proxy_tasks import WORST_FITNESS, Result

if TYPE_CHECKING:
    from ._state import Pending

# What a Result field reads back as when the record holds null (or, in an older log, nothing).
_NULL_AS = {"fitness": WORST_FITNESS, "test_fitness": WORST_FITNESS, "seconds": 0.0}


def finite_or_none(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def none_to_nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def none_to_worst(x: float | None) -> float:
    return WORST_FITNESS if x is None else float(x)


def result_to_dict(result: Result) -> dict:
    """A JSON-safe dict (non-finite floats become None)."""
    return {k: finite_or_none(v) if isinstance(v, float) else v for k, v in asdict(result).items()}


def result_from_dict(data: dict) -> Result:
    """Inverse of ``result_to_dict``: a missing fitness is ``-inf``, other missing floats NaN.

    Fields that a record does not hold at all (logs written before they existed) take the
    ``Result`` defaults.
    """
    values = {}
    for f in fields(Result):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name == "steps":
            values[f.name] = int(value)
        elif f.name == "failure":
            values[f.name] = value
        else:
            values[f.name] = _NULL_AS.get(f.name, math.nan) if value is None else float(value)
    return Result(**values)


def individual_record(
    seq: int, pending: Pending, result: Result, worker: str | None, cache_hit: str | None, *, capacity: int
) -> dict:
    """The ``individuals.jsonl`` line of an individual (a cache hit took 0 seconds).

    ``capacity`` (the jobs the search kept in flight when it recorded this) lets a replay
    of the log breed as the run did, whatever checkpoint it starts from.
    """
    return {
        "seq": seq,
        "id": pending.id,
        "parent": pending.parent,
        "island": pending.island,
        "mutation": pending.mutation,
        "program": pending.program.to_text(),
        "length": len(pending.program.statements),
        "hash": pending.hash,
        "fingerprint": pending.fingerprint,
        "redundant_fraction": finite_or_none(pending.redundant_fraction),
        **result_to_dict(result),
        "seconds": result.seconds if cache_hit is None else 0.0,
        "worker": worker,
        "cache_hit": cache_hit,
        "capacity": capacity,
    }


def meta_validation_record(
    seq: int,
    pending: Pending,
    result: Result,
    worker: str | None,
    *,
    task: str,
    seeds: tuple[int, ...],
    individuals: int,
    evaluations: int,
    search_fitness: float,
    capacity: int,
) -> dict:
    """The ``meta_validation.jsonl`` line: the best so far re-evaluated on the larger task.

    It holds what a meta-overfitting plot (arXiv:2302.06675, section 2.3 and figure 3)
    needs: when (individuals recorded, evaluations so far), which program (the best's id
    and its search fitness), and its fitness, validation metric and held-out test metric
    on ``task``, each the mean over ``seeds``.
    """
    return {
        "seq": seq,
        "individual": pending.meta_of,
        "job": pending.id,
        "individuals": individuals,
        "evaluations": evaluations,
        "search_fitness": finite_or_none(search_fitness),
        "task": task,
        "seeds": list(seeds),
        "program": pending.program.to_text(),
        **result_to_dict(result),
        "worker": worker,
        "capacity": capacity,
    }


def record_summary(record: dict) -> str:
    """A short description of a log record, for error messages."""
    if "id" in record:
        return f"individual {record['id']} (hash {record['hash']}, cache {record['cache_hit']})"
    return f"meta-validation of {record['individual']}"
