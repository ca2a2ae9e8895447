"""Transformer building blocks shared by the ViT and the character LM.

Plain JAX over nested dicts of float32 arrays (no module library), so a params pytree
flattens to a fixed, readable list of arrays: the optimizer programs see one array per
weight matrix, bias or LayerNorm vector. Blocks are pre-LayerNorm:
``x = x + attention(layer_norm(x)); x = x + mlp(layer_norm(x))``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Params = dict[str, Any]

LAYER_NORM_EPSILON = 1e-5


def dense_init(key: jax.Array, fan_in: int, fan_out: int, scale: float = 1.0) -> Params:
    """A dense layer: ``kernel`` ~ N(0, scale^2 / fan_in), ``bias`` zeros."""
    std = scale / fan_in**0.5
    return {
        "kernel": std * jax.random.normal(key, (fan_in, fan_out), jnp.float32),
        "bias": jnp.zeros((fan_out,), jnp.float32),
    }


def leading_ones(vector: jax.Array, ndim: int) -> jax.Array:
    """``vector`` reshaped to ``ndim`` dimensions (explicit broadcasting: the tests run
    with implicit rank promotion disabled)."""
    return vector.reshape((1,) * (ndim - vector.ndim) + vector.shape)


def dense(params: Params, x: jax.Array) -> jax.Array:
    return x @ params["kernel"] + leading_ones(params["bias"], x.ndim)


def layer_norm_init(width: int) -> Params:
    return {"scale": jnp.ones((width,), jnp.float32), "bias": jnp.zeros((width,), jnp.float32)}


def layer_norm(params: Params, x: jax.Array) -> jax.Array:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    variance = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    normed = (x - mean) * jax.lax.rsqrt(variance + LAYER_NORM_EPSILON)
    return normed * leading_ones(params["scale"], x.ndim) + leading_ones(params["bias"], x.ndim)


def block_init(key: jax.Array, width: int, mlp_width: int, depth: int) -> Params:
    """One pre-LayerNorm block. Residual output projections are scaled down by
    ``1/sqrt(2*depth)`` (GPT-2 style) so deeper stacks start near the identity."""
    k_qkv, k_out, k_up, k_down = jax.random.split(key, 4)
    residual_scale = (2.0 * depth) ** -0.5
    return {
        "attention_norm": layer_norm_init(width),
        "qkv": dense_init(k_qkv, width, 3 * width),
        "attention_out": dense_init(k_out, width, width, residual_scale),
        "mlp_norm": layer_norm_init(width),
        "mlp_in": dense_init(k_up, width, mlp_width),
        "mlp_out": dense_init(k_down, mlp_width, width, residual_scale),
    }


def attention(params: Params, x: jax.Array, heads: int, causal: bool) -> jax.Array:
    """Multi-head self-attention over ``x`` [batch, tokens, width]."""
    batch, tokens, width = x.shape
    head_width = width // heads
    qkv = dense(params["qkv"], x).reshape(batch, tokens, 3, heads, head_width)
    query, key, value = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    scores = jnp.einsum("bqhd,bkhd->bhqk", query, key) / jnp.sqrt(jnp.float32(head_width))
    if causal:
        allowed = jnp.tril(jnp.ones((1, 1, tokens, tokens), jnp.bool_))
        # A large finite negative (not -inf) keeps softmax NaN-free.
        scores = jnp.where(allowed, scores, jnp.float32(-1e30))
    weights = jax.nn.softmax(scores, axis=-1)
    mixed = jnp.einsum("bhqk,bkhd->bqhd", weights, value).reshape(batch, tokens, width)
    return dense(params["attention_out"], mixed)


def block(params: Params, x: jax.Array, heads: int, causal: bool) -> jax.Array:
    x = x + attention(params, layer_norm(params["attention_norm"], x), heads, causal)
    hidden = jax.nn.gelu(dense(params["mlp_in"], layer_norm(params["mlp_norm"], x)))
    return x + dense(params["mlp_out"], hidden)


def block_name(index: int) -> str:
    """Zero-padded so the pytree's (sorted-key) flattening order is the layer order."""
    return f"block_{index:02d}"


def block_forward_macs(tokens: int, width: int, mlp_width: int) -> int:
    """Multiply-accumulates of one block's forward pass for one sequence."""
    projections = tokens * width * (3 * width + width + 2 * mlp_width)
    attention_mixing = 2 * tokens * tokens * width
    return projections + attention_mixing


def check_config(config: dict, defaults: dict, allowed_extra: set[str], family: str) -> dict:
    """``defaults`` overridden by ``config``; unknown keys raise naming the key."""
    unknown = sorted(set(config) - set(defaults) - allowed_extra)
    if unknown:
        raise ValueError(f"{family} config: unknown key(s) {unknown}; known: {sorted(defaults)}")
    merged = {**defaults, **{k: v for k, v in config.items() if k in defaults}}
    if merged["width"] % merged["heads"]:
        raise ValueError(
            f"{family} config: width {merged['width']} is not divisible by heads {merged['heads']}"
        )
    for key in ("width", "depth", "heads", "mlp_ratio"):
        if not (isinstance(merged[key], int) and merged[key] > 0):
            raise ValueError(f"{family} config: {key} must be a positive int, got {merged[key]!r}")
    return merged


# Keys a size dict carries for the training loop beside the model keys.
TRAINING_KEYS = {"steps", "batch_size"}
