"""A multilayer perceptron classifier (ReLU hidden layers, softmax cross-entropy)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._losses import accuracy, cross_entropy
from ._task import Model


def make_mlp(config: dict) -> Model:
    """An MLP classifier.

    Args:
      config: ``{"inputs": int, "hidden": [int, ...], "classes": int}``.

    Returns:
      A ``Model`` whose params are ``[{"w": [fan_in, fan_out], "b": [fan_out]}, ...]``
      (He-normal weights, zero biases) and whose metric is the validation accuracy.

    Raises:
      ValueError: naming the bad or missing key.
    """
    unknown = set(config) - {"inputs", "hidden", "classes"}
    if unknown:
        raise ValueError(f"mlp config: unknown key(s) {sorted(unknown)}")
    try:
        widths = [int(config["inputs"]), *(int(h) for h in config["hidden"]), int(config["classes"])]
    except KeyError as error:
        raise ValueError(f"mlp config: missing key {error.args[0]!r}") from None
    if min(widths) < 1:
        raise ValueError(f"mlp config: widths must be positive, got {widths}")

    def init(key):
        params = []
        for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            scale = jnp.sqrt(2.0 / fan_in)
            weight = scale * jax.random.normal(jax.random.fold_in(key, layer), (fan_in, fan_out), jnp.float32)
            params.append({"w": weight, "b": jnp.zeros((fan_out,), jnp.float32)})
        return params

    def logits(params, x):
        for layer in params[:-1]:
            x = jax.nn.relu(x @ layer["w"] + layer["b"][None, :])
        return x @ params[-1]["w"] + params[-1]["b"][None, :]

    def loss(params, x, y):
        return jnp.mean(cross_entropy(logits(params, x), y))

    def metric(params, x, y):
        return accuracy(logits(params, x), y)

    return Model(init=init, loss=loss, metric=metric, metric_name="accuracy", higher_is_better=True)
