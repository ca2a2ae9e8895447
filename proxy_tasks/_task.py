"""The interface shared by every proxy task: datasets, models, configs and results.

A model family (MLP, ViT, char-LM) provides a ``Model``; a data loader provides a
``Dataset``; a ``TaskConfig`` fixes the training run (steps, batch size, schedule); the
``Task`` (below) trains the model with a candidate program and returns a
``Result``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

import dsl

from ._interpreter import encode, initial_registers, layout_of, make_program_step, schedule_table, unpack
from ._schedules import ScheduleConfig, make_schedule


@dataclass(frozen=True)
class Dataset:
    """Fixed arrays for training, validation and test (disjoint, deterministic).

    ``x_*`` are float32 inputs (or int32 token ids), ``y_*`` int32 labels / targets.
    The search selects on validation; test is held out for the funnel and reports.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def digest(self) -> str:
        """sha256 of every array (shape, dtype and bytes): changes whenever the data does."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test):
            digest.update(f"{array.shape}{array.dtype}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


@dataclass(frozen=True)
class Model:
    """A model family instance: pure functions over a params pytree.

    Attributes:
      init: PRNG key -> params pytree of float32 arrays.
      loss: (params, x_batch, y_batch) -> mean training loss (a float32 scalar).
      metric: (params, x, y) -> the metric on a held-out split (a float32 scalar).
      metric_name: ``"accuracy"`` or ``"log_perplexity"``.
      higher_is_better: whether a larger metric is better (accuracy yes, perplexity no).
    """

    init: Callable[[jax.Array], Any]
    loss: Callable[[Any, jax.Array, jax.Array], jax.Array]
    metric: Callable[[Any, jax.Array, jax.Array], jax.Array]
    metric_name: str
    higher_is_better: bool


@dataclass(frozen=True)
class StallRule:
    """Stop a run that has not started to learn, to save the rest of its training.

    When ``check_step(steps)`` updates have been applied, the mean training loss of the
    last ``window_steps(steps)`` steps is compared with the loss of the initial params on
    the same minibatches; unless it is lower by more than ``min_drop`` of that loss, the
    run stops and fails as "stalled". For a search, where many children never learn
    (their loss stays at the untrained model's), not for reporting: the funnel and the
    tuning train fully.

    Attributes:
      check: fraction of the steps after which the check is made, in (0, 1).
      window: fraction of the steps whose losses are averaged before the check.
      min_drop: the relative fall below the untrained model's loss a run must exceed; more
        than 0, since the two means add the same losses in different orders.
    """

    check: float
    window: float = 0.05
    min_drop: float = 0.0005

    def __post_init__(self):
        if not 0.0 < self.check < 1.0:
            raise ValueError(f"StallRule.check must be in (0, 1), got {self.check!r}")
        if not 0.0 < self.window <= self.check:
            raise ValueError(f"StallRule.window must be in (0, check], got {self.window!r}")
        if not self.min_drop > 0.0:
            raise ValueError(f"StallRule.min_drop must be > 0, got {self.min_drop!r}")

    def check_step(self, steps: int) -> int:
        """The number of steps applied when the check is made (at least the window)."""
        return max(self.window_steps(steps), round(self.check * steps))

    def window_steps(self, steps: int) -> int:
        return max(1, round(self.window * steps))


@dataclass(frozen=True)
class TaskConfig:
    """Everything that defines one proxy task.

    Attributes:
      name: registry name, e.g. ``mlp_digits_a``.
      family: ``"mlp_digits"``, ``"vit_digits"``, ``"charlm"`` or ``"lsq"``.
      size: ``"a"``, ``"b"``, ``"c"`` or ``"tiny"``.
      steps: training steps.
      batch_size: examples per step.
      model: the family's model configuration (widths, depths...).
      schedule: the ``lr`` schedule.
      divergence_factor: the run fails once the training loss exceeds this many times
        its initial value (or is non-finite).
      stall: None, or a ``StallRule``: the run fails once it has not learned by then.
    """

    name: str
    family: str
    size: str
    steps: int
    batch_size: int
    model: dict = field(default_factory=dict)
    schedule: ScheduleConfig = ScheduleConfig()
    divergence_factor: float = 10.0
    stall: StallRule | None = None


@dataclass(frozen=True)
class Result:
    """The outcome of training one model with one program and one seed.

    Attributes:
      fitness: higher is better: accuracy, or minus the log perplexity; ``-inf`` for a
        failed run.
      metric: the validation metric as the model reports it (NaN if the run failed
        before it could be measured).
      train_loss: the training loss at the last step that ran.
      steps: the number of steps whose update was applied.
      failure: None, or why the run failed ("non-finite loss at step k", "diverged:
        loss x > limit at step k", "stalled: ...", "invalid program: ...").
      seconds: wall time of the evaluation (after compilation, unless it compiled).
      test_fitness: ``fitness`` measured on the held-out test split (``-inf`` for a
        failed run). For reports and the funnel only: never select on it.
      test_metric: the metric on the test split (NaN for a failed run).
    """

    fitness: float
    metric: float
    train_loss: float
    steps: int
    failure: str | None
    seconds: float
    test_fitness: float = float("-inf")
    test_metric: float = float("nan")

    @property
    def failed(self) -> bool:
        return self.failure is not None


WORST_FITNESS = float("-inf")


# ----------------------------------------------------------------------------- training

FAILURE_NONE = 0
FAILURE_NON_FINITE_LOSS = 1
FAILURE_DIVERGED = 2
FAILURE_NON_FINITE_PARAMS = 3
FAILURE_NON_FINITE_METRIC = 4
FAILURE_STALLED = 5

TRAIN_LOSS_TAIL = 0.1
"""``Result.train_loss`` averages the minibatch losses of this final fraction of the steps."""


class Task:
    """A proxy task: train ``model`` on ``dataset`` for ``config.steps`` steps with a program.

    The training loop is compiled once per interpreter size bucket (see
    ``_interpreter.BUCKETS``) and then runs any program of that size: the program is
    data. ``trace_count`` counts how many times the loop was traced (compiled).

    Every run: params from ``model.init(key)`` and minibatches of ``batch_size``
    indices drawn with replacement from the training set, both from
    ``jax.random.key(seed)``; the program is called once per step with
    ``lr = schedule(count)`` and ``step = count + 1`` (as ``dsl.to_optax``); the
    update is subtracted from the params. Divergence is checked before each update:
    once the minibatch loss is non-finite or above ``divergence_factor`` times the
    loss of the first step, the loop stops (the params keep their last value) and
    the run is a failure with the worst fitness. A ``config.stall`` rule likewise stops
    and fails a run that has not learned by its check step.
    """

    def __init__(self, config: TaskConfig, model: Model, dataset: Dataset):
        self.config = config
        self.model = model
        self.dataset = dataset
        self.schedule = make_schedule(config.schedule, config.steps)
        self.trace_count = 0
        shapes = jax.eval_shape(model.init, jax.random.key(0))
        self.layout = layout_of(shapes)
        self._data = tuple(
            jax.numpy.asarray(a)
            for a in (
                dataset.x_train,
                dataset.y_train,
                dataset.x_val,
                dataset.y_val,
                dataset.x_test,
                dataset.y_test,
            )
        )
        self._interpreted = jax.jit(self._interpreted_run, static_argnums=3)
        counts = np.arange(config.steps)
        # What a program reads as lr and step at each step (host arrays for schedule_table).
        self._schedule_inputs = (
            np.asarray(self.schedule(jax.numpy.asarray(counts)), np.float32),
            (counts + 1).astype(np.float32),
        )
        self._direct_cache: dict[int, Callable] = {}

    @property
    def name(self) -> str:
        return self.config.name

    def __repr__(self) -> str:
        return f"Task({self.config.name!r}, {self.layout.size} params, {self.config.steps} steps)"

    # ------------------------------------------------------------------ public

    def evaluate(self, program, seed: int = 0) -> Result:
        """Train with ``program`` (a ``dsl.Program`` or its text) and score it.

        Never raises for a bad candidate: an invalid program, NaN/inf or divergence
        gives ``fitness = -inf`` and the reason in ``failure``.
        """
        return self.train(program, seed)[0]

    def evaluate_seeds(self, program, seeds) -> list[Result]:
        """``evaluate`` for each seed, one after another."""
        return [self.evaluate(program, seed) for seed in seeds]

    def train(self, program, seed: int = 0) -> tuple[Result, Any]:
        """Like ``evaluate``, and also return the trained params pytree (None if invalid)."""
        start = time.perf_counter()
        try:
            if isinstance(program, str):
                program = dsl.parse(program)
            encoded = encode(program)
        except dsl.ProgramError as error:
            reason = f"invalid program: {error}"
            return Result(
                WORST_FITNESS, float("nan"), float("nan"), 0, reason, time.perf_counter() - start
            ), None
        scalars = schedule_table(encoded, *self._schedule_inputs)
        outputs = self._interpreted(encoded.packed(), scalars, np.int32(seed), encoded.bucket, *self._data)
        return self._result(outputs, start)

    def train_optax(self, optimizer, seed: int = 0) -> tuple[Result, Any]:
        """The same loop with an ``optax.GradientTransformation`` written directly.

        The reference for the interpreter: the optimizer's ``update`` receives the
        gradient pytree, its state and the params, and its (negated-update) output is
        added to the params, in the same loop with the same data, divergence checks
        and schedule. The optimizer must read the schedule itself (it is not passed).
        Compiled once per optimizer object.
        """
        start = time.perf_counter()
        run = self._direct_cache.get(id(optimizer))
        if run is None:
            run = jax.jit(lambda seed, *data: self._direct_run(optimizer, seed, *data))
            self._direct_cache[id(optimizer)] = run
        outputs = run(np.int32(seed), *self._data)
        return self._result(outputs, start)

    # ------------------------------------------------------------------ loops

    def _interpreted_run(self, packed_code, scalars, seed, bucket, *data):
        self.trace_count += 1
        code = unpack(packed_code, bucket[0])
        init_key, _ = jax.random.split(jax.random.key(seed))
        flat_w, unravel = ravel_pytree(self.model.init(init_key))
        program_step = make_program_step(self.layout)

        def loss_fn(w, x, y):
            return self.model.loss(unravel(w), x, y)

        def apply(w, g, registers, t):
            # scalars: [steps, S], the program's scalar-only statements run for every step
            # before the loop (_interpreter.schedule_table).
            update, registers = program_step(code, registers, scalars[t], w, g)
            return w - update, registers

        registers = initial_registers(bucket, self.layout)
        return self._loop(flat_w, registers, loss_fn, apply, unravel, seed, *data)

    def _direct_run(self, optimizer, seed, *data):
        init_key, _ = jax.random.split(jax.random.key(seed))
        params = self.model.init(init_key)

        def apply(w, g, opt_state, t):  # the optimizer reads the schedule from its own count
            updates, opt_state = optimizer.update(g, opt_state, w)
            return optax.apply_updates(w, updates), opt_state

        return self._loop(
            params,
            optimizer.init(params),
            self.model.loss,
            apply,
            lambda w: w,
            seed,
            *data,
        )

    def _loop(
        self, w, opt_state, loss_fn, apply, to_params, seed, x_train, y_train, x_val, y_val, x_test, y_test
    ):
        """The shared training loop; ``w`` is flat (interpreter) or a pytree (optax).

        The validation and test metrics of the final params are computed in the same
        compiled run.
        """
        jnp = jax.numpy
        tree_map = jax.tree_util.tree_map
        steps = self.config.steps
        tail_start = steps - max(1, round(TRAIN_LOSS_TAIL * steps))
        _, data_key = jax.random.split(jax.random.key(seed))
        batches = jax.random.randint(data_key, (steps, self.config.batch_size), 0, x_train.shape[0])
        value_and_grad = jax.value_and_grad(loss_fn)
        factor = jnp.float32(self.config.divergence_factor)

        stall = self.config.stall
        check_step = stall.check_step(steps) if stall else steps + 1  # never reached without a rule
        window_start = check_step - stall.window_steps(steps) if stall else steps + 1
        initial_w = w

        def untrained_loss():
            # The window's minibatches under the initial params: the loss of not learning, paired
            # with the trained one batch for batch (so minibatch noise cannot pass or fail a run).
            index = batches[window_start:check_step].reshape(-1)
            return loss_fn(initial_w, x_train[index], y_train[index])

        def cond(carry):
            return carry["alive"] & (carry["t"] < steps)

        def body(carry):
            t = carry["t"]
            index = batches[t]
            loss, g = value_and_grad(carry["w"], x_train[index], y_train[index])
            limit = jnp.where(t == 0, factor * loss, carry["limit"])
            finite = jnp.isfinite(loss)
            if stall:
                at_check = t == check_step
                in_window = (t >= window_start) & (t < check_step)
                window_sum = carry["window_sum"] + jnp.where(in_window, loss, 0.0)
                reference = jax.lax.cond(at_check, untrained_loss, lambda: carry["reference"])
                mean = window_sum / (check_step - window_start)
                stalled = at_check & (mean >= reference - stall.min_drop * abs(reference))
            else:
                window_sum, reference, stalled = carry["window_sum"], carry["reference"], jnp.bool_(False)
            ok = finite & (loss <= limit) & ~stalled
            w_new, opt_state = apply(carry["w"], g, carry["opt_state"], t)
            code = jnp.where(
                stalled, FAILURE_STALLED, jnp.where(finite, FAILURE_DIVERGED, FAILURE_NON_FINITE_LOSS)
            )
            return {
                "t": jnp.where(ok, t + 1, t),
                "w": tree_map(lambda new, old: jnp.where(ok, new, old), w_new, carry["w"]),
                "opt_state": opt_state,
                "alive": ok,
                "limit": limit,
                "window_sum": window_sum,
                "reference": reference,
                "loss": loss,
                "failure": jnp.where(ok, FAILURE_NONE, code).astype(jnp.int32),
                "tail_sum": carry["tail_sum"] + jnp.where(ok & (t >= tail_start), loss, 0.0),
            }

        carry = {
            "t": jnp.int32(0),
            "w": w,
            "opt_state": opt_state,
            "alive": jnp.bool_(True),
            "limit": jnp.float32(jnp.inf),
            "window_sum": jnp.float32(0.0),
            "reference": jnp.float32(jnp.nan),
            "loss": jnp.float32(jnp.nan),
            "failure": jnp.int32(FAILURE_NONE),
            "tail_sum": jnp.float32(0.0),
        }
        carry = jax.lax.while_loop(cond, body, carry)
        params = to_params(carry["w"])
        metric = self.model.metric(params, x_val, y_val)
        test_metric = self.model.metric(params, x_test, y_test)
        params_finite = jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(params)])
        )
        failure = carry["failure"]
        failure = jnp.where((failure == FAILURE_NONE) & ~params_finite, FAILURE_NON_FINITE_PARAMS, failure)
        failure = jnp.where(
            (failure == FAILURE_NONE) & ~jnp.isfinite(metric), FAILURE_NON_FINITE_METRIC, failure
        )
        return {
            "params": params,
            "steps": carry["t"],
            "failure": failure,
            "loss": carry["loss"],
            "limit": carry["limit"],
            "window_sum": carry["window_sum"],
            "reference": carry["reference"],
            "tail_loss": carry["tail_sum"] / (steps - tail_start),
            "metric": metric,
            "test_metric": test_metric,
        }

    def _stall_reason(self, outputs) -> str:
        steps, stall = self.config.steps, self.config.stall
        check, window = stall.check_step(steps), stall.window_steps(steps)
        mean = float(outputs["window_sum"]) / window
        untrained = float(outputs["reference"])
        return (
            f"stalled: mean training loss {mean:.6g} over steps {check - window + 1}-{check} is not below "
            f"the untrained model's {untrained:.6g} on the same minibatches by more than {stall.min_drop:g} of it"
        )

    def _result(self, outputs, start: float) -> tuple[Result, Any]:
        outputs = jax.device_get(outputs)
        steps = int(outputs["steps"])
        failure_code = int(outputs["failure"])
        metric = float(outputs["metric"])
        loss = float(outputs["loss"])
        test_metric = float(outputs["test_metric"])
        if failure_code == FAILURE_NONE:
            sign = 1.0 if self.model.higher_is_better else -1.0
            # A run whose test metric alone is non-finite keeps its (validation) fitness.
            test_fitness = sign * test_metric if np.isfinite(test_metric) else WORST_FITNESS
            result = Result(
                sign * metric,
                metric,
                float(outputs["tail_loss"]),
                steps,
                None,
                time.perf_counter() - start,
                test_fitness,
                test_metric,
            )
            return result, outputs["params"]
        failure = (
            self._stall_reason(outputs)
            if failure_code == FAILURE_STALLED
            else {
                FAILURE_NON_FINITE_LOSS: f"non-finite loss at step {steps + 1}",
                FAILURE_DIVERGED: f"diverged: loss {loss:.4g} > limit {float(outputs['limit']):.4g} at step {steps + 1}",
                FAILURE_NON_FINITE_PARAMS: f"non-finite parameters after step {steps}",
                FAILURE_NON_FINITE_METRIC: f"non-finite validation {self.model.metric_name} after step {steps}",
            }[failure_code]
        )
        result = Result(
            WORST_FITNESS,
            float("nan") if failure_code != FAILURE_NON_FINITE_METRIC else metric,
            loss,
            steps,
            failure,
            time.perf_counter() - start,
            WORST_FITNESS,
            float("nan") if failure_code != FAILURE_NON_FINITE_METRIC else test_metric,
        )
        return result, outputs["params"]
