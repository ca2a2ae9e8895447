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

from ._fingerprint import split_leaves
from ._ops import OPS, _leafwise
from ._program import Program

SEQUENCES = 3
STEPS = 6
PROBE_SHAPES = ((5,), (2, 3), (4,))
PROBE_SEED = 2302_06675
PROBE_LR = (1.0, 0.7, 0.4, 0.2, 0.05, 0.01)
MAGNITUDES = (1e-2, 1e2)
EMA_DECAYS = (0.5, 0.9, 0.99)
RELATIVE_FLOOR = 1e-6
"""Entries whose magnitude is below this fraction of the largest at the same step (exact
zeros, say) are compared at that scale."""

Inputs = tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], np.ndarray, np.ndarray]
Trajectory = list[dict[str, tuple[np.ndarray, np.ndarray]]]
"""Per step: ``"update"`` and ``"state <name>"`` for each slot: flat values and magnitudes."""


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
                    split_leaves(weights[t], PROBE_SHAPES),
                    split_leaves(gradients[t], PROBE_SHAPES),
                    np.asarray(PROBE_LR[t], np.float64),
                    np.asarray(float(t + 1), np.float64),
                )
                for t in range(STEPS)
            )
        )
    return tuple(runs)


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


def trajectory(program: Program, every_value: bool = False) -> list[Trajectory]:
    """What ``program`` computes on every probe run: per run, per step, the update and
    each state slot's new value, each with its magnitude (see ``_magnitude``); with
    ``every_value`` also each statement's value (``"value <index>"``), to compare two
    programs of the same structure where an output (``sign(m)``) hides a change."""
    kernels = [(s.target, s.op, OPS[s.op].numpy_fn(), s.args) for s in program.statements]
    runs = []
    with np.errstate(all="ignore"):
        for inputs in probe_inputs():
            zeros = tuple(np.zeros(shape) for shape in PROBE_SHAPES)
            state = {name: (zeros, zeros) for name in program.state}
            steps = []
            for w, g, lr, step in inputs:
                env = {"w": w, "g": g, "lr": lr, "step": step}
                size = {name: _ABS(value) for name, value in env.items()}
                for name, (value, magnitude) in state.items():
                    env[name], size[name] = value, magnitude
                outputs = {}
                for index, (target, op, kernel, args) in enumerate(kernels):
                    values = [env[a] if type(a) is str else a for a in args]
                    env[target] = kernel(*values)
                    sizes = [size[a] if type(a) is str else abs(a) for a in args]
                    size[target] = _magnitude(op, env[target], values, sizes)
                    if every_value:
                        outputs[f"value {index}"] = (env[target], size[target])
                state = {name: (env[name], size[name]) for name in program.state}
                outputs["update"] = (env[program.update], size[program.update])
                outputs.update({f"state {name}": pair for name, pair in state.items()})
                steps.append({key: (_flat(v), _flat(m)) for key, (v, m) in outputs.items()})
            runs.append(steps)
    return runs


_ABS = OPS["abs"].numpy_fn()
_ADD = OPS["add"].numpy_fn()
_MULTIPLY = OPS["multiply"].numpy_fn()
_DIVIDE = OPS["divide"].numpy_fn()
_FMAX = _leafwise(np.fmax)


def _magnitude(op: str, value, args: list, sizes: list):
    """How large the terms that make up ``value`` are, entry by entry.

    ``|a| + |b|`` for ``a + b`` and ``a - b``, ``|1 - t| |x| + |t| |y|`` for
    ``interp(x, y, t)``, the product and quotient of the operands' magnitudes for ``*``
    and ``/``, ``|value|`` for every other function; never below ``|value|``. Float
    arithmetic is accurate relative to this, not to a result that cancels to nearly zero
    (``sign(m) + 0.5 * w`` at ``w = -2``): differences are measured against it.
    """
    if op in ("add", "subtract"):
        size = _ADD(sizes[0], sizes[1])
    elif op == "interp":
        weight = args[2]
        size = _ADD(
            _MULTIPLY(_ABS(_ADD(1.0, _MULTIPLY(-1.0, weight))), sizes[0]), _MULTIPLY(_ABS(weight), sizes[1])
        )
    elif op == "multiply":
        size = _MULTIPLY(sizes[0], sizes[1])
    elif op == "divide":
        size = _DIVIDE(sizes[0], _ABS(args[1]))
    elif op == "negative":
        size = sizes[0]
    else:
        return _ABS(value)
    return _FMAX(size, _ABS(value))


def _flat(tree) -> np.ndarray:
    if not isinstance(tree, tuple):  # a scalar: the probe only flattens trees
        tree = tuple(tree for _ in PROBE_SHAPES)
    return np.concatenate(
        [
            np.broadcast_to(np.asarray(leaf, np.float64), shape).ravel()
            for leaf, shape in zip(tree, PROBE_SHAPES, strict=True)
        ]
    )


def difference(first: list[Trajectory], second: list[Trajectory], state: bool = True) -> float:
    """The largest relative difference between two programs' probe updates (and states).

    Compared: the updates, with ``state`` the new values of the state slots that both
    programs have (by name), and the statements' values if both recorded them. Per entry ``|a - b| / max(A, B, RELATIVE_FLOOR * s)``,
    ``A`` and ``B`` the magnitudes of the terms that make up ``a`` and ``b`` (at least
    ``|a|`` and ``|b|``; see ``_magnitude``), ``s`` the largest of them at that step; NaN against NaN and an
    infinity against the same infinity count as equal, any other non-finite mismatch as
    ``inf``. 0.0 means identical.
    """
    worst = 0.0
    for run_a, run_b in zip(first, second, strict=True):
        for step_a, step_b in zip(run_a, run_b, strict=True):
            keys = [key for key in step_a if key in step_b and (state or not key.startswith("state "))]
            for key in keys:
                worst = max(worst, _relative_difference(step_a[key], step_b[key]))
    return worst


def _relative_difference(
    first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray]
) -> float:
    (a, size_a), (b, size_b) = first, second
    finite = np.isfinite(a) & np.isfinite(b)
    same_non_finite = (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b))
    if not np.all(finite | same_non_finite):
        return float("inf")
    a, b = a[finite], b[finite]
    if a.size == 0:
        return 0.0
    size = np.fmax(np.fmax(size_a[finite], size_b[finite]), np.maximum(np.abs(a), np.abs(b)))
    scale = float(np.max(np.where(np.isfinite(size), size, 0.0)))
    denominator = np.fmax(size, max(RELATIVE_FLOOR * scale, 1e-300))
    return float(np.max(np.abs(a - b) / denominator))
