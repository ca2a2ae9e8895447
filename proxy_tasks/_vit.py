"""A small vision transformer for scikit-learn's 8x8 handwritten digits.

Patch embedding (non-overlapping ``patch_size`` squares, one linear map), a learned
position embedding, ``depth`` pre-LayerNorm blocks of multi-head self-attention and a
GELU MLP, a final LayerNorm, mean pooling (or a learned CLS token) and a linear head
initialised to zero, so the loss at initialisation is exactly ln(10).

Inputs are float32 images ``[batch, 8, 8]`` or flattened ``[batch, 64]`` (reshaped here),
already scaled by the data loader; labels are int32 class ids. The metric is accuracy.

``VIT_SIZES`` are the funnel sizes: B is about 10x the training compute of A (steps x
forward-backward FLOPs), C about 100x; ``training_flops`` computes the ratio.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._losses import accuracy, cross_entropy
from ._task import Model
from ._transformer import (
    TRAINING_KEYS,
    Normal,
    block,
    block_forward_macs,
    block_name,
    block_spec,
    check_config,
    dense,
    dense_spec,
    layer_norm,
    layer_norm_spec,
    materialize,
    zeros_dense_spec,
)

VIT_DEFAULTS = {
    "image_size": 8,
    "patch_size": 2,
    "width": 32,
    "depth": 1,
    "heads": 2,
    "mlp_ratio": 2,
    "pool": "mean",
    "num_classes": 10,
}

VIT_SIZES = {
    # 4 tokens of 4x4 pixels, one block: the search proxy.
    "a": dict(patch_size=4, width=32, depth=1, heads=2, mlp_ratio=2, steps=300, batch_size=64),
    # Twice the width and depth of A on the same 4x4 patches, a third more steps: 10x A's
    # training FLOPs. The earlier B (16 tokens of 2x2 pixels, two blocks of width 32) was
    # worse than A for every optimizer, AdamW re-tuned on B included. Keeping A's 4x4
    # patches and growing the model instead, AdamW tuned on each size (seeds 0-1) scored
    # 0.980 test accuracy on seeds 3-5 against A's 0.966; docs/noise.md has the 10-seed check.
    "b": dict(patch_size=4, width=64, depth=2, heads=4, mlp_ratio=2, steps=400, batch_size=64),
    # Twice B's width, a larger batch (Lion's claimed regime) and more steps on the same
    # patches: ~98x A's training FLOPs.
    "c": dict(patch_size=4, width=128, depth=2, heads=4, mlp_ratio=2, steps=500, batch_size=128),
}


def vit_config(config: dict) -> dict:
    """The full model config: defaults overridden by ``config`` (checked)."""
    merged = check_config(config, VIT_DEFAULTS, TRAINING_KEYS, "vit")
    if merged["image_size"] % merged["patch_size"]:
        raise ValueError(
            f"vit config: image_size {merged['image_size']} is not divisible by patch_size {merged['patch_size']}"
        )
    if merged["pool"] not in ("mean", "cls"):
        raise ValueError(f"vit config: pool must be 'mean' or 'cls', got {merged['pool']!r}")
    return merged


def _token_count(c: dict) -> int:
    return (c["image_size"] // c["patch_size"]) ** 2 + (c["pool"] == "cls")


def forward_flops(config: dict) -> int:
    """Forward FLOPs (2 x multiply-accumulates) of the model for one image."""
    c = vit_config(config)
    tokens = _token_count(c)
    patches = (c["image_size"] // c["patch_size"]) ** 2
    macs = patches * c["patch_size"] ** 2 * c["width"]
    macs += c["depth"] * block_forward_macs(tokens, c["width"], c["mlp_ratio"] * c["width"])
    macs += c["width"] * c["num_classes"]
    return 2 * macs


def training_flops(size: dict) -> int:
    """Approximate FLOPs of a whole training run: steps x batch x 3 x forward."""
    return size["steps"] * size["batch_size"] * 3 * forward_flops(size)


def _patchify(images: jax.Array, image_size: int, patch_size: int) -> jax.Array:
    """[batch, H, W] (or [batch, H*W]) -> [batch, patches, patch_size**2]."""
    batch = images.shape[0]
    grid = image_size // patch_size
    x = images.reshape(batch, grid, patch_size, grid, patch_size)
    return x.transpose(0, 1, 3, 2, 4).reshape(batch, grid * grid, patch_size * patch_size)


def vit_logits(params: dict, images: jax.Array, config: dict) -> jax.Array:
    """Class logits ``[batch, num_classes]`` for images ``[batch, 8, 8]`` or ``[batch, 64]``."""
    c = vit_config(config)
    x = dense(params["patch_embed"], _patchify(images, c["image_size"], c["patch_size"]))
    if c["pool"] == "cls":
        cls = jnp.broadcast_to(params["cls"], (x.shape[0], 1, c["width"]))
        x = jnp.concatenate([cls, x], axis=1)
    x = x + params["position"][None]
    for i in range(c["depth"]):
        x = block(params[block_name(i)], x, c["heads"], causal=False)
    x = layer_norm(params["final_norm"], x)
    pooled = x[:, 0] if c["pool"] == "cls" else jnp.mean(x, axis=1)
    return dense(params["head"], pooled)


def make_vit(config: dict) -> Model:
    """A ViT classifier ``Model`` for the digits.

    Args:
      config: model keys of ``VIT_DEFAULTS`` (any subset); ``steps`` and ``batch_size``
        may be present (a size dict) and are ignored here.

    Raises:
      ValueError: for an unknown key or an inconsistent value, naming it.
    """
    c = vit_config(config)
    width, depth = c["width"], c["depth"]
    patch_dim = c["patch_size"] ** 2
    tokens = _token_count(c)

    spec = {
        "patch_embed": dense_spec(patch_dim, width),
        "position": Normal((tokens, width), 0.02),
        "final_norm": layer_norm_spec(width),
        "head": zeros_dense_spec(width, c["num_classes"]),
    }
    if c["pool"] == "cls":
        spec["cls"] = Normal((width,), 0.02)
    for i in range(depth):
        spec[block_name(i)] = block_spec(width, c["mlp_ratio"] * width, depth)

    def init(key: jax.Array) -> dict:
        return materialize(key, spec)

    def loss(params: dict, images: jax.Array, labels: jax.Array) -> jax.Array:
        return jnp.mean(cross_entropy(vit_logits(params, images, c), labels))

    def metric(params: dict, images: jax.Array, labels: jax.Array) -> jax.Array:
        return accuracy(vit_logits(params, images, c), labels)

    return Model(init=init, loss=loss, metric=metric, metric_name="accuracy", higher_is_better=True)
