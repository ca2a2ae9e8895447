"""A small causal Transformer language model over characters.

Token embedding plus a learned position embedding, ``depth`` pre-LayerNorm blocks of
causal multi-head self-attention and a GELU MLP, a final LayerNorm and an output layer:
either untied (a separate ``head``, initialised to zero so the loss at initialisation is
exactly ln(vocab_size)) or tied to the token embedding.

Inputs are int32 character ids ``[batch, seq_len]``, targets the next characters, same
shape (see ``_text.load_char_corpus``). The loss is the mean next-character
cross-entropy in nats; the metric is the same on the validation set, the log perplexity
(lower is better).

``CHARLM_SIZES`` are the funnel sizes: B is about 10x the training compute of A (steps
x forward-backward FLOPs), C about 100x; ``training_flops`` computes the ratio.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._losses import cross_entropy
from ._task import Model
from ._text import VOCAB
from ._transformer import (
    TRAINING_KEYS,
    Normal,
    block,
    block_forward_macs,
    block_name,
    block_spec,
    check_config,
    dense,
    layer_norm,
    layer_norm_spec,
    materialize,
    zeros_dense_spec,
)

CHARLM_DEFAULTS = {
    "vocab_size": len(VOCAB),
    "seq_len": 32,
    "width": 32,
    "depth": 1,
    "heads": 2,
    "mlp_ratio": 4,
    "tie_embeddings": False,
}

CHARLM_SIZES = {
    # The search proxy: one narrow block on 16-character windows, 64k training tokens and
    # about 4.7 GFLOP per run.
    "a": dict(seq_len=16, width=32, depth=1, heads=2, mlp_ratio=2, steps=250, batch_size=16),
    # Two blocks, 32-character windows, twice the batch: ~10x A's training FLOPs.
    "b": dict(seq_len=32, width=32, depth=2, heads=2, mlp_ratio=4, steps=250, batch_size=32),
    # Width 64, two blocks, batch 64 (the paper's LM proxy batch): ~100x A's training FLOPs.
    "c": dict(seq_len=32, width=64, depth=2, heads=4, mlp_ratio=4, steps=350, batch_size=64),
}

# Validation examples per chunk in ``metric``, which bounds its memory on large splits.
METRIC_CHUNK = 256


def charlm_config(config: dict) -> dict:
    """The full model config: defaults overridden by ``config`` (checked)."""
    merged = check_config(config, CHARLM_DEFAULTS, TRAINING_KEYS, "charlm")
    for key in ("vocab_size", "seq_len"):
        if not (isinstance(merged[key], int) and merged[key] > 0):
            raise ValueError(f"charlm config: {key} must be a positive int, got {merged[key]!r}")
    if not isinstance(merged["tie_embeddings"], bool):
        raise ValueError(f"charlm config: tie_embeddings must be a bool, got {merged['tie_embeddings']!r}")
    return merged


def forward_flops(config: dict) -> int:
    """Forward FLOPs (2 x multiply-accumulates) of the model for one sequence."""
    c = charlm_config(config)
    tokens, width = c["seq_len"], c["width"]
    macs = c["depth"] * block_forward_macs(tokens, width, c["mlp_ratio"] * width)
    macs += tokens * width * c["vocab_size"]
    return 2 * macs


def training_flops(size: dict) -> int:
    """Approximate FLOPs of a whole training run: steps x batch x 3 x forward."""
    return size["steps"] * size["batch_size"] * 3 * forward_flops(size)


def charlm_logits(params: dict, ids: jax.Array, config: dict) -> jax.Array:
    """Next-character logits ``[batch, tokens, vocab_size]`` for ids ``[batch, tokens]``.

    Position ``t``'s logits depend only on ids ``0..t`` (causal attention).
    """
    c = charlm_config(config)
    if ids.shape[-1] > c["seq_len"]:
        raise ValueError(f"charlm: sequences of {ids.shape[-1]} tokens exceed seq_len {c['seq_len']}")
    x = params["token_embed"][ids] + params["position"][None, : ids.shape[-1]]
    for i in range(c["depth"]):
        x = block(params[block_name(i)], x, c["heads"], causal=True)
    x = layer_norm(params["final_norm"], x)
    if c["tie_embeddings"]:
        return x @ params["token_embed"].T
    return dense(params["head"], x)


def make_charlm(config: dict) -> Model:
    """A causal character LM ``Model``.

    Args:
      config: model keys of ``CHARLM_DEFAULTS`` (any subset); ``steps`` and
        ``batch_size`` may be present (a size dict) and are ignored here.

    Raises:
      ValueError: for an unknown key or an inconsistent value, naming it.
    """
    c = charlm_config(config)
    vocab_size, seq_len, width, depth = (c[k] for k in ("vocab_size", "seq_len", "width", "depth"))

    spec = {
        "token_embed": Normal((vocab_size, width), 0.02),
        "position": Normal((seq_len, width), 0.02),
        "final_norm": layer_norm_spec(width),
    }
    if not c["tie_embeddings"]:
        spec["head"] = zeros_dense_spec(width, vocab_size)
    for i in range(depth):
        spec[block_name(i)] = block_spec(width, c["mlp_ratio"] * width, depth)

    def init(key: jax.Array) -> dict:
        return materialize(key, spec)

    def token_losses(params: dict, ids: jax.Array, targets: jax.Array) -> jax.Array:
        return cross_entropy(charlm_logits(params, ids, c), targets)

    def loss(params: dict, ids: jax.Array, targets: jax.Array) -> jax.Array:
        return jnp.mean(token_losses(params, ids, targets))

    def metric(params: dict, ids: jax.Array, targets: jax.Array) -> jax.Array:
        # Every sequence has the same length, so the mean of per-sequence means is the
        # mean over all tokens.
        per_sequence = jax.lax.map(
            lambda pair: jnp.mean(token_losses(params, pair[0][None], pair[1][None])),
            (ids, targets),
            batch_size=METRIC_CHUNK,
        )
        return jnp.mean(per_sequence)

    return Model(init=init, loss=loss, metric=metric, metric_name="log_perplexity", higher_is_better=False)
