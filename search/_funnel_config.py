"""The funnel configuration: YAML loaded into frozen dataclasses, validated like the search's.

Unknown keys, wrong types and bad values raise ``ConfigError`` naming the key path, e.g.
``stages[1].seeds: expected a list of at least 2 distinct ints >= 0, got [3]``.
Missing keys take the defaults below; ``configs/funnel.yaml`` writes them all out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._config import (
    ConfigError,
    WorkersSection,
    _build,
    _is_int,
    _is_number,
    _nonempty_str,
    _optional,
    _spec,
    load_yaml,
)

DEFAULT_STAGE_SEEDS = (1, 2, 3, 4, 5)
SELECT_ON = ("validation", "test")


def _is_seed_list(minimum: int):
    def check(x: Any) -> bool:
        return (
            isinstance(x, (list, tuple))
            and len(x) >= minimum
            and all(_is_int(s) and s >= 0 for s in x)
            and len(set(x)) == len(x)
        )

    return check


def _is_step_range(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and len(x) == 2 and all(_is_int(k) for k in x) and x[0] <= x[1]


def _sizes() -> tuple[str, ...]:
    import proxy_tasks

    return tuple(sorted({proxy_tasks.config(name).size for name in proxy_tasks.names()}))


@dataclass(frozen=True)
class CandidatesSection:
    """Which programs of the runs enter the funnel."""

    top_k: int = _spec(
        10, "an int >= 1", lambda x: _is_int(x) and x >= 1, "best distinct programs by search fitness"
    )
    island_best: bool = _spec(
        True, "true or false", lambda x: isinstance(x, bool), "also the best program of every island"
    )
    shortest_within: float | None = _spec(
        None,
        "null or a number >= 0",
        _optional(lambda x: _is_number(x) and x >= 0),
        "also each run's program with the fewest live statements among those within this much "
        "search fitness of the run's best (null: none)",
    )
    follow_best: bool = _spec(
        True,
        "true or false",
        lambda x: isinstance(x, bool),
        "evaluate the best program by search fitness at every stage, promoted or not",
    )


@dataclass(frozen=True)
class StageSection:
    """One stage: a task, its seeds, its promotion rule."""

    name: str = _spec("A", "a non-empty string", _nonempty_str, "the stage's name in the report")
    task: str = _spec(
        "a",
        "a proxy task name, or a size (tiny, a, b, c) of the search task's family",
        _nonempty_str,
        "where the stage trains",
    )
    seeds: tuple = _spec(
        DEFAULT_STAGE_SEEDS,
        "a list of at least 2 distinct ints >= 0",
        _is_seed_list(2),
        "training seeds; every program and baseline of the stage runs on each",
    )
    standard_errors: float = _spec(
        2.0,
        "a number >= 0",
        lambda x: _is_number(x) and x >= 0,
        "promoted when the difference to the reference (on select_on) exceeds this many standard errors",
    )
    promote_top: int = _spec(
        5, "an int >= 1", lambda x: _is_int(x) and x >= 1, "at most this many go on to the next stage"
    )


@dataclass(frozen=True)
class BaselinesSection:
    """Tuned library programs evaluated beside the candidates at every stage."""

    reference: str = _spec("adamw", "a library program name", _nonempty_str, "the promotion rule's baseline")
    others: tuple = _spec(
        ("lion",),
        "a list of library program names",
        lambda x: isinstance(x, (list, tuple)) and all(_nonempty_str(n) for n in x),
        "shown beside it",
    )


@dataclass(frozen=True)
class TuningSection:
    """How the baselines are tuned on each stage's task (``proxy_tasks.tune``'s grid, in its steps)."""

    seeds: tuple = _spec(
        (6, 7, 8),
        "a list of at least 1 distinct ints >= 0",
        _is_seed_list(1),
        "seeds of every grid point; the mean validation fitness picks the point",
    )
    lr_steps: tuple = _spec(
        (-4, 4),
        "a list [low, high] of ints, low <= high",
        _is_step_range,
        "learning-rate multipliers 10^(k/2) for k = low..high (10^-2 .. 10^2)",
    )
    wd_steps: tuple = _spec(
        (-2, 2),
        "a list [low, high] of ints, low <= high",
        _is_step_range,
        "weight-decay multipliers 10^(k/2) for k = low..high (10^-1 .. 10^1)",
    )
    max_extension: int = _spec(
        4,
        "an int >= 0",
        lambda x: _is_int(x) and x >= 0,
        "grid steps the grid may grow past each end while the best point is on its edge",
    )
    cache_dir: str | None = _spec(
        None,
        "null or a directory path",
        lambda x: x is None or _nonempty_str(x),
        "tuned baselines kept for later funnels (null: ~/.cache/symdisc/tuned)",
    )


@dataclass(frozen=True)
class FunnelConfig:
    """A whole funnel."""

    candidates: CandidatesSection = field(default_factory=CandidatesSection)
    stages: tuple = _spec(
        None, "a non-empty list of stage mappings", lambda x: isinstance(x, list) and bool(x), "A, B, C"
    )
    baselines: BaselinesSection = field(default_factory=BaselinesSection)
    tuning: TuningSection = field(default_factory=TuningSection)
    workers: WorkersSection | None = _spec(
        None, "null or a workers mapping", lambda x: x is None or isinstance(x, dict), "null: the run's"
    )
    select_on: str = _spec(
        "validation",
        "validation or test",
        lambda x: x in SELECT_ON,
        "the held-out fitness that promotes programs and picks a pipeline's winner; the report "
        "gives both, and test answers whether a program beats the reference",
    )

    def __post_init__(self):
        if self.stages is None:  # the paper: A (new seeds), B ~10x, C ~100x
            stages = (
                StageSection("A", "a", DEFAULT_STAGE_SEEDS, 2.0, 5),
                StageSection("B", "b", DEFAULT_STAGE_SEEDS, 2.0, 3),
                StageSection("C", "c", DEFAULT_STAGE_SEEDS, 2.0, 3),
            )
            object.__setattr__(self, "stages", stages)


def funnel_config_from_dict(data: Any) -> FunnelConfig:
    """Validate ``data`` (parsed YAML) into a ``FunnelConfig``.

    Raises:
      ConfigError: naming the key path and the expected form.
    """
    stages_data = workers_data = None
    if isinstance(data, dict):  # both are built below (a list of mappings; a section that may be null)
        data = dict(data)
        stages_data = data.pop("stages", None)
        workers_data = data.pop("workers", None)
    config = _build(FunnelConfig, data, "")
    stages = config.stages
    if stages_data is not None:
        if not isinstance(stages_data, list) or not stages_data:
            raise ConfigError("stages", "a non-empty list of stage mappings", stages_data)
        stages = tuple(_build(StageSection, item, f"stages[{i}]") for i, item in enumerate(stages_data))
    sizes = _sizes()
    import proxy_tasks

    names = [stage.name for stage in stages]
    for i, stage in enumerate(stages):
        if stage.task not in sizes and stage.task not in proxy_tasks.names():
            raise ConfigError(
                f"stages[{i}].task", f"a proxy task name or a size ({', '.join(sizes)})", stage.task
            )
        if stage.name in names[:i]:
            raise ConfigError(f"stages[{i}].name", "a name no other stage has", stage.name)
    stages = tuple(dataclasses.replace(s, seeds=tuple(s.seeds)) for s in stages)
    workers = None if workers_data is None else _build(WorkersSection, workers_data, "workers")
    baselines = dataclasses.replace(config.baselines, others=tuple(config.baselines.others))
    _check_baselines(baselines)
    tuning = config.tuning
    tuning = dataclasses.replace(
        tuning,
        seeds=tuple(tuning.seeds),
        lr_steps=tuple(tuning.lr_steps),
        wd_steps=tuple(tuning.wd_steps),
    )
    return dataclasses.replace(config, stages=stages, workers=workers, baselines=baselines, tuning=tuning)


def _check_baselines(baselines: BaselinesSection) -> None:
    """Every baseline is a library program with a learning-rate constant to tune."""
    from dsl import library
    from proxy_tasks import find_lr_constant

    paths = [("baselines.reference", baselines.reference)]
    paths += [(f"baselines.others[{i}]", name) for i, name in enumerate(baselines.others)]
    for path, name in paths:
        if name not in library.names():
            raise ConfigError(path, f"a library program name ({', '.join(library.names())})", name)
        try:
            find_lr_constant(library.load(name))
        except ValueError as error:
            raise ConfigError(path, f"a program that can be tuned ({error})", name) from None


def load_funnel_config(path: str | Path) -> FunnelConfig:
    """Read and validate a funnel YAML file.

    Raises:
      ConfigError: for a bad key or value, or unreadable YAML; the message starts with the file name.
    """
    path = Path(path)
    try:
        data = load_yaml(path)  # the search config's safe loader: size, alias and repeated-key checks
    except OSError as error:
        raise ConfigError(str(path), "a readable funnel config file", error.strerror) from None
    try:
        return funnel_config_from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{path.name}: {error.path}", error.expected, error.got) from None


def funnel_config_to_dict(config: FunnelConfig) -> dict:
    """The resolved config as plain data (lists, not tuples: what YAML and JSON write)."""

    def plain(x):
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        return x

    return plain(dataclasses.asdict(config))


def dump_funnel_config(config: FunnelConfig) -> str:
    return yaml.safe_dump(funnel_config_to_dict(config), sort_keys=False)
