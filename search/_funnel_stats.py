"""The funnel's statistics: mean and standard error over seeds, the paired comparison, promotion.

Every program of a stage, and every baseline, is trained on the same seeds, so a program
is compared with the reference baseline seed by seed. With per-seed test values
``c_s`` (candidate) and ``r_s`` (reference), s = 1..n:

* ``d_s = c_s - r_s``; the difference is ``mean(d)``;
* its standard error is the standard error of that mean over seeds,
  ``stdev(d) / sqrt(n)`` with the sample standard deviation (n - 1 in the denominator):
  the *paired* standard error, which removes the share of seed-to-seed noise both
  programs have in common (same initial weights, same minibatches);
* a candidate is promoted when ``mean(d) > k * SE(d)`` (k = 2 by default), and at most
  the top M of those (by ``mean(d)``, ties by order of entry) go on.

A failed seed (NaN, -inf: a diverged run) on either side makes the comparison undefined
(NaN): such a program is never promoted. ``mean_and_se`` of values with a failure has mean
``-inf`` (it ranks last) and SE NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    """Mean and standard error of the mean over ``n`` seeds (``failed`` seeds were non-finite)."""

    mean: float
    se: float
    n: int
    failed: int = 0


@dataclass(frozen=True)
class Comparison:
    """A paired comparison with the reference (see the module docstring).

    Attributes:
      difference: mean over seeds of candidate minus reference (NaN if any value failed).
      se: standard error of that mean (NaN if undefined).
      z: ``difference / se``: how many standard errors (+-inf when ``se`` is 0).
      beats: ``difference > threshold * se``.
    """

    difference: float
    se: float
    z: float
    beats: bool


def mean_and_se(values: Sequence[float]) -> Estimate:
    """Mean and standard error (sample standard deviation / sqrt(n)) of ``values``."""
    n = len(values)
    failed = sum(1 for v in values if not math.isfinite(v))
    if failed or n == 0:
        return Estimate(-math.inf, math.nan, n, failed)
    mean = math.fsum(values) / n
    if n < 2:
        return Estimate(mean, math.nan, n)
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return Estimate(mean, math.sqrt(variance / n), n)


def paired_comparison(
    candidate: Sequence[float], reference: Sequence[float], threshold: float = 2.0
) -> Comparison:
    """Compare per-seed values of a candidate with the reference's on the same seeds.

    Raises:
      ValueError: if the two sequences differ in length (they must be the same seeds).
    """
    if len(candidate) != len(reference):
        raise ValueError(f"{len(candidate)} candidate values against {len(reference)} reference values")
    differences = [c - r for c, r in zip(candidate, reference, strict=True)]
    if not all(math.isfinite(d) for d in differences) or len(differences) < 2:
        return Comparison(math.nan, math.nan, math.nan, False)
    estimate = mean_and_se(differences)
    difference, se = estimate.mean, estimate.se
    if se > 0:
        z = difference / se
    else:
        z = math.copysign(math.inf, difference) if difference != 0 else 0.0
    return Comparison(difference, se, z, difference > threshold * se)


def promote(comparisons: Sequence[Comparison], top: int) -> list[int]:
    """Indices of the promoted comparisons: those that beat the reference, the ``top`` best by difference.

    Returns them best first; equal differences keep their order in ``comparisons``.
    """
    winners = [i for i, c in enumerate(comparisons) if c.beats]
    winners.sort(key=lambda i: -comparisons[i].difference)  # stable: ties keep their order
    return winners[:top]
