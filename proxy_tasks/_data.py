"""The handwritten digits of scikit-learn (bundled, so offline), with a fixed split."""

from __future__ import annotations

import functools

import numpy as np

from ._task import Dataset

DIGITS_VALIDATION_SIZE = 397
"""Validation examples; the other 1,400 of the 1,797 digits are for training."""

DIGITS_SPLIT_SEED = 0


@functools.cache
def load_digits_dataset() -> Dataset:
    """scikit-learn's 8x8 handwritten digits, split once and for all.

    Inputs are float32 ``[n, 64]`` (the 8x8 image row by row), scaled from 0..16 to
    0..1; labels are int32 in 0..9. The split is a permutation drawn from
    ``numpy.random.default_rng(0)``: 1,400 training and 397 validation examples.

    Returns:
      The ``Dataset`` (arrays are read-only; the same object on every call).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(x))
    val, train = order[:DIGITS_VALIDATION_SIZE], order[DIGITS_VALIDATION_SIZE:]
    arrays = [x[train], y[train], x[val], y[val]]
    for array in arrays:
        array.setflags(write=False)
    return Dataset(*arrays)
