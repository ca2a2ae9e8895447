"""An offline character-level corpus for the language-model proxy tasks.

The corpus is text every Python install carries, so nothing is downloaded:

* ``"pydoc_topics"`` (the default): the Python Language Reference topics that ``pydoc``
  serves offline, the ``topics`` dict of the standard-library module
  ``pydoc_data.topics``: English technical prose with some code and grammar snippets.
  Topics are concatenated in sorted key order, separated by a newline. With Python
  3.11.7 (this project's environment) it is 79 topics, 465,048 characters (372,038 for
  training, 46,505 for validation and 46,505 for test with the default 10% + 10% split).
* ``"sklearn_descr"``: the dataset descriptions scikit-learn ships as reStructuredText
  (``sklearn/datasets/descr/*.rst``), concatenated in sorted file-name order; with
  scikit-learn 1.9.1 that is 14 files, 43,067 characters (too small for sizes B and C).

Both depend on the installed version (the text changes between releases), so compare
fitness numbers only on one environment; ``corpus_text(source)`` gives the exact text.

Characters map to a fixed vocabulary ``VOCAB`` of 97 symbols: newline, the 95 printable
ASCII characters (space to ``~``) and ``UNKNOWN`` for everything else (curly quotes,
dashes, tabs...). The text is cut into three disjoint stretches that cover it, in this
order: training, validation (``validation_fraction`` of the characters) and test (the last
``test_fraction``); see ``split_bounds``. The search selects on validation; the test
stretch is only for reports. Each split is cut into windows of ``seq_len + 1`` characters taken every
``stride`` characters; ``x`` is a window's first ``seq_len`` ids and ``y`` the next-character
targets (the window shifted by one). Both are int32 ``[windows, seq_len]``.
"""

from __future__ import annotations

import functools
import string
from pathlib import Path

import numpy as np

from ._task import Dataset

UNKNOWN = "\N{REPLACEMENT CHARACTER}"
# Newline, the 95 printable ASCII characters from space to "~", then the unknown symbol.
VOCAB = "\n" + "".join(chr(code) for code in range(32, 127)) + UNKNOWN
assert set(string.printable) - set(VOCAB) == set("\t\r\x0b\x0c")

SOURCES = ("pydoc_topics", "sklearn_descr")

_CHAR_TO_ID = {char: index for index, char in enumerate(VOCAB)}
_UNKNOWN_ID = _CHAR_TO_ID[UNKNOWN]


def encode(text: str) -> np.ndarray:
    """Character ids (int32) of ``text``; characters outside ``VOCAB`` become ``UNKNOWN``."""
    return np.fromiter((_CHAR_TO_ID.get(char, _UNKNOWN_ID) for char in text), np.int32, len(text))


def decode(ids) -> str:
    """The text of a sequence of character ids."""
    return "".join(VOCAB[int(i)] for i in np.asarray(ids).reshape(-1))


@functools.cache
def corpus_text(source: str = "pydoc_topics") -> str:
    """The raw text of corpus ``source`` (one of ``SOURCES``), deterministic per install."""
    if source == "pydoc_topics":
        from pydoc_data.topics import topics

        return "\n".join(topics[name] for name in sorted(topics))
    if source == "sklearn_descr":
        import sklearn.datasets

        descr_dir = Path(sklearn.datasets.__file__).parent / "descr"
        files = sorted(descr_dir.glob("*.rst"))
        if not files:
            raise FileNotFoundError(f"no .rst dataset descriptions in {descr_dir}")
        return "\n".join(file.read_text(encoding="utf-8") for file in files)
    raise ValueError(f"unknown corpus source {source!r}; known: {', '.join(SOURCES)}")


def _windows(ids: np.ndarray, seq_len: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    starts = np.arange(0, len(ids) - seq_len, stride)
    if len(starts) == 0:
        raise ValueError(f"a split of {len(ids)} characters is too short for seq_len {seq_len}")
    windows = ids[starts[:, None] + np.arange(seq_len + 1)]
    return windows[:, :-1], windows[:, 1:]


def split_bounds(length: int, validation_fraction: float, test_fraction: float) -> tuple[int, int]:
    """``(train_end, validation_end)``: characters ``[0, train_end)`` are for training,
    ``[train_end, validation_end)`` for validation and ``[validation_end, length)`` for test.
    """
    validation_end = int(round(length * (1.0 - test_fraction)))
    train_end = int(round(length * (1.0 - test_fraction - validation_fraction)))
    return train_end, validation_end


@functools.cache
def load_char_corpus(
    seq_len: int = 32,
    source: str = "pydoc_topics",
    validation_fraction: float = 0.1,
    stride: int | None = None,
    test_fraction: float = 0.1,
) -> tuple[Dataset, str]:
    """The character corpus as next-character windows, split into train, validation and test.

    Args:
      seq_len: characters per example.
      source: which offline text, one of ``SOURCES``.
      validation_fraction: the fraction of the text, just before the test stretch, used
        for validation.
      stride: characters between window starts; ``None`` means ``seq_len``
        (non-overlapping inputs).
      test_fraction: the trailing fraction of the text held out for test.

    Returns:
      ``(dataset, vocab)``: int32 ``x``/``y`` arrays of shape ``[windows, seq_len]``
      (read-only, shared between calls) and the vocabulary string (id = index).

    Raises:
      ValueError: for a bad argument, naming it.
    """
    if not (isinstance(seq_len, int) and seq_len > 0):
        raise ValueError(f"seq_len must be a positive int, got {seq_len!r}")
    for name, fraction in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {fraction!r}")
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"validation_fraction + test_fraction must be below 1, got {validation_fraction + test_fraction!r}"
        )
    stride = seq_len if stride is None else stride
    if not (isinstance(stride, int) and stride > 0):
        raise ValueError(f"stride must be a positive int, got {stride!r}")
    ids = encode(corpus_text(source))
    train_end, validation_end = split_bounds(len(ids), validation_fraction, test_fraction)
    # Windows never cross a boundary: each split's windows read only its own stretch.
    x_train, y_train = _windows(ids[:train_end], seq_len, stride)
    x_val, y_val = _windows(ids[train_end:validation_end], seq_len, stride)
    x_test, y_test = _windows(ids[validation_end:], seq_len, stride)
    arrays = [np.ascontiguousarray(a) for a in (x_train, y_train, x_val, y_val, x_test, y_test)]
    for array in arrays:
        array.flags.writeable = False
    return Dataset(*arrays), VOCAB
