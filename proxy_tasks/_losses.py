"""The classification loss and metric every model family shares."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Softmax cross-entropy in nats of each example: ``logits [..., classes]``, ``labels [...]``."""
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """The fraction of examples whose largest logit is the label (float32)."""
    return jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
