"""The closest known optimizer: fit every library optimizer's constants to a program's updates.

A program is run on a fixed probe: ``PROBE_SEEDS`` trajectories of ``PROBE_STEPS`` steps
over one parameter tree of five arrays (a matrix, vectors, a 3-d array and a 0-d scalar),
with gradients that are temporally correlated (a persistent per-coordinate mean plus AR(1)
noise, so a momentum's memory matters), a random scale per array and trajectory (1e-3 to
10) and a random per-step factor (so second-moment estimates rise and fall, which tells
AMSGrad's running maximum from Adam). The weights follow the program's own updates, and
every candidate is run on the same weights and gradients (its state evolves from them).

Each library optimizer is a candidate whose constants have names (``CONSTANTS``): the
learning rate and weight decay enter the update linearly (``lr * (direction + wd * w)``)
and are solved for exactly by weighted least squares; the betas (at most two) are
searched on a grid in ``log10(1 - beta)`` that moves with the best point and shrinks.
Sign-based candidates have a staircase loss in the betas (a beta matters only where it
flips a sign; every sign right is a narrow well on a plateau): they are searched first
with a soft sign ``x / (|x| + s * mean|x|)`` (s = 0.1, then 0.01) to find the basin, then
with the exact sign on a dense grid around it. Library programs
that differ only in their constants (``ablation_0.9``, ``ablation_0.99``) are fitted once
and named after the one whose constants are nearest.

Residuals are weighted per trajectory and array by the program's RMS update there, so
every array counts alike whatever its gradient scale. Candidates that fit equally well
(relative error within ``TIE_TOLERANCE``) are ranked by their number of constants: the
simplest explanation wins (signum before Lion with beta1 = beta2 and no weight decay).
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import library
from ._analysis import analyze
from ._ops import OPS
from ._program import Program, parse

# ----------------------------------------------------------------------------- candidates

CONSTANTS: dict[str, dict[str, float]] = {
    "sgd": {"learning_rate": 0.01},
    "momentum": {"beta": 0.9, "learning_rate": 0.01},
    "nesterov": {"beta": 0.9, "learning_rate": 0.01},
    "adam": {"beta1": 0.9, "beta2": 0.999, "learning_rate": 0.001},
    "adamw": {"beta1": 0.9, "beta2": 0.999, "weight_decay": 0.0001, "learning_rate": 0.001},
    "adamw_paper": {"beta1": 0.9, "beta2": 0.999, "weight_decay": 0.01, "learning_rate": 0.001},
    "nadam": {"beta1": 0.9, "beta2": 0.999, "learning_rate": 0.001},
    "amsgrad": {"beta1": 0.9, "beta2": 0.999, "learning_rate": 0.001},
    "adabelief": {"beta1": 0.9, "beta2": 0.999, "learning_rate": 0.001},
    "radam": {"beta1": 0.9, "beta2": 0.999, "learning_rate": 0.001},
    "lion": {"beta1": 0.9, "beta2": 0.99, "weight_decay": 0.01, "learning_rate": 0.0001},
    "lion_smooth": {"beta1": 0.9, "beta2": 0.99, "weight_decay": 0.01, "learning_rate": 0.0001},
    "lion_refined": {"beta1": 0.9, "beta2": 0.99, "weight_decay": 0.01, "learning_rate": 0.0001},
    "signsgd": {"learning_rate": 0.0001},
    "signum": {"beta": 0.9, "learning_rate": 0.0001},
    "ablation_0.9": {"beta": 0.9, "weight_decay": 0.01, "learning_rate": 0.0001},
    "ablation_0.99": {"beta": 0.99, "weight_decay": 0.01, "learning_rate": 0.0001},
    "powersign": {"beta": 0.9, "learning_rate": 0.01},
    "addsign": {"beta": 0.9, "learning_rate": 0.01},
}
"""Each library optimizer's named constants and their values in its program file: every
float argument equal to a named value is that constant (a test checks each is present)."""


def _rho_infinity(constants: dict) -> object:
    return 2.0 / (1.0 - constants["beta2"]) - 1.0


DERIVED: dict[str, dict[float, Callable[[dict], object]]] = {
    "radam": {
        1999.0: _rho_infinity,
        3984015.0: lambda c: (_rho_infinity(c) - 4.0) * (_rho_infinity(c) - 2.0),
    },
}
"""Constants computed from named ones: RAdam's rho_inf = 2 / (1 - beta2) - 1 and its
normaliser (rho_inf - 4)(rho_inf - 2)."""

LION_FAMILY = ("lion", "lion_smooth", "lion_refined", "ablation_0.9", "ablation_0.99", "signum")
"""Candidates whose update is sign (or tanh, or clip to [-1, 1]) of an interpolation of the
gradient and one momentum slot that is itself an interpolation of the gradient."""

LINEAR = ("learning_rate", "weight_decay")
LION_SIGN_AGREEMENT = 0.95
LINEAR_MOMENTUM = ("sgd", "momentum", "nesterov")
"""With ``LINEAR_LION``, the linear references for a Lion-family fit's gradient-odd part."""
LION_MAX_ERROR = 0.3
"""The largest relative update error (and gradient-odd-part error) of a Lion-family fit.
A sign update fitted with the right magnitudes has an error of about 2 * sqrt(share of
flipped signs), so 0.3 allows ~2% flipped signs: the fit of a two-beta sign optimizer can
miss the narrow well of exact signs by a little (Lion with betas 0.85 and 0.98 is fitted
at 0.13, 0.4% of its signs flipped). Library members fit at ~1e-7 or better; a program
that ignores the gradient (``cos(0.01 * w)``) fits every candidate at 0.52 or worse."""
SCREEN_ROUNDING_MARGIN = 1e-3
"""Slack of ``screen_lion_family``'s bound: the float32 rounding of a sign fit's odd part."""
LION_BETA_GAP = 0.04
LION_LINEAR_MARGIN = 2.0
"""A Lion-family fit's gradient-odd part must fit at least this many times better than the
best linear momentum's: tanh or clip of a small interpolation is nearly linear, and a
program that is a momentum with a mild gradient normalization (found by a rediscovery
search: ``m / sqrt(0.951 + 0.094 g^2)``, lion_refined 0.101 against linear 0.125) is not
the sign of one. Measured ratios: tanh(0.3 c) 3.3, clip(3 c) 6.6, tanh(3 c) 7.1, sign
above 1e8."""
LION_MEMORY_MARGIN = 2.0
MEMORYLESS_SIGN = ("signsgd",)
"""Sign descent without momentum (``sign(g)``) must fit a Lion-family program's update at
least ``LION_MEMORY_MARGIN`` times worse than its Lion-family fit: the momentum slot must
matter. A rediscovery search's ``(0.69 g + 0.31 v) / |g|`` (v an average of g^2, so nearly
``sign(g)``) was fitted as Lion with beta2 ~1 at 0.136, against sign descent's 0.147."""
SLOT_MAX_ERROR = 0.05
"""The largest relative error of the live slot's new value fitted as ``a * g + b * slot``
(``a > 0``, ``0 <= b < 1``: up to a constant factor, an interpolation of the gradient and
the slot). An exact interpolation fits at float32 rounding (~1e-7); a rediscovery search's
``m = tanh(g)`` fits at 0.19 on the probe's gradient scales, and a slot that is read but
never written has no new value to fit (its error is inf)."""
SLOT_COEFFICIENT_ROUNDING = 1e-4
"""Slack of the slot's fitted ``b`` at 0 (the slot holds the last gradient) and at 1 (the
slot accumulates the gradients and never forgets: not an interpolation)."""
TIE_TOLERANCE = 1e-5
"""Relative update errors closer than this (absolute, plus 1% of the best) count as ties:
well above float32 rounding (an exact fit is ~1e-7), below what one more constant explains."""

# ----------------------------------------------------------------------------- probe

PROBE_SHAPES = ((6, 4), (4,), (3, 2, 2), (), (5,))
PROBE_SEEDS = 4
PROBE_STEPS = 24
PROBE_CORRELATION = 0.8
PROBE_SEED = 20230215
PROBE_BOUNDS = np.cumsum([0, *(math.prod(shape) for shape in PROBE_SHAPES)])
"""Where each probe array's coordinates start and stop along the last axis of a flat array."""


@dataclass(frozen=True)
class _Probe:
    """Initial weights ``(S, *shape)`` and gradients ``(S, T, *shape)``, one tuple entry per array."""

    weights: tuple[np.ndarray, ...]
    gradients: tuple[np.ndarray, ...]


@functools.cache
def _probe() -> _Probe:
    rng = np.random.default_rng(PROBE_SEED)
    seeds, steps = PROBE_SEEDS, PROBE_STEPS
    step_factor = np.exp(0.5 * rng.normal(size=(seeds, steps)))
    weights, gradients = [], []
    for shape in PROBE_SHAPES:
        scale = 10.0 ** rng.uniform(-3.0, 1.0, size=seeds)
        mean = rng.normal(size=(seeds, *shape))
        noise = np.empty((seeds, steps, *shape))
        noise[:, 0] = rng.normal(size=(seeds, *shape))
        for t in range(1, steps):
            fresh = rng.normal(size=(seeds, *shape))
            noise[:, t] = PROBE_CORRELATION * noise[:, t - 1] + math.sqrt(1 - PROBE_CORRELATION**2) * fresh
        expand = (slice(None), slice(None)) + (None,) * len(shape)
        g = (scale[:, None] * step_factor)[expand] * (0.5 * mean[:, None] + noise)
        weights.append(rng.normal(size=(seeds, *shape)).astype(np.float32))
        gradients.append(g.astype(np.float32))
    return _Probe(tuple(weights), tuple(gradients))


def _flat(leaves) -> np.ndarray:
    """Leaves ``(S, T, *shape)`` -> one ``(T, S, coordinates)`` array, arrays side by side."""
    blocks = [np.asarray(leaf).reshape(leaf.shape[0], leaf.shape[1], -1) for leaf in leaves]
    return np.moveaxis(np.concatenate(blocks, axis=-1), 0, 1)


def _tree(value, like: tuple) -> tuple:
    """A float32 tree shaped like ``like`` (a scalar value broadcast to every leaf)."""
    leaves = value if isinstance(value, tuple) else (value,) * len(like)
    return tuple(
        np.broadcast_to(np.asarray(v, np.float32), np.shape(x)) for v, x in zip(leaves, like, strict=True)
    )


def _float32(value):
    if isinstance(value, tuple):
        return tuple(np.asarray(v, np.float32) for v in value)
    return np.asarray(value, np.float32)


def _run_program(
    program: Program, probe: _Probe, weights: tuple | None = None, gradient_sign: float = 1.0
) -> tuple[tuple, tuple, dict[str, tuple[tuple, tuple]]]:
    """The program's updates and the weights it sees, each ``(S, T, *shape)`` per array,
    and for each state slot its values before and after each step (the same shapes).

    Runs the registry's NumPy kernels in float32 (as ``execute`` runs in JAX), one
    trajectory at a time so that whole-tree ops see one trajectory's tree. The weights
    follow the program's own updates, or with ``weights`` are those given (so a second
    run, on ``gradient_sign`` times the gradients, sees the same weights as the first).
    """
    kernels = [(s.target, OPS[s.op].numpy_fn(), s.args) for s in program.statements]
    updates = tuple(np.empty((PROBE_SEEDS, PROBE_STEPS, *shape), np.float32) for shape in PROBE_SHAPES)
    seen = tuple(np.empty_like(leaf) for leaf in updates)
    slots = {
        name: tuple(tuple(np.empty_like(leaf) for leaf in updates) for _ in range(2))
        for name in program.state
    }
    with np.errstate(all="ignore"):  # overflow and NaN are measured, not warned about
        for s in range(PROBE_SEEDS):
            w = tuple(np.asarray(leaf[s], np.float32) for leaf in probe.weights)
            state = {name: tuple(np.zeros_like(leaf) for leaf in w) for name in program.state}
            for t in range(PROBE_STEPS):
                if weights is not None:
                    w = tuple(leaf[s, t] for leaf in weights)
                g = tuple(np.float32(gradient_sign) * leaf[s, t] for leaf in probe.gradients)
                env = {"w": w, "g": g, "lr": np.float32(1.0), "step": np.float32(t + 1), **state}
                for target, kernel, args in kernels:
                    env[target] = _float32(kernel(*(env[a] if isinstance(a, str) else a for a in args)))
                update = _tree(env[program.update], w)
                for i, (leaf, seen_leaf) in enumerate(zip(update, w, strict=True)):
                    updates[i][s, t] = leaf
                    seen[i][s, t] = seen_leaf
                new_state = {name: _tree(env[name], w) for name in program.state}
                for name, (before, after) in slots.items():
                    for i in range(len(PROBE_SHAPES)):
                        before[i][s, t] = state[name][i]
                        after[i][s, t] = new_state[name][i]
                state = new_state
                w = tuple(np.float32(a - b) for a, b in zip(w, update, strict=True))
    return updates, seen, slots


# ----------------------------------------------------------------------------- candidates


@dataclass(frozen=True)
class _Candidate:
    """A library optimizer (or several equal up to constants) and where its constants sit."""

    name: str
    members: tuple[str, ...]
    program: Program
    names: tuple[str, ...]
    locations: tuple[tuple[str | float, tuple[tuple[int, int], ...]], ...]

    @property
    def nonlinear(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if n not in LINEAR)

    def overrides(self, values: dict) -> dict[tuple[int, int], object]:
        """Argument position -> value, for named values (and those derived from them)."""
        result = {}
        for key, places in self.locations:
            value = values[key] if isinstance(key, str) else DERIVED[self.name][key](values)
            for place in places:
                result[place] = value
        return result

    def fitted_program(self, values: dict[str, float]) -> Program:
        program = self.program
        for (index, position), value in self.overrides(values).items():
            program = program.with_argument(index, position, float(value))
        return program


def _structure_key(name: str) -> tuple:
    program = library.load(name)
    named = {value: key for key, value in CONSTANTS[name].items()}
    statements = tuple(
        (s.target, s.op, tuple(named.get(a, a) if isinstance(a, float) else a for a in s.args))
        for s in program.statements
    )
    return (program.state, program.update, program.uses_step, statements)


def _locate(name: str) -> tuple:
    program = library.load(name)
    keys: dict[float, str | float] = {value: key for key, value in CONSTANTS[name].items()}
    keys.update({value: value for value in DERIVED.get(name, {})})
    places: dict[str | float, list[tuple[int, int]]] = {}
    for index, statement in enumerate(program.statements):
        for position, arg in enumerate(statement.args):
            if isinstance(arg, float) and arg in keys:
                places.setdefault(keys[arg], []).append((index, position))
    missing = set(CONSTANTS[name]) - set(places)
    if missing:
        raise ValueError(f"library program {name!r} has no constant for {sorted(missing)}")
    return tuple((key, tuple(found)) for key, found in places.items())


@functools.cache
def candidates() -> tuple[_Candidate, ...]:
    """The candidates: library optimizers, those equal up to constants merged."""
    groups: dict[tuple, list[str]] = {}
    for name in CONSTANTS:
        groups.setdefault(_structure_key(name), []).append(name)
    result = []
    for members in groups.values():
        first = members[0]
        program = library.load(first)
        whole_tree = [s.op for s in program.statements if OPS[s.op].kind not in ("elementwise", "constant")]
        if whole_tree:
            raise ValueError(
                f"candidate {first!r} uses {whole_tree[0]!r}: the probe runs candidates elementwise"
            )
        result.append(
            _Candidate(first, tuple(members), library.load(first), tuple(CONSTANTS[first]), _locate(first))
        )
    return tuple(result)


def _soft_sign(softness: float) -> Callable:
    """``x / (|x| + softness * mean|x|)``, the mean over each probe array: a sign whose
    fitted betas move the loss continuously (``sign`` itself gives a staircase)."""

    def soft(x):
        x = np.asarray(x)
        if x.ndim < 1 or x.shape[-1] != PROBE_BOUNDS[-1]:
            return np.sign(x)
        scale = np.concatenate(
            [np.broadcast_to(np.mean(np.abs(x[..., a:b]), -1, keepdims=True), (*x.shape[:-1], b - a))
             for a, b in zip(PROBE_BOUNDS[:-1], PROBE_BOUNDS[1:], strict=True)],
            axis=-1,
        )  # fmt: skip
        return x / (np.abs(x) + softness * scale + 1e-30)

    return soft


def _run_batch(
    candidate: _Candidate, rows: np.ndarray, weights: np.ndarray, gradients: np.ndarray, softness: float = 0.0
) -> np.ndarray:
    """Updates ``(B, T, S, N)`` of a candidate for each row of constants ``(B, n)``.

    Candidates are elementwise (checked in ``candidates``), so the probe's arrays run as
    one ``(S, N)`` block in NumPy float32 (the registry's NumPy kernels), with every row of
    constants at once along a leading axis; ``weights`` and ``gradients`` are ``(T, S, N)``.
    With ``softness`` > 0, ``sign`` is replaced by ``_soft_sign(softness)``.
    """
    program = candidate.program
    columns = np.asarray(rows, np.float64).T[..., None, None]  # (n, B, 1, 1)
    # Derived constants (RAdam's rho_inf) from float64 betas, as a program file writes them.
    overrides = {
        place: np.asarray(value, np.float32)
        for place, value in candidate.overrides(dict(zip(candidate.names, columns, strict=True))).items()
    }
    ops = [
        _soft_sign(softness) if s.op == "sign" and softness > 0 else OPS[s.op].numpy_fn()
        for s in program.statements
    ]
    shape = (len(rows), *weights.shape[1:])
    state = [np.zeros(shape, np.float32) for _ in program.state]
    updates = np.empty((shape[0], PROBE_STEPS, *shape[1:]), np.float32)  # C order as returned
    with np.errstate(all="ignore"):  # overflow and NaN are measured, not warned about
        for t in range(PROBE_STEPS):
            env = {"w": weights[t], "g": gradients[t], "lr": np.float32(1.0), "step": np.float32(t + 1)}
            env.update(zip(program.state, state, strict=True))
            for index, (statement, op) in enumerate(zip(program.statements, ops, strict=True)):
                args = [
                    env[a] if isinstance(a, str) else overrides.get((index, position), np.float32(a))
                    for position, a in enumerate(statement.args)
                ]
                env[statement.target] = op(*args)
            updates[:, t] = np.broadcast_to(env[program.update], shape)
            state = [np.broadcast_to(env[name], shape).astype(np.float32) for name in program.state]
    return updates


# ----------------------------------------------------------------------------- fitting

BETA_RANGE = (-5.0, 0.0)
"""Search range of log10(1 - beta): beta from 0 to 0.99999."""
FULL_GRID = {1: 41, 2: 21}
LOCAL_HALF_WIDTH = {1: 4, 2: 2}
BETA_TOLERANCE = 1e-4
MAX_ROUNDS = 100
SOFTNESS = (0.1, 0.01)
DENSE_SPACING = 2.5e-4
DENSE_HALF_WIDTH = {1: 0.02, 2: 0.008}
CHUNK_ROWS = 512
"""The local grid has 2 * half + 1 points per beta and shrinks by a factor ``half`` (so it
still reaches one old spacing around its centre); the search stops when its spacing in
log10(1 - beta) is below BETA_TOLERANCE (a relative precision of 2.3e-4 in 1 - beta)."""


@dataclass(frozen=True)
class CandidateFit:
    """One library optimizer fitted to a program's updates.

    Attributes:
      name: the library program (among those equal up to constants, the nearest).
      constants: the fitted constants by name (betas, ``learning_rate``, ``weight_decay``).
      error: relative RMS error of the updates (each trajectory and array weighted alike).
      sign_agreement: fraction of update coordinates with the same sign.
      magnitude_error: relative RMS error of the update magnitudes ``|u|``.
      program: the library program with the fitted constants.
    """

    name: str
    constants: dict[str, float]
    error: float
    sign_agreement: float
    magnitude_error: float
    program: Program = field(repr=False)


def _block_rms(values: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """The RMS of ``values`` (``(T, S, N)``, 0 where not ``finite``) over the steps and
    coordinates of each trajectory and probe array, over its finite entries, as ``(1, S, N)``."""
    rms = np.empty((1, PROBE_SEEDS, PROBE_BOUNDS[-1]))
    for start, stop in zip(PROBE_BOUNDS[:-1], PROBE_BOUNDS[1:], strict=True):
        count = np.maximum(finite[:, :, start:stop].sum(axis=(0, 2)), 1)
        rms[0, :, start:stop] = np.sqrt((values[:, :, start:stop] ** 2).sum(axis=(0, 2)) / count)[:, None]
    return rms


class _Target:
    """The program's updates on the probe, as ``(T, S, N)`` arrays, with the fit's weights."""

    def __init__(self, program: Program):
        probe = _probe()
        updates, weights, self._slots = _run_program(program, probe)
        self.weights_seen = _flat(weights).astype(np.float32)
        self.gradients = _flat(probe.gradients).astype(np.float32)
        target = _flat(updates).astype(np.float64)
        finite = np.isfinite(target)
        self.finite_fraction = float(finite.mean())
        self.clean = np.where(finite, target, 0.0)
        # One weight per trajectory and array: 1 / (RMS of the program's update there).
        overall = math.sqrt(float(np.mean(self.clean**2))) or 1.0
        rms = _block_rms(self.clean, finite)
        self.weight = np.where(finite, 1.0 / np.where(rms > 0, rms, overall), 0.0)
        self.norm = float(np.sqrt(np.sum((self.weight * self.clean) ** 2))) or 1.0
        # The gradient-odd part (u(g) - u(-g)) / 2, both runs on the same weights: for a
        # Lion-family program it is lr * sign(c) (c and the slot are linear in g, sign,
        # tanh and clip are odd), its weight-decay term lr * lambda * w cancels.
        negated, _, _ = _run_program(program, probe, weights=weights, gradient_sign=-1.0)
        with np.errstate(all="ignore"):  # inf - inf: not finite, left out below
            odd = (target - _flat(negated).astype(np.float64)) / 2
        self.odd_weight = np.where(np.isfinite(odd), self.weight, 0.0)
        self.odd = np.where(self.odd_weight > 0, odd, 0.0)
        self.odd_norm = float(np.sqrt(np.sum((self.odd_weight * self.odd) ** 2)))

    def slot_fit(self, slot: str) -> tuple[float, float, float]:
        """``slot``'s new value fitted as ``a * g + b * slot`` by least squares: the
        relative error, ``a`` and ``b``. Each trajectory and array is weighted by 1 / (RMS
        of its gradients there), so that no gradient scale dominates; inf error (and NaN
        coefficients) when the new values are not finite or all zero."""
        before, after = (_flat(values).astype(np.float64) for values in self._slots[slot])
        gradients = self.gradients.astype(np.float64)
        rms = _block_rms(gradients, np.isfinite(gradients))
        weight = np.broadcast_to(1.0 / np.where(rms > 0, rms, 1.0), after.shape)
        norm = float(np.sqrt(np.sum((weight * after) ** 2)))
        if not (np.all(np.isfinite(after)) and np.all(np.isfinite(before))) or norm == 0.0:
            return math.inf, math.nan, math.nan
        design = np.stack([(weight * gradients).ravel(), (weight * before).ravel()], axis=1)
        (a, b), *_ = np.linalg.lstsq(design, (weight * after).ravel(), rcond=None)
        residual = (weight * after).ravel() - design @ np.array([a, b])
        return float(np.sqrt(np.sum(residual**2))) / norm, float(a), float(b)

    @functools.cached_property
    def linear_odd_error(self) -> float:
        """The best relative error of a linear momentum (sgd, momentum, nesterov, Lion
        without its sign) fitted to the gradient-odd part alone: tanh and clip of a small
        interpolation are linear, so a Lion-K fit can explain momentum with weight decay
        (which no candidate has)."""
        if self.odd_norm == 0.0:
            return math.inf
        odd_only = copy.copy(self)
        odd_only.clean, odd_only.weight, odd_only.norm = self.odd, self.odd_weight, self.odd_norm
        linear = [c for c in candidates() if c.name in LINEAR_MOMENTUM]
        return min(_fit(c, odd_only, with_checks=False)[0].error for c in (*linear, _linear_lion()))

    def candidate_updates(
        self, candidate: _Candidate, rows, softness: float = 0.0, gradient_sign: float = 1.0
    ) -> np.ndarray:
        gradients = self.gradients if gradient_sign == 1.0 else np.float32(gradient_sign) * self.gradients
        updates = _run_batch(candidate, np.asarray(rows), self.weights_seen, gradients, softness)
        return updates.astype(np.float64)

    def solve_linear(self, candidate: _Candidate, nonlinear: np.ndarray, softness: float = 0.0) -> tuple:
        """For each row of betas: the relative error with the best learning rate and weight
        decay (solved by weighted least squares), and those two."""
        has_decay = "weight_decay" in candidate.names
        batch = len(nonlinear)
        rows = []
        for decay in (0.0, 1.0) if has_decay else (0.0,):
            for betas in nonlinear:
                values = dict(zip(candidate.nonlinear, betas, strict=True))
                values.update(learning_rate=1.0, weight_decay=decay)
                rows.append([values[n] for n in candidate.names])
        if batch > CHUNK_ROWS:  # bound the memory of one batch
            parts = [
                self.solve_linear(candidate, nonlinear[i : i + CHUNK_ROWS], softness)
                for i in range(0, batch, CHUNK_ROWS)
            ]
            return tuple(None if p[0] is None else np.concatenate(p) for p in zip(*parts, strict=True))
        updates = self.candidate_updates(candidate, rows, softness)
        with np.errstate(all="ignore"):  # inf * 0 is NaN: such rows are not usable below
            weighted = (updates * self.weight).reshape(len(rows), -1)
        columns = [weighted[:batch]]
        if has_decay:
            columns.append(weighted[batch:] - weighted[:batch])
        target = (self.clean * self.weight).reshape(-1)
        finite = [np.isfinite(c) for c in columns]
        usable = np.all([np.all(f, axis=1) for f in finite], axis=0)
        if not usable.all():  # the unusable rows' error is inf below; zeros keep the algebra finite
            columns = [np.where(f, c, 0.0) for c, f in zip(columns, finite, strict=True)]
        # Normal equations; the residual follows from them (float64: an exact fit's
        # relative error, ~1e-7, stays far above the cancellation, ~1e-8).
        gram = np.stack([np.stack([np.einsum("bn,bn->b", a, b) for b in columns], -1) for a in columns], -1)
        rhs = np.stack([c @ target for c in columns], axis=-1)
        coefficients = np.einsum("bkl,bl->bk", np.linalg.pinv(gram), rhs)
        squared = target @ target - 2 * np.sum(coefficients * rhs, 1)
        squared += np.einsum("bk,bkl,bl->b", coefficients, gram, coefficients)
        error = np.sqrt(np.maximum(squared, 0.0)) / self.norm
        error = np.where(usable & np.all(np.isfinite(coefficients), axis=1), error, np.inf)
        learning_rate = coefficients[:, 0]
        decay = None
        if has_decay:
            decay = coefficients[:, 1] / np.where(learning_rate != 0, learning_rate, 1.0)
        return error, learning_rate, decay


def _dense_scan(loss: Callable[[np.ndarray], np.ndarray], center: np.ndarray) -> np.ndarray:
    """The best point of a dense grid (spacing DENSE_SPACING) within DENSE_HALF_WIDTH of center."""
    half = DENSE_HALF_WIDTH[len(center)]
    axis = np.arange(-half, half + DENSE_SPACING / 2, DENSE_SPACING)
    offsets = np.stack(np.meshgrid(*[axis] * len(center), indexing="ij"), axis=-1).reshape(-1, len(center))
    grid = np.clip(center + offsets, *BETA_RANGE)
    losses = loss(grid)
    return grid[int(np.argmin(losses))]


def _grid_search(
    loss: Callable[[np.ndarray], np.ndarray], dims: int, start: np.ndarray | None = None, spacing: float = 0.0
) -> np.ndarray:
    """The point of ``[BETA_RANGE]^dims`` with the smallest loss.

    A full grid first, then a small grid around the best point so far that moves with it
    (following a curved valley). Each beta has its own spacing, which shrinks once the
    best point is inside the grid along that beta: a loss that is steep in beta1 and
    flat in beta2 (Adam's) is searched finely in one and widely in the other.
    """
    lo, hi = BETA_RANGE
    if start is None:
        axes = [np.linspace(lo, hi, FULL_GRID[dims])] * dims
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, dims)
        spacing = (hi - lo) / (FULL_GRID[dims] - 1)
    else:
        grid = start[None, :]
    losses = loss(grid)
    best, best_loss = grid[int(np.argmin(losses))], float(np.min(losses))
    spacing = np.full(dims, spacing)
    half = LOCAL_HALF_WIDTH[dims]
    offsets = np.arange(-half, half + 1)
    steps = np.stack(np.meshgrid(*[offsets] * dims, indexing="ij"), axis=-1).reshape(-1, dims)
    for _ in range(MAX_ROUNDS):
        if np.all(spacing < BETA_TOLERANCE):
            break
        grid = np.clip(best + spacing * steps, lo, hi)
        losses = loss(grid)
        k = int(np.argmin(losses))
        moved = np.zeros(dims, bool)
        if losses[k] < best_loss:
            best, best_loss = grid[k], float(losses[k])
            moved = np.abs(steps[k]) == half
        spacing = np.where(moved | (spacing < BETA_TOLERANCE), spacing, spacing / half)
    return best


def _remembered(loss: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """``loss`` that evaluates each distinct grid point once: the local grids of
    ``_grid_search`` overlap the previous round's, and a dense scan's follow-up starts on its
    points. A row's loss does not depend on the other rows of its batch (but for the last bits
    of the batched linear algebra), so the fits are the same."""
    known: dict[bytes, float] = {}

    def remembered(grid: np.ndarray) -> np.ndarray:
        grid = np.asarray(grid, np.float64)
        keys = [row.tobytes() for row in grid]
        new = list({key: index for index, key in enumerate(keys) if key not in known}.items())
        if new:
            values = loss(grid[[index for _, index in new]])
            known.update(zip((key for key, _ in new), values, strict=True))
        return np.array([known[key] for key in keys])

    return remembered


def _betas(log_gaps: np.ndarray) -> np.ndarray:
    return 1.0 - 10.0**log_gaps


def _fit(
    candidate: _Candidate, target: _Target, with_checks: bool = True
) -> tuple[CandidateFit, _LionChecks | None]:
    dims = len(candidate.nonlinear)
    if dims:
        losses = {}

        def loss(softness: float) -> Callable:
            if softness not in losses:
                losses[softness] = _remembered(
                    lambda grid: target.solve_linear(candidate, _betas(grid), softness)[0]
                )
            return losses[softness]

        if _sign_based(candidate):
            # Exact signs leave a plateau with a narrow well at the answer (every sign
            # right): two routes to its basin (soft signs; exact signs), each finished by
            # a dense scan; the better one wins.
            soft = _grid_search(loss(SOFTNESS[0]), dims)
            for softness in SOFTNESS[1:]:
                soft = _grid_search(loss(softness), dims, start=soft, spacing=0.05)
            finished = []
            for start in (soft, _grid_search(loss(0.0), dims)):
                point = _dense_scan(loss(0.0), start)
                finished.append(_grid_search(loss(0.0), dims, start=point, spacing=DENSE_SPACING))
            finished = np.asarray(finished)
            best = finished[int(np.argmin(loss(0.0)(finished)))]
        else:
            best = _grid_search(loss(0.0), dims)
        betas = _betas(best[None, :])
    else:
        betas = np.zeros((1, 0))
    _, learning_rate, decay = target.solve_linear(candidate, betas)
    constants = dict(zip(candidate.nonlinear, (float(b) for b in betas[0]), strict=True))
    if decay is not None:
        constants["weight_decay"] = float(decay[0])
    constants["learning_rate"] = float(learning_rate[0])
    constants = {name: constants[name] for name in candidate.names}
    # The metrics come from a run with every fitted constant in place.
    row = np.asarray([[constants[n] for n in candidate.names]])
    updates = target.candidate_updates(candidate, row)[0]
    fit = CandidateFit(
        _nearest_member(candidate, constants),
        constants,
        *_agreement(target, updates),
        candidate.fitted_program(constants),
    )
    return fit, _lion_checks(target, candidate, row, updates) if with_checks else None


@dataclass(frozen=True)
class _LionChecks:
    """The Lion-family rule's measures of one fit (see ``ClosestMatch``)."""

    balanced_sign_agreement: float
    gradient_error: float
    linear_gradient_error: float

    def passed(self, fit: CandidateFit) -> bool:
        return not self.failures(fit)

    def failures(self, fit: CandidateFit) -> list[str]:
        """The checks of ``fit`` that fail, each as a short reason."""
        failures = []
        if fit.error > LION_MAX_ERROR:
            failures.append(f"update error {fit.error:.3g} > {LION_MAX_ERROR}")
        if self.gradient_error > LION_MAX_ERROR:
            failures.append(f"gradient-odd error {self.gradient_error:.3g} > {LION_MAX_ERROR}")
        # A linear momentum that fits the odd part nearly as well leaves the sign, tanh or
        # clip unexplained.
        if self.linear_gradient_error <= self.gradient_error * LION_LINEAR_MARGIN + TIE_TOLERANCE:
            failures.append(
                f"a linear momentum fits the gradient-odd part at {self.linear_gradient_error:.3g}, "
                f"within {LION_LINEAR_MARGIN:g}x the fit's {self.gradient_error:.3g}"
            )
        if fit.sign_agreement < LION_SIGN_AGREEMENT:
            failures.append(f"sign agreement {fit.sign_agreement:.1%} < {LION_SIGN_AGREEMENT:.0%}")
        if self.balanced_sign_agreement < LION_SIGN_AGREEMENT:
            failures.append(
                f"sign agreement on either sign {self.balanced_sign_agreement:.1%} < {LION_SIGN_AGREEMENT:.0%}"
            )
        return failures


def _lion_checks(target: _Target, candidate: _Candidate, row: np.ndarray, updates: np.ndarray) -> _LionChecks:
    """Sign agreement within each sign of the program's update (the smaller of the two; 0
    if one sign never occurs), and the relative error of the fit's gradient-odd part."""
    both = (target.weight > 0) & np.isfinite(updates)
    agreements = []
    for side in (1.0, -1.0):
        mask = both & (np.sign(target.clean) == side)
        agreements.append(float(np.mean(np.sign(updates[mask]) == side)) if mask.any() else 0.0)
    if target.odd_norm == 0.0:  # the update does not depend on the gradient
        return _LionChecks(min(agreements), math.inf, math.inf)
    negated = target.candidate_updates(candidate, row, gradient_sign=-1.0)[0]
    with np.errstate(all="ignore"):  # inf - inf: not finite, checked next
        odd = (updates - negated) / 2
    usable = np.isfinite(odd)
    if not np.all(usable[target.odd_weight > 0]):
        return _LionChecks(min(agreements), math.inf, target.linear_odd_error)
    residual = target.odd_weight * (np.where(usable, odd, 0.0) - target.odd)
    error = float(np.sqrt(np.sum(residual**2))) / target.odd_norm
    return _LionChecks(min(agreements), error, target.linear_odd_error)


def _agreement(target: _Target, updates: np.ndarray) -> tuple[float, float, float]:
    """Relative update error, sign agreement and relative magnitude error."""
    both = (target.weight > 0) & np.isfinite(updates)
    if not both.any():
        return math.inf, 0.0, math.inf
    w = np.where(both, target.weight, 0.0)
    u = np.where(both, updates, 0.0)
    error = float(np.sqrt(np.sum((w * (u - target.clean)) ** 2))) / target.norm
    signs = float(np.mean(np.sign(u[both]) == np.sign(target.clean[both])))
    magnitude = float(np.sqrt(np.sum((w * (np.abs(u) - np.abs(target.clean))) ** 2))) / target.norm
    return error, signs, magnitude


LINEAR_LION = """def train(w, g, m, lr):
  update = interp(g, m, 0.9)
  m = interp(g, m, 0.99)
  lr = lr * 0.0001
  update = update * lr
  return update, m
"""
"""Lion without its sign: the linear counterpart of every Lion-family candidate (tanh and
clip of a small interpolation are this), a reference for the gradient-odd part only."""


@functools.cache
def _linear_lion() -> _Candidate:
    program = parse(LINEAR_LION)
    names = {0.9: "beta1", 0.99: "beta2", 0.0001: "learning_rate"}
    places = [
        (names[arg], ((index, position),))
        for index, statement in enumerate(program.statements)
        for position, arg in enumerate(statement.args)
        if isinstance(arg, float) and arg in names
    ]
    return _Candidate(
        "linear_lion", ("linear_lion",), program, ("beta1", "beta2", "learning_rate"), tuple(places)
    )


def _nearest_member(candidate: _Candidate, constants: dict[str, float]) -> str:
    if len(candidate.members) == 1:
        return candidate.members[0]

    def distance(member: str) -> float:
        total = 0.0
        for key, default in CONSTANTS[member].items():
            fitted = constants[key]
            if key in LINEAR:
                total += abs(math.log10(max(abs(fitted), 1e-30) / default))
            else:
                total += abs(math.log10(max(1.0 - fitted, 1e-30) / (1.0 - default)))
        return total

    return min(candidate.members, key=distance)


# ----------------------------------------------------------------------------- verdict


@dataclass(frozen=True)
class ClosestMatch:
    """The library optimizer a program behaves most like, with its fitted constants.

    Attributes:
      ranking: every candidate's fit, the verdict first (the best error, and among
        candidates that tie with it the one with the fewest constants), then by error.
      live_state_slots: the program's live state slots (``dsl.analyze``).
      finite_fraction: fraction of the program's probe updates that are finite (the fit
        uses only those).
      lion_family: the verdict is a Lion-family candidate (sign, tanh or clip of an
        interpolation of the gradient and one momentum slot updated by its own
        interpolation of the gradient), the program has exactly one live state slot,
        at least 95% of its update signs agree with the fit, on updates of either sign
        (``balanced_sign_agreement``), the fit's relative update error is at most
        ``LION_MAX_ERROR``, and so is the error of its gradient-odd part (the update
        depends on the gradient as the fit's does).
      balanced_sign_agreement: the verdict's sign agreement on the program's positive
        updates and on its negative ones, the smaller (0 if one sign never occurs): a
        program whose updates are nearly all one sign agrees with any fit of that sign.
      gradient_error: relative error of the verdict's gradient-odd part
        ``(u(g) - u(-g)) / 2`` (the same weights, the gradients negated), inf if the
        program's is zero (its update does not depend on the gradient).
      linear_gradient_error: the best relative error of a linear momentum (sgd,
        momentum, nesterov, or Lion without its sign) fitted to the gradient-odd part;
        Lion family needs it to be ``LION_LINEAR_MARGIN`` times ``gradient_error`` or more
        (tanh and clip of a small interpolation are nearly linear: a Lion-K fit can stand for
        a momentum with weight decay or a mild gradient normalization).
      memoryless_error: the relative update error of sign descent without momentum
        (``signsgd``) fitted to the program; Lion family needs it to be
        ``LION_MEMORY_MARGIN`` times the verdict's error or more (the momentum matters).
      slot_fit: for a program with one live slot, that slot's new value fitted as
        ``a * g + b * slot``: ``(relative error, a, b)``; Lion family needs an error of at
        most ``SLOT_MAX_ERROR``, ``a > 0`` and ``0 <= b < 1`` (the slot is updated by its own
        interpolation of the gradient). ``(inf, nan, nan)`` otherwise.
      lion_family_failures: the Lion-family checks that fail, each a short reason (empty
        exactly when ``lion_family``).
    """

    ranking: tuple[CandidateFit, ...]
    live_state_slots: tuple[str, ...]
    finite_fraction: float
    lion_family: bool
    balanced_sign_agreement: float = 0.0
    gradient_error: float = math.inf
    linear_gradient_error: float = math.inf
    memoryless_error: float = math.inf
    slot_fit: tuple[float, float, float] = (math.inf, math.nan, math.nan)
    lion_family_failures: tuple[str, ...] = ()

    @property
    def best(self) -> CandidateFit:
        return self.ranking[0]

    @property
    def name(self) -> str:
        return self.best.name

    @property
    def constants(self) -> dict[str, float]:
        return self.best.constants

    @property
    def error(self) -> float:
        return self.best.error

    @property
    def sign_agreement(self) -> float:
        return self.best.sign_agreement

    @property
    def magnitude_error(self) -> float:
        return self.best.magnitude_error

    @property
    def beta1(self) -> float | None:
        """The verdict's fitted beta1 (its single beta for one-beta optimizers), else None."""
        return self.constants.get("beta1", self.constants.get("beta"))

    @property
    def beta2(self) -> float | None:
        """The verdict's fitted beta2 (its single beta for one-beta optimizers), else None."""
        return self.constants.get("beta2", self.constants.get("beta"))

    @property
    def is_lion(self) -> bool:
        """Lion family, and beta2 exceeds beta1 by at least 0.04."""
        return bool(self.lion_family and self.beta2 - self.beta1 >= LION_BETA_GAP)

    def report(self) -> str:
        """The verdict, the Lion-family checks, and the ranking, as text."""
        best = self.best
        lines = [
            f"closest known optimizer: {best.name}  "
            f"(relative update error {best.error:.3g}, {best.sign_agreement:.1%} of update signs agree, "
            f"magnitude error {best.magnitude_error:.3g})",
            f"  fitted constants: {_format_constants(best.constants)}",
        ]
        if self.finite_fraction < 1.0:
            lines.append(f"  only {self.finite_fraction:.1%} of the program's probe updates are finite")
        live = len(self.live_state_slots)
        slot_error, slot_a, slot_b = self.slot_fit
        checks = [
            f"best fit is a Lion-family optimizer: {'yes' if best.name in LION_FAMILY else 'no'}",
            f"live state slots: {live} ({'=' if live == 1 else '!='} 1)",
            f"sign agreement {best.sign_agreement:.1%} ({'>=' if best.sign_agreement >= 0.95 else '<'} 95%)",
            f"on either sign {self.balanced_sign_agreement:.1%} "
            f"({'>=' if self.balanced_sign_agreement >= 0.95 else '<'} 95%)",
            f"update error {best.error:.3g} ({'<=' if best.error <= LION_MAX_ERROR else '>'} {LION_MAX_ERROR})",
            f"gradient-odd error {self.gradient_error:.3g} "
            f"({'<=' if self.gradient_error <= LION_MAX_ERROR else '>'} {LION_MAX_ERROR}; "
            f"a linear momentum fits it at {self.linear_gradient_error:.3g})",
            f"sign descent without memory fits the update at {self.memoryless_error:.3g} "
            f"(>= {LION_MEMORY_MARGIN:g}x the update error: the momentum matters)",
            f"the live slot's new value fits a * g + b * slot at {slot_error:.3g} "
            f"({'<=' if slot_error <= SLOT_MAX_ERROR else '>'} {SLOT_MAX_ERROR:g}) with a = {slot_a:.3g}, "
            f"b = {slot_b:.3g} (a > 0 and 0 <= b < 1: {'yes' if slot_a > 0 and 0 <= slot_b < 1 else 'no'})",
        ]
        lines.append(f"  Lion family: {'yes' if self.lion_family else 'no'} ({'; '.join(checks)})")
        if self.lion_family_failures:
            lines.append(f"  fails: {'; '.join(self.lion_family_failures)}")
        if self.lion_family:
            gap = self.beta2 - self.beta1
            verdict = "yes" if self.is_lion else "no"
            lines.append(f"  Lion (beta2 - beta1 >= {LION_BETA_GAP}): {verdict} (beta2 - beta1 = {gap:.4g})")
        lines.append("  ranking (relative update error, sign agreement, magnitude error, constants):")
        for rank, fit in enumerate(self.ranking, start=1):
            lines.append(
                f"    {rank:>2}. {fit.name:<14} {fit.error:>9.3g} {fit.sign_agreement:>7.1%} "
                f"{fit.magnitude_error:>9.3g}  {_format_constants(fit.constants)}"
            )
        return "\n".join(lines)


def _format_constants(constants: dict[str, float]) -> str:
    return " ".join(f"{name}={value:.4g}" for name, value in constants.items())


def closest_optimizer(program: Program) -> ClosestMatch:
    """Fit every library optimizer to ``program``'s updates on the probe; the best match.

    Args:
      program: a valid program.

    Returns:
      A ``ClosestMatch``: the verdict's name and fitted constants, its sign agreement
      and magnitude error, the ranking of all candidates, and whether the program is in
      the Lion family.

    Raises:
      ProgramError: if the program does not type-check.
      ValueError: if none of its probe updates is finite (nothing to compare).
    """
    _ = program.kinds
    target = _target(program)
    fits = sorted((_fit(c, target) for c in candidates()), key=lambda pair: pair[0].error)
    best = fits[0][0].error
    tied = [pair for pair in fits if pair[0].error <= best * 1.01 + TIE_TOLERANCE]
    verdict, checks = min(tied, key=lambda pair: (len(pair[0].constants), pair[0].error))
    ranking = (verdict, *(fit for fit, _ in fits if fit is not verdict))
    live = analyze(program).live_state_slots
    memoryless = min((fit.error for fit, _ in fits if fit.name in MEMORYLESS_SIGN), default=math.inf)
    slot_fit = target.slot_fit(live[0]) if len(live) == 1 else (math.inf, math.nan, math.nan)
    failures = []
    if verdict.name not in LION_FAMILY:
        failures.append("the best fit is not a Lion-family optimizer")
    if len(live) != 1:
        failures.append(f"{len(live)} live state slots, not 1")
    elif not _slot_is_interpolation(*slot_fit):
        error, a, b = slot_fit
        failures.append(
            f"the live slot's new value is not an interpolation of g and itself "
            f"(a * g + b * slot fits at {error:.3g}, a = {a:.3g}, b = {b:.3g})"
        )
    failures += checks.failures(verdict)
    if memoryless < LION_MEMORY_MARGIN * verdict.error:
        failures.append(
            f"sign descent without memory fits at {memoryless:.3g}, within {LION_MEMORY_MARGIN:g}x the fit's error"
        )
    return ClosestMatch(
        ranking,
        live,
        target.finite_fraction,
        not failures,
        checks.balanced_sign_agreement,
        checks.gradient_error,
        checks.linear_gradient_error,
        memoryless,
        slot_fit,
        tuple(failures),
    )


def _target(program: Program) -> _Target:
    target = _Target(program)
    if target.finite_fraction == 0.0:
        raise ValueError("none of the program's updates on the probe is finite: nothing to compare")
    return target


def _sign_magnitude_bound(target: _Target) -> float:
    """A lower bound on the gradient-odd error of every sign-based fit: its odd part is
    ``lr * sign(c)``, of one magnitude everywhere, and ``|a - b| >= ||a| - |b||``, so no fit
    beats the best constant fitted to the program's ``|odd part|``."""
    w2 = target.odd_weight**2
    magnitude = np.abs(target.odd)
    level = float(np.sum(w2 * magnitude) / np.sum(w2))
    return float(np.sqrt(np.sum(w2 * (magnitude - level) ** 2))) / target.odd_norm


def _slot_is_interpolation(error: float, a: float, b: float) -> bool:
    """``a * g + b * slot`` fits within ``SLOT_MAX_ERROR``, with ``a > 0`` and ``0 <= b < 1``
    (up to rounding): the slot is a scaled interpolation of the gradient and itself."""
    return (
        error <= SLOT_MAX_ERROR
        and a > 0.0
        and -SLOT_COEFFICIENT_ROUNDING <= b < 1.0 - SLOT_COEFFICIENT_ROUNDING
    )


def _sign_based(candidate: _Candidate) -> bool:
    return any(s.op == "sign" for s in candidate.program.statements)


def screen_lion_family(program: Program) -> bool:
    """False only for programs that ``closest_optimizer`` does not call Lion family.

    Every step is a necessary condition of its rule, on the same probe updates and the
    same fits: exactly one live slot (the momentum), updated by an interpolation of the
    gradient and itself; finite updates of both signs (else the balanced
    sign agreement is 0); an update that depends on the gradient; a Lion-family
    candidate whose own fit passes every check (a linear momentum's fit to the odd part
    included) (the verdict must be one). Sign-based
    candidates are fitted only when ``_sign_magnitude_bound`` (plus
    ``SCREEN_ROUNDING_MARGIN``) allows their gradient-odd error within ``LION_MAX_ERROR``;
    the other candidates are not fitted at all. A program that passes may still not be
    Lion family (another candidate may fit it better): ``closest_optimizer`` decides.

    Raises:
      ProgramError: if the program does not type-check.
    """
    _ = program.kinds
    live = analyze(program).live_state_slots
    if len(live) != 1:  # the momentum slot, and no other
        return False
    target = _Target(program)
    if not _slot_is_interpolation(*target.slot_fit(live[0])):
        return False
    signs = np.sign(target.clean[target.weight > 0])
    if not (np.any(signs > 0) and np.any(signs < 0)) or target.odd_norm == 0.0:
        return False
    sign_based_possible = _sign_magnitude_bound(target) <= LION_MAX_ERROR + SCREEN_ROUNDING_MARGIN
    family = [c for c in candidates() if set(c.members) & set(LION_FAMILY)]
    if not sign_based_possible:
        family = [c for c in family if not _sign_based(c)]
    # The cheapest fits first: smooth ones, then sign-based ones with fewer betas.
    for candidate in sorted(family, key=lambda c: (_sign_based(c), len(c.nonlinear))):
        fit, checks = _fit(candidate, target)
        if fit.name in LION_FAMILY and checks.passed(fit):
            return True
    return False
