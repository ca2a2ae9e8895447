"""Do two programs compute the same updates? A numeric probe over several steps.

Every rewrite of ``dsl.simplify`` is accepted only when this probe shows equal updates,
whatever the rule that proposed it. The probe is broader than the fingerprint's
(``dsl._fingerprint``): ``SEQUENCES`` independent runs of ``STEPS`` steps from zero
state, in float64 NumPy with the DSL's own kernels (so the 1e-8 that divisions add
to their denominators is part of what is compared). Per run and coordinate:

* gradients and weights have random signs and magnitudes spread log-uniformly over
  four decades (``MAGNITUDES``), so a rule that holds only for positive, or only for
  large or only for small values (``sqrt(x * x) = x``, ``sin(x) = x``) is caught;
* each coordinate's gradient sequence keeps its moving averages (decays 0.5, 0.9, 0.99)
  away from zero, so a normalization such as ``m / sqrt(m * m)`` is not compared right
  where the DSL's epsilon makes it differ from ``sign(m)``; the smallest such average
  is about 5e-5, where the epsilon changes ``m / |m|`` by 2e-4 relative;
* ``lr`` takes a different value at each step (down to 0.01) and ``step`` counts 1, 2, ...

Fresh weights and gradients are drawn for every step (the same for both programs), so
a difference at one step does not feed the inputs of the next; state carries over.
The updates are compared, and the new values of the state slots both programs have:
``sign(m)`` hides a change of ``m`` that would matter where ``m`` crosses zero.
``STEPS`` = 6 lets a value pass through a chain of all 4 state slots and reach an update.
"""

from __future__ import annotations

import functools

import numpy as np

from ._ops import OPS
from ._program import Program

SEQUENCES = 3
STEPS = 6
PROBE_SHAPES = ((5,), (2, 3), (4,))
PROBE_SEED = 2302_06675
PROBE_LR = (1.0, 0.7, 0.4, 0.2, 0.05, 0.01)
MAGNITUDES = (1e-2, 1e2)
EMA_DECAYS = (0.5, 0.9, 0.99)
RELATIVE_FLOOR = 1e-3
"""Entries smaller than this fraction of the largest entry of the same value at the same
step are compared at that scale (``sign(m) + w`` can cancel to nearly zero, and a relative
error there means nothing)."""

Inputs = tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], np.ndarray, np.ndarray]
Trajectory = list[dict[str, np.ndarray]]
"""Per step: ``"update"`` and ``"state <name>"`` for each slot, flattened."""


@functools.cache
def probe_inputs() -> tuple[tuple[Inputs, ...], ...]:
    """Per run, per step: weights, gradients (tuples of arrays), ``lr`` and ``step``."""
    runs = []
    size = sum(int(np.prod(shape)) for shape in PROBE_SHAPES)
    for run in range(SEQUENCES):
        rng = np.random.default_rng(PROBE_SEED + run)
        low, high = np.log10(MAGNITUDES)
        gradient_scale = 10.0 ** rng.uniform(low, high, size)
        gradients = _gradients_far_from_zero(rng, size) * gradient_scale
        weights = 10.0 ** rng.uniform(low, high, (STEPS, size)) * rng.choice([-1.0, 1.0], (STEPS, size))
        runs.append(
            tuple(
                (
                    _split(weights[t]),
                    _split(gradients[t]),
                    np.asarray(PROBE_LR[t], np.float64),
                    np.asarray(float(t + 1), np.float64),
                )
                for t in range(STEPS)
            )
        )
    return tuple(runs)


def _split(flat: np.ndarray) -> tuple[np.ndarray, ...]:
    leaves, start = [], 0
    for shape in PROBE_SHAPES:
        count = int(np.prod(shape))
        leaves.append(flat[start : start + count].reshape(shape).copy())
        start += count
    return tuple(leaves)


def _gradients_far_from_zero(rng: np.random.Generator, size: int) -> np.ndarray:
    """``[STEPS, size]`` gradients (magnitudes 1 to 4) whose moving averages stay away from 0.

    Rejection sampling, vectorized over a batch of candidate sequences.
    """
    accepted = []
    while sum(len(a) for a in accepted) < size:
        batch = rng.uniform(1.0, 4.0, (STEPS, 4096)) * rng.choice([-1.0, 1.0], (STEPS, 4096))
        keep = np.ones(batch.shape[1], bool)
        for decay in EMA_DECAYS:
            average = np.zeros(batch.shape[1])
            for value in batch:
                average = decay * average + (1.0 - decay) * value
                keep &= np.abs(average) >= 0.5 * (1.0 - decay)
        accepted.append(batch[:, keep].T)
    return np.concatenate(accepted)[:size].T


def trajectory(program: Program) -> list[Trajectory]:
    """What ``program`` computes on every probe run: per run, per step, the update and
    each state slot's new value (``{"update": leaves, slot name: leaves}``)."""
    kernels = [(s.target, OPS[s.op].numpy_fn(), s.args) for s in program.statements]
    runs = []
    with np.errstate(all="ignore"):
        for inputs in probe_inputs():
            state = {name: tuple(np.zeros(shape) for shape in PROBE_SHAPES) for name in program.state}
            steps = []
            for w, g, lr, step in inputs:
                env = {"w": w, "g": g, "lr": lr, "step": step, **state}
                for target, kernel, args in kernels:
                    env[target] = kernel(*(env[a] if type(a) is str else a for a in args))
                state = {name: env[name] for name in program.state}
                outputs = {"update": env[program.update], **{f"state {k}": v for k, v in state.items()}}
                steps.append({key: _flat(value) for key, value in outputs.items()})
            runs.append(steps)
    return runs


def _flat(tree) -> np.ndarray:
    return np.concatenate(
        [
            np.broadcast_to(np.asarray(leaf, np.float64), shape).ravel()
            for leaf, shape in zip(tree, PROBE_SHAPES, strict=True)
        ]
    )


def difference(first: list[Trajectory], second: list[Trajectory], state: bool = True) -> float:
    """The largest relative difference between two programs' probe updates (and states).

    Compared: the updates, and with ``state`` the new values of the state slots that
    both programs have (by name). Per entry ``|a - b| / max(|a|, |b|, RELATIVE_FLOOR * s)``,
    ``s`` the largest finite entry of that value at that step; NaN against NaN and an
    infinity against the same infinity count as equal, any other non-finite mismatch as
    ``inf``. 0.0 means identical.
    """
    worst = 0.0
    for run_a, run_b in zip(first, second, strict=True):
        for step_a, step_b in zip(run_a, run_b, strict=True):
            keys = [key for key in step_a if key in step_b and (state or key == "update")]
            for key in keys:
                worst = max(worst, _relative_difference(step_a[key], step_b[key]))
    return worst


def _relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    finite = np.isfinite(a) & np.isfinite(b)
    same_non_finite = (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b))
    if not np.all(finite | same_non_finite):
        return float("inf")
    a, b = a[finite], b[finite]
    if a.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))))
    denominator = np.maximum(np.maximum(np.abs(a), np.abs(b)), max(RELATIVE_FLOOR * scale, 1e-300))
    return float(np.max(np.abs(a - b) / denominator))
