"""A student MLP learning a fixed random teacher's noisy, Zipf-distributed labels.

The data are generated, not downloaded: inputs ``x ~ N(0, I)``; a fixed random ReLU MLP
(the *teacher*, wider than the student) gives logits, rescaled to a standard deviation of
``1 / temperature``, plus the log of a Zipf prior over the classes (class ``k`` has prior
weight ``1 / k**zipf``: a few frequent classes and a long tail of rare ones, like tokens);
the label is a draw from the softmax of those logits, so it is noisy and the best possible
loss is the teacher's conditional entropy, not zero. The student is
``proxy_tasks._mlp.make_mlp`` scored by its cross-entropy in nats (``log_perplexity``,
lower is better).

Why this regime (docs/proxy_design.md): the model is capacity-limited and the labels are
noisy, as in language modelling, and the training pool is large enough that thousands of
steps at a large batch see almost only fresh examples, while one step stays cheap enough
for the search's budget. Everything comes from ``numpy.random.default_rng(data_seed)``:
the teacher, then the test, validation and training samples, each from its own child
generator, so the splits are fixed, independent draws (disjoint with probability one;
``tests/test_teacher.py`` checks it).
"""

from __future__ import annotations

import functools

import numpy as np

from ._mlp import make_mlp
from ._task import Dataset, Model

TEACHER_DEFAULTS = {
    "inputs": 16,
    "hidden": [32, 32],
    "classes": 16,
    "teacher_hidden": [64, 64],
    "zipf": 1.0,
    "temperature": 1.0,
    "train_size": 1 << 20,
    "eval_size": 16_384,
    "data_seed": 0,
}
"""Model keys (``inputs``, ``hidden``, ``classes``) and data keys (the rest)."""

TEACHER_SIZES = {
    # The search proxy: 2,128 params, batch 1,024, 500 steps. The closest setting to Lion
    # winning that fits the budget (docs/proxy_design.md); the first choice, batch 256 and
    # 2,000 steps, ranked Lion third of four.
    "a": dict(hidden=[32, 32], steps=500, batch_size=1024),
    # A 2.5x wider student, twice the batch and twice the steps: ~12x A's training FLOPs.
    "b": dict(hidden=[64, 64], steps=1000, batch_size=2048),
    # Student 128-128 (~10x A's params), batch 4,096, 1,500 steps: ~117x A's training FLOPs.
    "c": dict(hidden=[128, 128], steps=1500, batch_size=4096),
}

_MODEL_KEYS = ("inputs", "hidden", "classes")
_TRAINING_KEYS = ("steps", "batch_size")


def teacher_config(config: dict) -> dict:
    """The full config: ``TEACHER_DEFAULTS`` overridden by ``config`` (checked)."""
    unknown = sorted(set(config) - set(TEACHER_DEFAULTS) - set(_TRAINING_KEYS))
    if unknown:
        raise ValueError(f"teacher config: unknown key(s) {unknown}; known: {sorted(TEACHER_DEFAULTS)}")
    merged = {**TEACHER_DEFAULTS, **{k: v for k, v in config.items() if k not in _TRAINING_KEYS}}
    for key in ("inputs", "classes", "train_size", "eval_size"):
        if not (isinstance(merged[key], int) and merged[key] > 0):
            raise ValueError(f"teacher config: {key} must be a positive int, got {merged[key]!r}")
    for key in ("zipf", "temperature"):
        if not merged[key] >= 0 or (key == "temperature" and merged[key] == 0):
            raise ValueError(f"teacher config: {key} must be positive, got {merged[key]!r}")
    return merged


def zipf_log_prior(classes: int, exponent: float) -> np.ndarray:
    """``log p_k`` with ``p_k`` proportional to ``1 / k**exponent``, k = 1..classes (float64)."""
    weights = np.arange(1, classes + 1, dtype=np.float64) ** -exponent
    return np.log(weights / weights.sum())


def _relu_mlp(weights: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    for index, weight in enumerate(weights):
        x = x @ weight
        if index < len(weights) - 1:
            x = np.maximum(x, 0.0)
    return x


def teacher_logits_fn(config: dict, rng: np.random.Generator):
    """The teacher ``x -> logits`` (float64), drawn from ``rng``, rescaled on a probe."""
    widths = [config["inputs"], *config["teacher_hidden"], config["classes"]]
    weights = [
        rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True)
    ]
    probe = _relu_mlp(weights, rng.standard_normal((4096, config["inputs"])))
    scale = 1.0 / (probe.std() * config["temperature"])
    prior = zipf_log_prior(config["classes"], config["zipf"])
    return lambda x: scale * _relu_mlp(weights, x) + prior


def _sample(logits_fn, rng: np.random.Generator, size: int, inputs: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((size, inputs), dtype=np.float32)
    labels = np.empty(size, np.int32)
    chunk = 1 << 16  # bounds the float64 logits' memory
    for start in range(0, size, chunk):
        logits = logits_fn(x[start : start + chunk].astype(np.float64))
        # Gumbel-max: the argmax of logits + Gumbel noise is a draw from softmax(logits).
        labels[start : start + chunk] = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    return x, labels


@functools.cache
def _dataset(frozen_config: tuple) -> Dataset:
    config = dict(frozen_config)
    config["hidden"], config["teacher_hidden"] = list(config["hidden"]), list(config["teacher_hidden"])
    teacher_rng, test_rng, validation_rng, train_rng = np.random.default_rng(config["data_seed"]).spawn(4)
    logits_fn = teacher_logits_fn(config, teacher_rng)
    inputs = config["inputs"]
    x_test, y_test = _sample(logits_fn, test_rng, config["eval_size"], inputs)
    x_val, y_val = _sample(logits_fn, validation_rng, config["eval_size"], inputs)
    x_train, y_train = _sample(logits_fn, train_rng, config["train_size"], inputs)
    arrays = [x_train, y_train, x_val, y_val, x_test, y_test]
    for array in arrays:
        array.setflags(write=False)
    return Dataset(*arrays)


def frozen_config(config: dict) -> tuple:
    """``teacher_config(config)`` as a hashable, sorted tuple of items (lists become tuples)."""
    merged = teacher_config(config)
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(merged.items()))


def load_teacher_dataset(config: dict) -> Dataset:
    """The fixed training pool and validation / test samples of ``config`` (cached, read-only).

    Each split has its own child generator of ``data_seed``, so changing ``train_size``
    changes neither held-out sample.
    """
    return _dataset(frozen_config(config))


def make_teacher_student(config: dict) -> Model:
    """The student: ``make_mlp`` (He-normal ReLU MLP), its metric the cross-entropy in nats."""
    merged = teacher_config(config)
    mlp = make_mlp({key: merged[key] for key in _MODEL_KEYS})

    # The metric is the loss itself (mean cross-entropy) on a held-out split.
    return Model(
        init=mlp.init, loss=mlp.loss, metric=mlp.loss, metric_name="log_perplexity", higher_is_better=False
    )
