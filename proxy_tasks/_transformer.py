"""Transformer building blocks shared by the ViT and the character LM.

Plain JAX over nested dicts of float32 arrays (no module library), so a params pytree
flattens to a fixed, readable list of arrays: the optimizer programs see one array per
weight matrix, bias or LayerNorm vector. Blocks are pre-LayerNorm:
``x = x + attention(layer_norm(x)); x = x + mlp(layer_norm(x))``; a block with an MLP
width of 0 (``mlp_ratio`` 0) is attention only and has no MLP parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

Params = dict[str, Any]

LAYER_NORM_EPSILON = 1e-5


# ----------------------------------------------------------------------------- init
# A model's init first builds a spec (a pytree of Normal / Constant leaves), then
# ``materialize`` fills it from ONE normal draw: one threefry computation instead of one
# per array, which cuts the compile time of a jitted training loop by seconds.


@dataclass(frozen=True)
class Normal:
    """An array ~ N(0, std^2)."""

    shape: tuple[int, ...]
    std: float


@dataclass(frozen=True)
class Constant:
    """An array filled with ``value``."""

    shape: tuple[int, ...]
    value: float


def _is_spec_leaf(node: Any) -> bool:
    return isinstance(node, (Normal, Constant))


def materialize(key: jax.Array, spec: Any) -> Any:
    """The float32 params pytree described by ``spec`` (same structure), from ``key``."""
    leaves, treedef = jax.tree_util.tree_flatten(spec, is_leaf=_is_spec_leaf)
    total = sum(math.prod(leaf.shape) for leaf in leaves if isinstance(leaf, Normal))
    noise = jax.random.normal(key, (total,), jnp.float32)
    arrays, offset = [], 0
    for leaf in leaves:
        if isinstance(leaf, Normal):
            size = math.prod(leaf.shape)
            arrays.append(leaf.std * noise[offset : offset + size].reshape(leaf.shape))
            offset += size
        else:
            arrays.append(jnp.full(leaf.shape, leaf.value, jnp.float32))
    return treedef.unflatten(arrays)


def dense_spec(fan_in: int, fan_out: int, scale: float = 1.0) -> Params:
    """A dense layer: ``kernel`` ~ N(0, scale^2 / fan_in), ``bias`` zeros."""
    return {"kernel": Normal((fan_in, fan_out), scale / fan_in**0.5), "bias": Constant((fan_out,), 0.0)}


def zeros_dense_spec(fan_in: int, fan_out: int) -> Params:
    """A dense layer initialised to zero (output heads: uniform predictions at init)."""
    return {"kernel": Constant((fan_in, fan_out), 0.0), "bias": Constant((fan_out,), 0.0)}


def leading_ones(vector: jax.Array, ndim: int) -> jax.Array:
    """``vector`` reshaped to ``ndim`` dimensions (explicit broadcasting: the tests run
    with implicit rank promotion disabled)."""
    return vector.reshape((1,) * (ndim - vector.ndim) + vector.shape)


def dense(params: Params, x: jax.Array) -> jax.Array:
    return x @ params["kernel"] + leading_ones(params["bias"], x.ndim)


def layer_norm_spec(width: int) -> Params:
    return {"scale": Constant((width,), 1.0), "bias": Constant((width,), 0.0)}


def layer_norm(params: Params, x: jax.Array) -> jax.Array:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    variance = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    normed = (x - mean) * jax.lax.rsqrt(variance + LAYER_NORM_EPSILON)
    return normed * leading_ones(params["scale"], x.ndim) + leading_ones(params["bias"], x.ndim)


def block_spec(width: int, mlp_width: int, depth: int) -> Params:
    """One pre-LayerNorm block (attention only when ``mlp_width`` is 0). Residual output
    projections are scaled down by ``1/sqrt(2*depth)`` (GPT-2 style) so deeper stacks start
    near the identity."""
    residual_scale = (2.0 * depth) ** -0.5
    spec = {
        "attention_norm": layer_norm_spec(width),
        "qkv": dense_spec(width, 3 * width),
        "attention_out": dense_spec(width, width, residual_scale),
    }
    if mlp_width:
        spec["mlp_norm"] = layer_norm_spec(width)
        spec["mlp_in"] = dense_spec(width, mlp_width)
        spec["mlp_out"] = dense_spec(mlp_width, width, residual_scale)
    return spec


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
    if "mlp_in" not in params:  # an attention-only block (mlp_ratio 0)
        return x
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
    for key in ("width", "depth", "heads"):
        if not (isinstance(merged[key], int) and merged[key] > 0):
            raise ValueError(f"{family} config: {key} must be a positive int, got {merged[key]!r}")
    if not (isinstance(merged["mlp_ratio"], int) and merged["mlp_ratio"] >= 0):
        raise ValueError(
            f"{family} config: mlp_ratio must be an int >= 0 (0: no MLP), got {merged['mlp_ratio']!r}"
        )
    return merged


# Keys a size dict carries for the training loop beside the model keys.
TRAINING_KEYS = {"steps", "batch_size"}
