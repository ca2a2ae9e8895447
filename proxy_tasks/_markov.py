"""A causal Transformer LM on a procedurally generated language: a random order-k Markov source.

The source is fixed by ``data_seed``: for each of the ``vocab_size ** order`` contexts, the
next-token law is a Zipf(``zipf``) law over a random permutation of the vocabulary, divided
by ``temperature`` in log space, then times a Zipf(``unigram_zipf``) law in token order
(0, the default, leaves it out): with it, some tokens are frequent and most are rare in
every context, as in real text. Sequences of ``seq_len + 1`` tokens start from uniformly
drawn context tokens; ``x`` is the first ``seq_len`` tokens, ``y`` the next-token targets.
The model is ``proxy_tasks._charlm.make_charlm`` over this vocabulary; fitness is minus the
validation log perplexity. Unlike the character corpus, the data never run out: the
training pool is a fresh sample (``train_size`` sequences, larger than steps x batch), and
the best possible loss is the source's entropy rate, not zero.

Everything comes from ``numpy.random.default_rng(data_seed)``: the source, then the test,
validation and training samples, each from its own child generator (fixed, independent).
Designed in docs/proxy_design.md.
"""

from __future__ import annotations

import functools

import numpy as np

from ._charlm import make_charlm
from ._task import Dataset, Model
from ._teacher import zipf_log_prior

MARKOV_DEFAULTS = {
    "vocab_size": 16,
    "order": 2,
    "zipf": 1.0,
    "temperature": 1.0,
    "unigram_zipf": 0.0,
    "train_size": 65_536,
    "eval_size": 2048,
    "data_seed": 0,
}
"""Data keys; the model keys are ``_charlm.CHARLM_DEFAULTS``' (``vocab_size`` is shared)."""

MARKOV_SIZES = {
    # One block of width 16 on 16-token windows, batch 64, 300 steps: 0.67-0.69 CPU-s per
    # interpreted evaluation, over the search budget of ~0.3 s (docs/proxy_design.md).
    "a": dict(seq_len=16, width=16, depth=1, heads=2, mlp_ratio=4, steps=300, batch_size=64),
    # Width 32, two blocks, twice the batch: ~12x A's training FLOPs.
    "b": dict(
        seq_len=16, width=32, depth=2, heads=2, mlp_ratio=4, steps=300, batch_size=128, train_size=131_072
    ),
    # Width 64, two blocks, batch 256, 400 steps: ~113x A's training FLOPs.
    "c": dict(
        seq_len=16, width=64, depth=2, heads=4, mlp_ratio=4, steps=400, batch_size=256, train_size=262_144
    ),
}

# The same model sizes on a sharper language (temperature 0.5) in 8-token windows: every run
# learns to use the token before the last, which markov_lm's never do within 300 steps (its
# losses stop at the one-token floor), so optimizers differ in how fast they learn context,
# as in a real LM's training run. Tuned Lion beats tuned AdamW, both single-beta ablations and
# sign descent by > 2 SE at A (docs/proxy_design.md, section 11). A: ~0.3 CPU-s per evaluation.
SHARP_LANGUAGE = dict(temperature=0.5, seq_len=8)
MARKOV_SHARP_SIZES = {size: {**config, **SHARP_LANGUAGE} for size, config in MARKOV_SIZES.items()}


def _twice_the_steps(config: dict) -> dict:
    """``config`` at twice the steps, its pool at least 2 x steps x batch sequences."""
    steps = 2 * config["steps"]
    pool = max(config.get("train_size", MARKOV_DEFAULTS["train_size"]), 2 * steps * config["batch_size"])
    return {**config, "steps": steps, "train_size": pool}


# markov_sharp at twice the steps (A: 600, ~0.5 CPU-s per evaluation). Tuned Lion is first of
# seven there: ahead of AdamW, both single-beta ablations, sign descent and heavy-ball momentum
# by > 5 SE, and of Nesterov momentum by 1.8 SE over 15 test seeds; its seed-to-seed noise is a
# tenth of markov_sharp_a's (docs/proxy_design.md, sections 11, 14 and 16).
MARKOV_LONG_SIZES = {size: _twice_the_steps(config) for size, config in MARKOV_SHARP_SIZES.items()}


def _split(config: dict) -> tuple[dict, dict]:
    data = {**MARKOV_DEFAULTS, **{k: v for k, v in config.items() if k in MARKOV_DEFAULTS}}
    model = {k: v for k, v in config.items() if k not in MARKOV_DEFAULTS or k == "vocab_size"}
    model["vocab_size"] = data["vocab_size"]
    return data, model


def _sample(table: np.ndarray, rng: np.random.Generator, size: int, length: int, order: int) -> np.ndarray:
    vocab = table.shape[1]
    tokens = np.empty((size, order + length), np.int32)
    tokens[:, :order] = rng.integers(0, vocab, (size, order))
    for position in range(order, order + length):
        context = np.zeros(size, np.int64)
        for j in range(position - order, position):
            context = context * vocab + tokens[:, j]
        logits = table[context]
        # Gumbel-max: a draw from softmax(logits).
        tokens[:, position] = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    return tokens[:, order:]


def _source_table(data: dict, source_rng: np.random.Generator) -> np.ndarray:
    """Log-probabilities of the next token, one row per context (``vocab ** order`` rows)."""
    vocab, order = data["vocab_size"], data["order"]
    law = zipf_log_prior(vocab, data["zipf"])
    table = np.stack([law[source_rng.permutation(vocab)] for _ in range(vocab**order)]) / data["temperature"]
    if data["unigram_zipf"]:
        # The same skew in every context: token 0 the most frequent, as a real text's "the".
        table = table + zipf_log_prior(vocab, data["unigram_zipf"])
    # Renormalized after the temperature: each row is then a distribution again.
    return table - np.logaddexp.reduce(table, axis=1, keepdims=True)


@functools.cache
def _dataset(frozen_data: tuple, seq_len: int) -> Dataset:
    data = dict(frozen_data)
    order = data["order"]
    source_rng, test_rng, validation_rng, train_rng = np.random.default_rng(data["data_seed"]).spawn(4)
    table = _source_table(data, source_rng)
    arrays = []
    for rng, size in (
        (train_rng, data["train_size"]),
        (validation_rng, data["eval_size"]),
        (test_rng, data["eval_size"]),
    ):
        tokens = _sample(table, rng, size, seq_len + 1, order)
        arrays += [np.ascontiguousarray(tokens[:, :-1]), np.ascontiguousarray(tokens[:, 1:])]
    for array in arrays:
        array.setflags(write=False)
    return Dataset(*arrays)


def load_markov_dataset(config: dict) -> Dataset:
    """The fixed training pool and validation / test samples of ``config`` (cached, read-only)."""
    data, model = _split(config)
    unknown = sorted(set(data) - set(MARKOV_DEFAULTS))
    if unknown:
        raise ValueError(f"markov config: unknown key(s) {unknown}")
    return _dataset(tuple(sorted(data.items())), int(model.get("seq_len", 16)))


def make_markov_lm(config: dict) -> Model:
    """``make_charlm`` over the source's vocabulary (the data keys are dropped)."""
    _, model = _split(config)
    return make_charlm(model)


def source_entropies(config: dict) -> list[float]:
    """Entropy rates of the source in nats, seeing the last k tokens, for k = 0 .. order.

    The loss floors of a model that uses only the last k tokens of context, under the
    chain's stationary distribution: k = 0 is the unigram entropy, k = order the source's
    own entropy rate (the best any model can do away from a window's first tokens).
    """
    data, _ = _split(config)
    vocab, order = data["vocab_size"], data["order"]
    table = _source_table(data, np.random.default_rng(data["data_seed"]).spawn(4)[0])
    law = np.exp(table)  # law[context, next], the context's tokens oldest first, in base vocab
    contexts = vocab**order
    # Transition between overlapping contexts: (t1..tk) -> (t2..tk, next).
    transition = np.zeros((contexts, contexts))
    shifted = (np.arange(contexts)[:, None] * vocab) % contexts + np.arange(vocab)[None, :]
    np.add.at(transition, (np.repeat(np.arange(contexts), vocab), shifted.ravel()), law.ravel())
    values, vectors = np.linalg.eig(transition.T)
    stationary = np.abs(np.real(vectors[:, np.argmax(np.real(values))]))
    stationary /= stationary.sum()
    joint = stationary[:, None] * law  # P(context, next)
    entropies = []
    for seen in range(order + 1):
        # Keep the last `seen` tokens of the context: its index modulo vocab ** seen.
        kept = np.zeros((vocab**seen, vocab))
        np.add.at(kept, np.arange(contexts) % vocab**seen, joint)
        conditional = kept / kept.sum(axis=1, keepdims=True)
        entropies.append(float(-np.sum(kept * np.log(conditional))))
    return entropies
