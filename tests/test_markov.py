"""The generated-language LM proxy: fixed, independent splits of Markov sequences; AdamW trains on them."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

import dsl
import proxy_tasks
from proxy_tasks import source_entropies
from proxy_tasks._markov import _dataset, load_markov_dataset
from proxy_tasks._teacher import zipf_log_prior
from proxy_tasks._tune import find_lr_constant, find_wd_constant, with_constant

ROOT = Path(__file__).resolve().parent.parent

SMALL = dict(
    seq_len=8, width=16, depth=1, heads=2, mlp_ratio=2, vocab_size=8, train_size=8192, eval_size=1024
)

# sha256 of SMALL's six arrays (x/y of train, validation, test). A change means other data.
SMALL_SHA256 = "bad83da4ab02d1f0cd02ce88333c1b9bedb805e0f3f5b935923b9b509303ad81"


def _source_table(vocab: int, order: int = 2, seed: int = 0) -> np.ndarray:
    """The source's log-probability table, rebuilt from the documented recipe."""
    source_rng = np.random.default_rng(seed).spawn(4)[0]
    law = zipf_log_prior(vocab, 1.0)
    return np.stack([law[source_rng.permutation(vocab)] for _ in range(vocab**order)])


def test_splits_are_disjoint_fixed_and_shifted():
    data = load_markov_dataset(SMALL)
    assert data.x_train.shape == data.y_train.shape == (8192, 8) and data.x_test.shape == (1024, 8)
    assert data.x_train.dtype == np.int32 and data.x_train.max() == 7 and data.x_train.min() == 0
    # y is x shifted by one token.
    np.testing.assert_array_equal(data.x_val[:, 1:], data.y_val[:, :-1])
    rows = [
        {row.tobytes() for row in np.concatenate([x, y[:, -1:]], 1)}
        for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test))
    ]
    # Independent draws of a language: a likely sequence can recur by chance, as a common phrase
    # does in text, but the held-out splits are not copies of training sequences.
    for held_out in rows[1:]:
        assert len(held_out & rows[0]) < 0.02 * len(held_out), len(held_out & rows[0])
    assert len(rows[1] & rows[2]) < 0.02 * len(rows[1])
    digest = hashlib.sha256()
    for array in (data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test):
        digest.update(array.tobytes())
    assert digest.hexdigest() == SMALL_SHA256
    # Generated afresh (not the cached arrays): the same data.
    _dataset.cache_clear()
    np.testing.assert_array_equal(load_markov_dataset(SMALL).x_test, data.x_test)


def test_transitions_follow_the_source():
    data = load_markov_dataset(SMALL)
    table = _source_table(8)
    tokens = np.concatenate([data.x_train, data.y_train[:, -1:]], axis=1)
    context = tokens[:, :-2] * 8 + tokens[:, 1:-1]
    # Empirical next-token frequencies after the most common context match the table's law.
    common = np.bincount(context.ravel()).argmax()
    following = tokens[:, 2:][context == common]
    frequency = np.bincount(following, minlength=8) / len(following)
    expected = np.exp(table[common])
    assert np.all(
        np.abs(frequency - expected) < 4 * np.sqrt(expected * (1 - expected) / len(following)) + 1e-3
    )


def test_adamw_trains_but_cannot_beat_the_source():
    config = proxy_tasks.TaskConfig(
        name="markov_lm_small", family="markov_lm", size="tiny", steps=300, batch_size=32, model=SMALL
    )
    task = proxy_tasks.build(config)
    adamw = dsl.library.load("adamw")
    result = task.evaluate(with_constant(adamw, find_lr_constant(adamw), 0.01), seed=0)
    assert not result.failed
    # The unigram entropy is what a model that ignores the context can reach at best.
    frequency = np.bincount(task.dataset.y_train.ravel(), minlength=8) / task.dataset.y_train.size
    unigram = -np.sum(frequency * np.log(frequency))
    assert result.metric < unigram - 0.05 and result.test_metric < unigram - 0.05
    # With the full order-2 context the best loss is the source's conditional entropy; the first
    # target has less context, so the best average loss is at least this.
    table = _source_table(8)
    x = task.dataset.x_val
    context = x[:, :-1] * 8 + x[:, 1:]
    entropy = -np.sum(np.exp(table) * table, axis=1)
    assert entropy[context].mean() - 0.05 < result.metric


def test_source_entropies_are_the_samples_loss_floors():
    # A skewed source (low temperature), so that its stationary law is far from uniform.
    skewed = dict(vocab_size=4, order=2, temperature=0.5, seq_len=32, train_size=8192, eval_size=16)
    data = load_markov_dataset(skewed)
    # Windows start from uniform contexts; by the 10th token the chain has forgotten them.
    tokens = np.concatenate([data.x_train, data.y_train[:, -1:]], axis=1)[:, 10:]
    unigram, given_previous, given_two = source_entropies(skewed)

    def plug_in(context, following):  # empirical conditional entropy from counts
        counts = np.zeros((context.max() + 1, 4))
        np.add.at(counts, (context.ravel(), following.ravel()), 1)
        joint = counts / counts.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = joint * np.log(joint / joint.sum(axis=1, keepdims=True))
        return -np.nansum(terms)

    following = tokens[:, 2:]
    assert abs(plug_in(np.zeros_like(following), following) - unigram) < 0.005
    assert abs(plug_in(tokens[:, 1:-1], following) - given_previous) < 0.005
    assert abs(plug_in(tokens[:, :-2] * 4 + tokens[:, 1:-1], following) - given_two) < 0.005
    assert unigram > given_previous > given_two


def test_source_entropy_by_hand():
    # Two tokens, order 1: every context's law is a permutation of Zipf(1) = (2/3, 1/3).
    config = dict(vocab_size=2, order=1, seq_len=4)
    expected = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert math.isclose(source_entropies(config)[1], expected, rel_tol=1e-9)
    # At a high temperature every law is uniform: log(vocab) whatever the context.
    hot = source_entropies(dict(vocab_size=5, order=2, temperature=1e6, seq_len=4))
    assert np.allclose(hot, math.log(5), atol=1e-6)


def test_unigram_zipf_skews_every_context_by_hand():
    # Two tokens, order 1, unigram_zipf 1: each context's law (2/3, 1/3) in some order is
    # multiplied by Zipf(1) in token order, (2/3, 1/3), and renormalized. A context whose law
    # favours token 0 gives (4/9, 1/9) / (5/9) = (4/5, 1/5); one favouring token 1,
    # (2/9, 2/9) -> (1/2, 1/2).
    config = dict(vocab_size=2, order=1, seq_len=4, unigram_zipf=1.0)
    favours_zero = _source_table(2, order=1)[:, 0] > _source_table(2, order=1)[:, 1]
    to_zero = np.where(favours_zero, 4 / 5, 1 / 2)  # P(next = 0 | context)

    def h(p):
        return -(p * math.log(p) + (1 - p) * math.log(1 - p))

    # Two-state chain: P(0 -> 1) = 1 - to_zero[0], P(1 -> 0) = to_zero[1].
    stationary_zero = to_zero[1] / (1 - to_zero[0] + to_zero[1])
    expected = stationary_zero * h(to_zero[0]) + (1 - stationary_zero) * h(to_zero[1])
    assert math.isclose(source_entropies(config)[1], expected, rel_tol=1e-9)
    # Without it both contexts' laws are (2/3, 1/3) up to order: h(2/3) whatever the chain.
    assert math.isclose(source_entropies({**config, "unigram_zipf": 0.0})[1], h(2 / 3), rel_tol=1e-9)


def test_unigram_zipf_makes_low_token_ids_frequent():
    flat = load_markov_dataset(dict(SMALL, vocab_size=16, temperature=0.5)).y_train
    skewed = load_markov_dataset(dict(SMALL, vocab_size=16, temperature=0.5, unigram_zipf=1.0)).y_train
    share_of_first_quarter = [np.mean(tokens < 4) for tokens in (flat, skewed)]
    # Near a quarter without the skew; Zipf(1) alone would give its four first tokens 61%.
    assert abs(share_of_first_quarter[0] - 0.25) < 0.06
    assert share_of_first_quarter[1] > 0.4


def test_the_sharp_language_is_learnt_past_the_one_token_floor():
    # markov_sharp_a's claim (docs/proxy_design.md, section 11): within its 300 steps the model
    # learns to use the token before the last, so its loss ends well below what a model that
    # sees one token can reach (markov_lm_a's runs end on that floor).
    task = proxy_tasks.get("markov_sharp_a")
    unigram, one_token, source = source_entropies(task.config.model)
    adamw = dsl.library.load("adamw")
    result = task.evaluate(with_constant(adamw, find_lr_constant(adamw), 0.01), seed=3)
    assert source < result.test_metric < one_token - 0.2


def test_markov_long_a_is_the_task_the_screen_measured():
    # docs/proxy_design.md, section 14: T600 was screened as markov_sharp_a's variant with
    # steps=600 (scripts/proxy_cost.variant_config). The registered task must be that task:
    # the same model and language, twice the steps, a pool of 2 x steps x batch sequences,
    # and the same run as the screen's tuned Lion on test seed 3.
    sharp, long = proxy_tasks.config("markov_sharp_a"), proxy_tasks.config("markov_long_a")
    assert long.steps == 2 * sharp.steps and long.batch_size == sharp.batch_size
    assert {k: v for k, v in long.model.items() if k != "train_size"} == sharp.model
    assert long.model["train_size"] == 2 * long.steps * long.batch_size
    screened = json.loads((ROOT / "docs/proxy_design_data/screen_t600_momentum/lion.json").read_text())
    lion = dsl.library.load("lion")
    lion = with_constant(lion, find_lr_constant(lion), screened["lr"])
    lion = with_constant(lion, find_wd_constant(lion), screened["weight_decay"])
    result = proxy_tasks.get("markov_long_a").evaluate(lion, seed=screened["eval_seeds"][0])
    assert math.isclose(result.test_metric, screened["test"][0], abs_tol=1e-4)
