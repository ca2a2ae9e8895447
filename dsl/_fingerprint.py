"""Numeric fingerprint: the updates of a few steps on a fixed probe, rounded and hashed.

The AutoML-Zero idea: programs that compute the same function collide even when
their structure differs (``m / sqrt(m * m)`` and ``sign(m)``, two ways of writing one
interpolation). The search tries the functional hash first and the fingerprint second.

The probe is fixed (seeded NumPy, float64): three parameter arrays of shapes ``(4,)``,
``(2, 3)`` and ``(3,)``; at each of ``STEPS`` steps fresh weights (magnitudes in
[0.5, 2]) and gradients (magnitudes in [1, 4]), random signs, and a decaying schedule
value ``lr`` (a fixed value per step rather than one constant, so ``lr * lr`` and
``lr * c`` differ), ``step`` = 1, 2, .... Gradients are drawn so that their moving
averages with decays 0.5 and 0.9 stay well away from zero: there the 1e-8 the DSL adds
to denominators changes results by at most 2e-7 relative, well under the rounding.

Two passes are hashed. The first runs the probe as drawn. The second runs it at
training's scale, weights times ``TRAINING_SCALE[0]`` and gradients times
``TRAINING_SCALE[1]``: a program whose behaviour turns on ``|g| < 1`` (``arctanh(g * g)``
is infinite on the first pass and a small number in training) must not share a
fingerprint with one that ignores the gradient. Seed 20 of the sixth rediscovery method
gave 857 children, pure weight decay among them, the fitness of a Lion-like program that
way (docs/rediscovery_analysis.md). The second pass's values are closer to the 1e-8
(up to 2e-5 relative), so it is rounded more coarsely: it tells behaviours apart, the
first pass tells constants apart.

Only the updates are hashed (state matters only through them); ``STEPS`` = 5 lets a
value pass through a chain of all 4 state slots and still reach an update. Values are
rounded to ``SIGNIFICANT_BITS`` (16, about 4.8 decimal digits) relative to their
magnitude on the first pass and ``TRAINING_SCALE_BITS`` on the second; NaN, +inf and
-inf are fixed tokens, and -0.0 is 0.0.

Why 16 bits: a pair that differs only through the 1e-8 in a denominator differs by
about 1e-8/|x| relative (up to 2e-7 on this probe), and misses the collision when a
value straddles a rounding boundary. Over 100 random lr scalings of ``sign(m)`` against
``m / sqrt(m * m)``, 67 collided at 20 bits, 92 at 18, 98 at 16 and all at 14. Coarser
rounding only merges programs whose updates agree to ~1e-5 relative on every probe
value for 5 steps (constants within ~1e-5 of each other), which train alike. With the
second pass added, the same 100 pairs collide 97 times at 8 bits on it, 93 at 10, 90 at
12 and 7 at 16; 8 bits (0.4% relative) is fine enough for it, because constants are the
first pass's to tell apart.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

from ._analysis import Analysis, analyze
from ._ops import OPS
from ._program import Program

STEPS = 5
SIGNIFICANT_BITS = 16
PROBE_SHAPES = ((4,), (2, 3), (3,))
PROBE_SEED = 20230213
PROBE_LR = (0.9, 0.75, 0.6, 0.45, 0.3)
TRAINING_SCALE = (0.1, 0.01)
"""The second pass's factors on the probe's weights and gradients."""
TRAINING_SCALE_BITS = 8


@functools.cache
def probe() -> tuple[
    list[tuple[np.ndarray, ...]], list[tuple[np.ndarray, ...]], list[np.ndarray], list[np.ndarray]
]:
    """The fixed probe: per step, weights, gradients, ``lr`` and ``step``."""
    rng = np.random.default_rng(PROBE_SEED)
    size = sum(int(np.prod(shape)) for shape in PROBE_SHAPES)
    gradients = _gradients_far_from_cancelling(rng, size)
    weights = rng.uniform(0.5, 2.0, (STEPS, size)) * rng.choice([-1.0, 1.0], (STEPS, size))
    return (
        [split_leaves(row, PROBE_SHAPES) for row in weights],
        [split_leaves(row, PROBE_SHAPES) for row in gradients],
        [np.asarray(lr, np.float64) for lr in PROBE_LR],
        [np.asarray(float(t), np.float64) for t in range(1, STEPS + 1)],
    )


@functools.cache
def _probe_at(training_scale: bool):
    """``probe()``, or its second pass's copy with weights and gradients times ``TRAINING_SCALE``."""
    weights, gradients, lrs, steps = probe()
    if not training_scale:
        return weights, gradients, lrs, steps
    w_scale, g_scale = TRAINING_SCALE
    return (
        [tuple(w_scale * leaf for leaf in row) for row in weights],
        [tuple(g_scale * leaf for leaf in row) for row in gradients],
        lrs,
        steps,
    )


def split_leaves(flat: np.ndarray, shapes) -> tuple[np.ndarray, ...]:
    """``flat`` cut, in order, into fresh arrays of the given ``shapes`` (a probe's parameter tree)."""
    leaves, start = [], 0
    for shape in shapes:
        count = int(np.prod(shape))
        leaves.append(flat[start : start + count].reshape(shape).copy())
        start += count
    return tuple(leaves)


def _gradients_far_from_cancelling(rng: np.random.Generator, size: int) -> np.ndarray:
    """Per coordinate, a gradient sequence whose moving averages never near zero."""
    columns = []
    while len(columns) < size:
        sequence = rng.uniform(1.0, 4.0, STEPS) * rng.choice([-1.0, 1.0], STEPS)
        if all(_min_abs_average(sequence, decay) >= 0.5 * (1.0 - decay) for decay in (0.5, 0.9)):
            columns.append(sequence)
    return np.stack(columns, axis=1)


def _min_abs_average(sequence: np.ndarray, decay: float) -> float:
    average, smallest = 0.0, np.inf
    for value in sequence:
        average = decay * average + (1.0 - decay) * value
        smallest = min(smallest, abs(average))
    return smallest


def _round_relative(x: np.ndarray, bits: int) -> np.ndarray:
    mantissa, exponent = np.frexp(x)
    return np.ldexp(np.round(mantissa * 2.0**bits), exponent - bits) + 0.0


def flat_probe_updates(
    program: Program | str | Analysis, lr_scale: float = 1.0, *, training_scale: bool = False
) -> np.ndarray:
    """``probe_updates`` as one flat array: every step's arrays, raveled, side by side."""
    updates = probe_updates(program, lr_scale, training_scale=training_scale)
    return np.concatenate([leaf.ravel() for update in updates for leaf in update])


def probe_updates(
    program: Program | str | Analysis, lr_scale: float = 1.0, *, training_scale: bool = False
) -> list[tuple[np.ndarray, ...]]:
    """The pruned program's updates on the probe, one tuple of arrays per step.

    Args:
      program: a program, its text, or its ``Analysis`` (so a caller that has already
        analyzed it, as the search's cache does, does not analyze it again).
      lr_scale: multiplies the probe's ``lr`` at every step.
      training_scale: run the second pass: weights and gradients times ``TRAINING_SCALE``.

    Raises:
      ProgramError: if the program is not valid.
    """
    analysis = program if isinstance(program, Analysis) else analyze(program)
    pruned = analysis.pruned
    weights, gradients, lrs, steps = _probe_at(training_scale)
    state = {name: tuple(np.zeros(shape) for shape in PROBE_SHAPES) for name in pruned.state}
    # Constants as NumPy float64: Python float arithmetic raises where NumPy gives inf or
    # NaN (``divide(1.0, -1e-08)`` divides 1.0 by 0.0).
    kernels = [
        (s.target, OPS[s.op].numpy_fn(), tuple(a if type(a) is str else np.float64(a) for a in s.args))
        for s in pruned.statements
    ]
    updates = []
    with np.errstate(all="ignore"):
        for t in range(STEPS):
            env = {"w": weights[t], "g": gradients[t], "lr": lrs[t] * lr_scale, "step": steps[t], **state}
            for target, kernel, args in kernels:
                env[target] = kernel(*(env[a] if type(a) is str else a for a in args))
            updates.append(
                tuple(
                    np.broadcast_to(np.asarray(leaf, np.float64), shape)
                    for leaf, shape in zip(env[pruned.update], PROBE_SHAPES, strict=True)
                )
            )
            state = {name: env[name] for name in pruned.state}
    return updates


def fingerprint(program: Program | str | Analysis, *, finite_only: bool = False) -> str | None:
    """Hex digest of the rounded updates of ``program`` (or of an ``Analysis``) on both probe passes.

    Args:
      program: a program, its text, or its ``Analysis``.
      finite_only: return None when any probe update is NaN or infinite. A fitness cache
        must ask for this: NaN and inf are tokens without a magnitude, so every program
        whose probe updates are non-finite at the same places shares one fingerprint,
        whatever it computes elsewhere (``m * log(v)`` from zero state is NaN on the probe
        and fails training; another NaN-on-the-probe program may train well).

    Raises:
      ProgramError: if the program is not valid.
    """
    analysis = program if isinstance(program, Analysis) else analyze(program)
    passes = (
        (flat_probe_updates(analysis), SIGNIFICANT_BITS),
        (flat_probe_updates(analysis, training_scale=True), TRAINING_SCALE_BITS),
    )
    if finite_only and not all(np.isfinite(flat).all() for flat, _ in passes):
        return None
    digest = hashlib.blake2b(digest_size=16)
    for flat, bits in passes:
        finite = np.isfinite(flat)
        with np.errstate(all="ignore"):
            rounded = np.where(finite, _round_relative(np.where(finite, flat, 0.0), bits), 0.0)
        tokens = np.where(finite, 0, np.where(np.isnan(flat), 1, np.where(flat > 0, 2, 3))).astype(np.int8)
        digest.update(rounded.astype("<f8").tobytes())
        digest.update(tokens.tobytes())
    return digest.hexdigest()
