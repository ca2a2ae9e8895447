"""The teacher-student proxy: fixed, disjoint generated splits, labels drawn from the teacher, AdamW trains."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import dsl
import proxy_tasks
from proxy_tasks._teacher import (
    _dataset,
    frozen_config,
    load_teacher_dataset,
    teacher_config,
    teacher_logits_fn,
)
from proxy_tasks._tune import find_lr_constant, with_constant

# A small instance of the family, fast to generate and train.
SMALL = dict(hidden=[16], train_size=8192, eval_size=2048, classes=8)

# sha256 of SMALL's x_train, y_train, x_val, y_val, x_test, y_test bytes, in that order. A change
# here means the generated data changed and every recorded fitness was measured on other data.
SMALL_SHA256 = "801cbe85fd843762ada75cd0bbc475560a24c9e72ec623bffbcbe5858de07f54"


def _digest(data: proxy_tasks.Dataset) -> str:
    digest = hashlib.sha256()
    for array in (data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def test_splits_are_disjoint_fixed_and_read_only():
    data = load_teacher_dataset(SMALL)
    assert data.x_train.shape == (8192, 16) and data.x_val.shape == data.x_test.shape == (2048, 16)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    rows = [{row.tobytes() for row in x} for x in (data.x_train, data.x_val, data.x_test)]
    assert sum(len(r) for r in rows) == len(set().union(*rows)) == 8192 + 2 * 2048  # no shared row
    assert not any(a.flags.writeable for a in (data.x_train, data.y_train, data.x_test))
    # Regenerated from scratch (not the cached object): the same bytes, and the pinned ones.
    regenerated = _dataset.__wrapped__(frozen_config(SMALL))
    assert _digest(regenerated) == _digest(data) == SMALL_SHA256
    # The held-out samples do not depend on the size of the training pool.
    bigger = load_teacher_dataset({**SMALL, "train_size": 9000})
    np.testing.assert_array_equal(bigger.x_test, data.x_test)
    np.testing.assert_array_equal(bigger.y_val, data.y_val)


def test_labels_are_draws_from_the_teacher():
    config = teacher_config(SMALL)
    data = load_teacher_dataset(SMALL)
    teacher_rng = np.random.default_rng(config["data_seed"]).spawn(4)[0]
    logits = teacher_logits_fn(config, teacher_rng)(data.x_train.astype(np.float64))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    # Class frequencies match the teacher's mean probabilities (within 4 binomial standard errors)...
    frequency = np.bincount(data.y_train, minlength=8) / len(data.y_train)
    expected = probs.mean(axis=0)
    assert np.all(np.abs(frequency - expected) < 4 * np.sqrt(expected * (1 - expected) / len(data.y_train)))
    # ...the Zipf prior makes class 0 the most frequent, and the labels are noisy: the teacher's
    # own most likely class is right far less than always.
    assert frequency.argmax() == 0 and frequency[0] > 2 * frequency[-1]
    assert 0.3 < np.mean(probs.argmax(axis=1) == data.y_train) < 0.9


def test_adamw_trains_but_cannot_beat_the_teacher():
    config = proxy_tasks.TaskConfig(
        name="zipf_teacher_small", family="zipf_teacher", size="tiny", steps=400, batch_size=128, model=SMALL
    )
    task = proxy_tasks.build(config)
    adamw = dsl.library.load("adamw")
    adamw = with_constant(adamw, find_lr_constant(adamw), 0.01)
    result = task.evaluate(adamw, seed=0)
    assert not result.failed and result.steps == 400
    # Better than the best constant prediction (the label marginal's entropy)...
    frequency = np.bincount(task.dataset.y_train, minlength=8) / len(task.dataset.y_train)
    marginal_entropy = -np.sum(frequency * np.log(frequency))
    assert result.metric < marginal_entropy - 0.05 and result.test_metric < marginal_entropy - 0.05
    # ...and not better than the teacher itself: its conditional entropy is the best expected loss.
    teacher_rng = np.random.default_rng(0).spawn(4)[0]
    logits = teacher_logits_fn(teacher_config(SMALL), teacher_rng)(task.dataset.x_val.astype(np.float64))
    logits -= logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    entropy = -np.mean(np.sum(np.exp(log_probs) * log_probs, axis=1))
    assert entropy - 0.05 < result.metric, (entropy, result.metric)


def test_registered_sizes_and_bad_config():
    for size in "abc":
        assert proxy_tasks.config(f"zipf_teacher_{size}").family == "zipf_teacher"
    with pytest.raises(ValueError, match="unknown key"):
        load_teacher_dataset({"widht": 3})
