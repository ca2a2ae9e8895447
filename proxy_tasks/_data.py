"""The handwritten digits of scikit-learn (bundled, so offline), with a fixed three-way split."""

from __future__ import annotations

import functools

import numpy as np

from ._task import Dataset

DIGITS_COUNT = 1797
DIGITS_TEST_SIZE = 300
DIGITS_VALIDATION_SIZE = 300
"""Held-out examples; the other 1,197 of the 1,797 digits are for training."""

DIGITS_SPLIT_SEED = 0


@functools.cache
def digits_split_indices() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices ``(train, validation, test)`` into scikit-learn's 1,797 digits.

    One permutation from ``numpy.random.default_rng(DIGITS_SPLIT_SEED)``: its first 300
    entries are the test set, the next 300 the validation set, the remaining 1,197 the
    training set. The search selects on validation; test is only for reports.
    """
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(DIGITS_COUNT)
    test = order[:DIGITS_TEST_SIZE]
    validation = order[DIGITS_TEST_SIZE : DIGITS_TEST_SIZE + DIGITS_VALIDATION_SIZE]
    train = order[DIGITS_TEST_SIZE + DIGITS_VALIDATION_SIZE :]
    for indices in (train, validation, test):
        indices.setflags(write=False)
    return train, validation, test


@functools.cache
def load_digits_dataset() -> Dataset:
    """scikit-learn's 8x8 handwritten digits, split once and for all.

    Inputs are float32 ``[n, 64]`` (the 8x8 image row by row), scaled from 0..16 to
    0..1; labels are int32 in 0..9. The split is ``digits_split_indices()``: 1,197
    training, 300 validation and 300 test examples.

    Returns:
      The ``Dataset`` (arrays are read-only; the same object on every call).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    if len(x) != DIGITS_COUNT:
        raise RuntimeError(f"scikit-learn's digits have {len(x)} images, expected {DIGITS_COUNT}")
    train, validation, test = digits_split_indices()
    arrays = [x[train], y[train], x[validation], y[validation], x[test], y[test]]
    for array in arrays:
        array.setflags(write=False)
    return Dataset(*arrays)
