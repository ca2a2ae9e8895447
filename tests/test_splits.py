"""Held-out test splits: disjoint, fixed, covering the data; ``test_metric`` is measured on them."""

from __future__ import annotations

import hashlib
import math

import jax
import numpy as np
import pytest

import dsl
import proxy_tasks
from proxy_tasks import _charlm, _text
from proxy_tasks._data import digits_split_indices

# sha256 of the train, validation and test row indices (int64, in that order). A change
# here means every recorded fitness was measured on other data.
DIGITS_SPLIT_SHA256 = "452abb124ac6b0cc817f238d1b956b536938f97801d9df3a8eec971fe3d88fc9"


def test_digits_split_is_disjoint_covering_and_pinned():
    train, validation, test = digits_split_indices()
    assert (len(train), len(validation), len(test)) == (1197, 300, 300)
    everything = np.concatenate([train, validation, test])
    np.testing.assert_array_equal(np.sort(everything), np.arange(1797))  # disjoint and covering
    digest = hashlib.sha256()
    for indices in (train, validation, test):
        digest.update(np.asarray(indices, np.int64).tobytes())
    assert digest.hexdigest() == DIGITS_SPLIT_SHA256


def test_digits_dataset_rows_are_the_split_rows():
    from sklearn.datasets import load_digits

    digits = load_digits()
    data = proxy_tasks.load_digits_dataset()
    train, validation, test = digits_split_indices()
    for x, y, indices in (
        (data.x_train, data.y_train, train),
        (data.x_val, data.y_val, validation),
        (data.x_test, data.y_test, test),
    ):
        np.testing.assert_array_equal(x, (digits.data[indices] / 16.0).astype(np.float32))
        np.testing.assert_array_equal(y, digits.target[indices])
        assert x.dtype == np.float32 and y.dtype == np.int32 and not x.flags.writeable
    assert set(data.y_test.tolist()) == set(range(10))


def test_char_split_bounds_are_pinned_and_stretches_cover_the_text():
    # The installed corpus has 465,048 characters (Python 3.11.7); the bounds are pure arithmetic.
    assert _text.split_bounds(465_048, 0.1, 0.1) == (372_038, 418_543)
    ids = _text.encode(_text.corpus_text())
    train_end, validation_end = _text.split_bounds(len(ids), 0.1, 0.1)
    data, _ = _text.load_char_corpus(seq_len=16)
    # Each split's windows are consecutive pieces of its own stretch, in order.
    for x, y, start, end in (
        (data.x_train, data.y_train, 0, train_end),
        (data.x_val, data.y_val, train_end, validation_end),
        (data.x_test, data.y_test, validation_end, len(ids)),
    ):
        np.testing.assert_array_equal(x.reshape(-1), ids[start : start + x.size])
        np.testing.assert_array_equal(y[-1, -1], ids[start + x.size])
        assert start + x.size < end and end - (start + x.size) <= 16  # reads its stretch, nearly all of it


def test_char_split_rejects_fractions_that_leave_no_training_text():
    with pytest.raises(ValueError, match="test_fraction"):
        _text.load_char_corpus(seq_len=16, test_fraction=0.0)
    with pytest.raises(ValueError, match="below 1"):
        _text.load_char_corpus(seq_len=16, validation_fraction=0.5, test_fraction=0.5)


def test_mlp_test_metric_is_the_accuracy_on_the_test_images():
    task = proxy_tasks.get("mlp_digits_tiny")
    result, params = task.train(dsl.library.load("adamw_paper"), seed=1)
    assert result.failure is None

    def numpy_accuracy(x, y):  # an independent forward pass in numpy, float64
        for layer in params[:-1]:
            x = np.maximum(x @ np.asarray(layer["w"], np.float64) + np.asarray(layer["b"]), 0.0)
        logits = x @ np.asarray(params[-1]["w"], np.float64) + np.asarray(params[-1]["b"])
        return float(np.mean(np.argmax(logits, axis=1) == y))

    data = task.dataset
    assert result.test_metric == pytest.approx(numpy_accuracy(data.x_test, data.y_test), abs=1e-6)
    assert result.metric == pytest.approx(numpy_accuracy(data.x_val, data.y_val), abs=1e-6)
    assert result.test_fitness == result.test_metric


@pytest.mark.slow  # compiles a char LM with two metric passes over 46k characters
def test_charlm_test_metric_is_the_log_perplexity_of_the_test_text():
    config = proxy_tasks.TaskConfig(
        name="charlm_test_split",
        family="charlm",
        size="tiny",
        steps=30,
        batch_size=8,
        model={"seq_len": 8, "width": 16, "depth": 1, "heads": 2, "mlp_ratio": 2},
    )
    task = proxy_tasks.build(config)
    result, params = task.train(dsl.library.load("adamw"), seed=0)
    assert result.failure is None

    def numpy_log_perplexity(x, y):
        logits = np.asarray(jax.jit(lambda p, ids: _charlm.charlm_logits(p, ids, config.model))(params, x))
        logits = logits.astype(np.float64)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return float(-np.mean(np.take_along_axis(log_probs, y[..., None], axis=-1)))

    data = task.dataset
    expected = numpy_log_perplexity(data.x_test, data.y_test)
    assert result.test_metric == pytest.approx(expected, rel=1e-5)
    assert result.test_fitness == -result.test_metric
    assert result.metric == pytest.approx(numpy_log_perplexity(data.x_val, data.y_val), rel=1e-5)
    assert abs(result.test_metric - result.metric) > 1e-4  # really two different stretches


def test_failed_run_has_no_test_score():
    task = proxy_tasks.get("mlp_digits_tiny")
    result = task.evaluate(dsl.parse("def train(w, g, m, lr):\n  update = g * -3.0\n  return update, m\n"))
    assert result.failed and result.test_fitness == -math.inf and math.isnan(result.test_metric)
