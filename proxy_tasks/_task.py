"""The interface shared by every proxy task: datasets, models, configs and results.

A model family (MLP, ViT, char-LM) provides a ``Model``; a data loader provides a
``Dataset``; a ``TaskConfig`` fixes the training run (steps, batch size, schedule); the
``Task`` (below) trains the model with a candidate program and returns a
``Result``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import numpy as np


@dataclass(frozen=True)
class Dataset:
    """Fixed arrays for training and validation (already split, deterministic).

    ``x_*`` are float32 inputs (or int32 token ids), ``y_*`` int32 labels / targets.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


@dataclass(frozen=True)
class Model:
    """A model family instance: pure functions over a params pytree.

    Attributes:
      init: PRNG key -> params pytree of float32 arrays.
      loss: (params, x_batch, y_batch) -> mean training loss (a float32 scalar).
      metric: (params, x_val, y_val) -> the validation metric (a float32 scalar).
      metric_name: ``"accuracy"`` or ``"log_perplexity"``.
      higher_is_better: whether a larger metric is better (accuracy yes, perplexity no).
    """

    init: Callable[[jax.Array], Any]
    loss: Callable[[Any, jax.Array, jax.Array], jax.Array]
    metric: Callable[[Any, jax.Array, jax.Array], jax.Array]
    metric_name: str
    higher_is_better: bool


@dataclass(frozen=True)
class ScheduleConfig:
    """The unitless learning-rate schedule fed to a program as ``lr``.

    The program's own constants carry the real learning rate; this only shapes it
    over time, with a peak of 1.0.

    Attributes:
      kind: ``"constant"`` (1.0 throughout), ``"cosine"`` (cosine decay from 1 to
        ``final_fraction``) or ``"warmup_cosine"`` (linear warmup from 0 over
        ``warmup_fraction`` of the steps, then cosine decay).
      warmup_fraction: fraction of the steps spent warming up (``warmup_cosine`` only).
      final_fraction: the schedule value at the last step, as a fraction of the peak.
    """

    kind: str = "cosine"
    warmup_fraction: float = 0.05
    final_fraction: float = 0.0


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
    """

    name: str
    family: str
    size: str
    steps: int
    batch_size: int
    model: dict = field(default_factory=dict)
    schedule: ScheduleConfig = ScheduleConfig()
    divergence_factor: float = 10.0


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
        loss x > limit at step k", "invalid program: ...").
      seconds: wall time of the evaluation (after compilation, unless it compiled).
    """

    fitness: float
    metric: float
    train_loss: float
    steps: int
    failure: str | None
    seconds: float

    @property
    def failed(self) -> bool:
        return self.failure is not None


WORST_FITNESS = float("-inf")
