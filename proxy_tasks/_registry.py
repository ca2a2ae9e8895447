"""The named proxy tasks: ``names()`` and ``get(name)``.

Every family comes in funnel sizes A (the search proxy), B (~10x A's training
compute) and C (~100x); names are ``<family>_<size>``:

* ``mlp_digits_{a,b,c}``: an MLP on scikit-learn's digits (``_mlp.py``, ``_data.py``).
  A: one hidden layer of 64, batch 64, 300 steps (4.8k params); B: hidden 128-128,
  600 steps (~11x A); C: hidden 256-256, batch 128, 900 steps (~108x A).
* ``mlp_digits_tiny``: hidden 16, batch 32, 100 steps (1.2k params): the cheapest
  task, for tests of the search.
* ``vit_digits_{a,b,c}``: a small vision transformer on the same digits (``_vit.py``).
* ``charlm_{a,b,c}``: a character-level Transformer LM (``_charlm.py``, ``_text.py``);
  fitness is minus the validation log-perplexity.
* ``zipf_teacher_{a,b,c}``: an MLP student of a fixed random teacher with noisy,
  Zipf-distributed labels, fresh examples almost every step (``_teacher.py``); fitness is
  minus the validation cross-entropy. Designed in docs/proxy_design.md.
* ``markov_lm_{a,b,c}``: the character LM's Transformer on a generated language (a random
  order-2 Markov source), fresh sequences (``_markov.py``); docs/proxy_design.md.
* ``markov_sharp_{a,b,c}``: the same sizes on a sharper language (temperature 0.5) in 8-token
  windows, which the model learns to use within the run (docs/proxy_design.md, section 11).
* ``markov_long_{a,b,c}``: ``markov_sharp``'s at twice the steps (A: 600), where tuned Lion's
  lead is the widest found and its noise the smallest (docs/proxy_design.md, section 16).

All use the cosine schedule (1.0 decaying to 0) unless a config says otherwise.
Tasks are built on first use and cached (one compilation each).
"""

from __future__ import annotations

import functools
from dataclasses import replace

from ._task import Dataset, ScheduleConfig, StallRule, Task, TaskConfig

MLP_SIZES = {
    "tiny": dict(inputs=64, hidden=[16], classes=10, steps=100, batch_size=32),
    "a": dict(inputs=64, hidden=[64], classes=10, steps=300, batch_size=64),
    "b": dict(inputs=64, hidden=[128, 128], classes=10, steps=600, batch_size=64),
    "c": dict(inputs=64, hidden=[256, 256], classes=10, steps=900, batch_size=128),
}


def _family_configs(family: str, sizes: dict[str, dict]) -> dict[str, TaskConfig]:
    """One ``TaskConfig`` per size: ``steps`` and ``batch_size`` for training, the rest is the model."""
    configs = {}
    for size, size_config in sizes.items():
        model = {k: v for k, v in size_config.items() if k not in ("steps", "batch_size")}
        name = f"{family}_{size}"
        configs[name] = TaskConfig(
            name=name,
            family=family,
            size=size,
            steps=int(size_config["steps"]),
            batch_size=int(size_config["batch_size"]),
            model=model,
        )
    return configs


def _all_configs() -> dict[str, TaskConfig]:
    from ._charlm import CHARLM_SIZES
    from ._markov import MARKOV_LONG_SIZES, MARKOV_SHARP_SIZES, MARKOV_SIZES
    from ._teacher import TEACHER_SIZES
    from ._vit import VIT_SIZES

    configs = _family_configs("mlp_digits", MLP_SIZES)
    configs.update(_family_configs("vit_digits", VIT_SIZES))
    configs.update(_family_configs("charlm", CHARLM_SIZES))
    configs.update(_family_configs("zipf_teacher", TEACHER_SIZES))
    configs.update(_family_configs("markov_lm", MARKOV_SIZES))
    configs.update(_family_configs("markov_sharp", MARKOV_SHARP_SIZES))
    configs.update(_family_configs("markov_long", MARKOV_LONG_SIZES))
    return configs


MARKOV_FAMILIES = ("markov_lm", "markov_sharp", "markov_long")

TASK_CONFIGS: dict[str, TaskConfig] = _all_configs()


def names() -> list[str]:
    """Every registered task name, sorted."""
    return sorted(TASK_CONFIGS)


def config(name: str) -> TaskConfig:
    """The ``TaskConfig`` of task ``name``.

    Raises:
      KeyError: naming the unknown task and listing the known ones.
    """
    try:
        return TASK_CONFIGS[name]
    except KeyError:
        raise KeyError(f"no proxy task {name!r}; known: {', '.join(names())}") from None


def dataset(task_config: TaskConfig) -> Dataset:
    """The (cached, read-only) data a task of this config trains and is scored on."""
    family = task_config.family
    if family in ("mlp_digits", "vit_digits"):
        from ._data import load_digits_dataset

        return load_digits_dataset()
    if family == "charlm":
        from ._charlm import charlm_config
        from ._text import load_char_corpus

        return load_char_corpus(seq_len=charlm_config(task_config.model)["seq_len"])[0]
    if family == "zipf_teacher":
        from ._teacher import load_teacher_dataset

        return load_teacher_dataset(task_config.model)
    if family in MARKOV_FAMILIES:
        from ._markov import load_markov_dataset

        return load_markov_dataset(task_config.model)
    raise ValueError(f"task {task_config.name!r}: unknown family {family!r}")


def build(task_config: TaskConfig) -> Task:
    """A new ``Task`` for any config (e.g. a registered one with another schedule)."""
    data = dataset(task_config)
    family = task_config.family
    if family == "mlp_digits":
        from ._mlp import make_mlp

        return Task(task_config, make_mlp(task_config.model), data)
    if family == "vit_digits":
        from ._vit import make_vit

        return Task(task_config, make_vit(task_config.model), data)
    if family == "zipf_teacher":
        from ._teacher import make_teacher_student

        return Task(task_config, make_teacher_student(task_config.model), data)
    if family in MARKOV_FAMILIES:
        from ._markov import make_markov_lm

        return Task(task_config, make_markov_lm(task_config.model), data)
    from ._charlm import make_charlm

    return Task(task_config, make_charlm(task_config.model), data)


def get(name: str, stall: StallRule | None = None) -> Task:
    """The task called ``name``, built once per process (its compilations are reused).

    ``stall``: a ``StallRule`` that stops runs that have not learned (a separate task,
    compiled on its own, cached like the plain one).

    Raises:
      KeyError: for an unknown name.
    """
    return _built(name, stall)  # one cache key however the call spells it (get(n) is get(n, None))


@functools.cache
def _built(name: str, stall: StallRule | None) -> Task:
    return build(replace(config(name), stall=stall))


def with_schedule(name: str, schedule: ScheduleConfig) -> Task:
    """Task ``name`` with another learning-rate schedule (a new, uncached task)."""
    return build(replace(config(name), schedule=schedule))
