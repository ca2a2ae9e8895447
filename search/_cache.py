"""The fitness cache: a program's functional hash -> result, then its numeric fingerprint -> result.

Only misses are trained (arXiv:2302.06675, section 2.2). The hash comes from abstract execution
(renamed variables and dead statements do not change it); the fingerprint is the
update on a fixed probe input, so algebraically equal programs share it too. Lookups go
hash first, then fingerprint; the fingerprint is only computed on a hash miss, and a program
whose probe updates are not all finite has none (NaN and inf carry no magnitude, so they would
merge unrelated programs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dsl import Analysis, Program, analyze
from proxy_tasks import Result

from ._records import result_from_dict


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

    @classmethod
    def from_log(cls, records: Iterable[dict]) -> FitnessCache:
        """The cache a search had after recording ``records`` (``individuals.jsonl`` lines, in order).

        A trained record stores its result; a fingerprint hit is looked up again, which
        remembers it by hash, as it did during the search; a hash hit changed nothing.
        """
        cache = cls()
        for record in records:
            if record["cache_hit"] is None:
                cache.store(record["hash"], record["fingerprint"], result_from_dict(record))
            elif record["cache_hit"] == "fingerprint":
                cache.lookup(record["hash"], lambda fingerprint=record["fingerprint"]: fingerprint)
        return cache
