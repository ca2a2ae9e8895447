"""The unitless learning-rate schedule a program reads as ``lr`` (peak 1.0)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp

SCHEDULE_KINDS = ("constant", "cosine", "warmup_cosine")


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


def make_schedule(config: ScheduleConfig, steps: int) -> Callable[[jax.Array], jax.Array]:
    """``count -> lr`` for ``count`` = 0 .. steps - 1 (float32).

    * ``constant``: 1.0.
    * ``cosine``: ``f + (1 - f) * (1 + cos(pi * count / steps)) / 2`` with
      ``f = final_fraction``: 1.0 at the start, decaying towards ``f``.
    * ``warmup_cosine``: linear from ``1 / warmup`` to 1.0 over the first
      ``warmup = max(1, round(warmup_fraction * steps))`` steps, then the cosine
      decay over the remaining steps.

    Raises:
      ValueError: for an unknown kind or fractions outside [0, 1].
    """
    if config.kind not in SCHEDULE_KINDS:
        raise ValueError(f"schedule kind {config.kind!r} is not one of {', '.join(SCHEDULE_KINDS)}")
    for name in ("warmup_fraction", "final_fraction"):
        value = getattr(config, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"schedule {name} must be in [0, 1], got {value}")
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    final = config.final_fraction

    def cosine(progress):
        return final + (1.0 - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))

    if config.kind == "constant":
        return lambda count: jnp.ones((), jnp.float32)
    if config.kind == "cosine":
        return lambda count: cosine(jnp.asarray(count, jnp.float32) / steps).astype(jnp.float32)
    warmup = max(1, round(config.warmup_fraction * steps))
    decay_steps = max(1, steps - warmup)

    def warmup_cosine(count):
        count = jnp.asarray(count, jnp.float32)
        rising = (count + 1.0) / warmup
        falling = cosine((count - warmup) / decay_steps)
        return jnp.where(count < warmup, rising, falling).astype(jnp.float32)

    return warmup_cosine
