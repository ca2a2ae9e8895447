"""The fitness cache: a program's functional hash -> result, then its numeric fingerprint -> result.

Only misses are trained (PAPER.md section 4). The hash comes from abstract execution
(renamed variables and dead statements do not change it); the fingerprint is the
update on a fixed probe input, so algebraically equal programs share it too. Lookups go
hash first, then fingerprint; the fingerprint is only computed on a hash miss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from dsl import Analysis, Program, analyze
from proxy_tasks._task import WORST_FITNESS, Result


@dataclass(frozen=True)
class Facts:
    """What the search knows about a program before training it.

    Attributes:
      valid: whether it type-checks (and passes abstract execution).
      error: why not, if invalid.
      hash: the functional hash (hex); None if invalid.
      redundant_fraction: the share of statements that do not reach the outputs.
      analysis: the ``dsl.Analysis`` behind these facts (valid programs only), reused
        for the fingerprint so a cache miss does not analyze the child twice.
    """

    valid: bool
    error: str | None
    hash: str | None
    redundant_fraction: float
    analysis: Analysis | None = field(default=None, compare=False, repr=False)


def analyze_program(program: Program) -> Facts:
    """Validity, functional hash and redundancy of ``program`` (``dsl.analyze``)."""
    analysis = analyze(program)
    if not analysis.valid:
        return Facts(False, str(analysis.error), None, math.nan)
    return Facts(True, None, analysis.hash, float(analysis.redundant_fraction), analysis)


def result_to_dict(result: Result) -> dict:
    """A JSON-safe dict (non-finite floats become None)."""
    return {
        k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in asdict(result).items()
    }


def result_from_dict(data: dict) -> Result:
    """Inverse of ``result_to_dict``: a missing fitness is ``-inf``, other missing floats NaN."""
    fitness = data["fitness"]
    return Result(
        fitness=WORST_FITNESS if fitness is None else float(fitness),
        metric=math.nan if data["metric"] is None else float(data["metric"]),
        train_loss=math.nan if data["train_loss"] is None else float(data["train_loss"]),
        steps=int(data["steps"]),
        failure=data["failure"],
        seconds=0.0 if data["seconds"] is None else float(data["seconds"]),
    )


class FitnessCache:
    """Results of trained programs, keyed by functional hash and by fingerprint."""

    def __init__(self):
        self.by_hash: dict[str, Result] = {}
        self.by_fingerprint: dict[str, Result] = {}

    def lookup(
        self, program_hash: str, fingerprint: Callable[[], str | None]
    ) -> tuple[Result | None, str | None, str | None]:
        """Find a known result.

        Args:
          program_hash: the functional hash.
          fingerprint: computes the fingerprint (called only on a hash miss).

        Returns:
          (result or None, ``"hash"``/``"fingerprint"``/None for where it hit, the
          fingerprint if it was computed).
        """
        if program_hash in self.by_hash:
            return self.by_hash[program_hash], "hash", None
        probe = fingerprint()
        if probe is not None and probe in self.by_fingerprint:
            result = self.by_fingerprint[probe]
            self.by_hash[program_hash] = result
            return result, "fingerprint", probe
        return None, None, probe

    def store(self, program_hash: str, fingerprint: str | None, result: Result) -> None:
        self.by_hash[program_hash] = result
        if fingerprint is not None:
            self.by_fingerprint.setdefault(fingerprint, result)

    def __len__(self) -> int:
        return len(self.by_hash)

    def to_dict(self) -> dict:
        """JSON-safe form; results shared between both maps are stored once."""
        ids: dict[int, int] = {}
        results: list[dict] = []

        def index(result: Result) -> int:
            key = id(result)
            if key not in ids:
                ids[key] = len(results)
                results.append(result_to_dict(result))
            return ids[key]

        return {
            "results": results,
            "by_hash": {h: index(r) for h, r in self.by_hash.items()},
            "by_fingerprint": {f: index(r) for f, r in self.by_fingerprint.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> FitnessCache:
        cache = cls()
        results = [result_from_dict(r) for r in data["results"]]
        cache.by_hash = {h: results[i] for h, i in data["by_hash"].items()}
        cache.by_fingerprint = {f: results[i] for f, i in data["by_fingerprint"].items()}
        return cache
