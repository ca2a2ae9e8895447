"""The Lion-rediscovery pipeline's configuration (``configs/rediscover_lion.yaml``), validated.

Three sections: ``pipeline`` (seeds, minutes, baseline methods, output directory),
``search`` (a search config, validated by ``config_from_dict``) and ``funnel`` (a funnel
config, validated by ``funnel_config_from_dict``). A bad value raises ``ConfigError``
naming its key path from the top of the file, e.g. ``pipeline.minutes: expected a number
> 0, got 0`` or ``search.search.population_size: expected an int >= 3, got 1``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._config import (
    Config,
    ConfigError,
    _build,
    _is_int,
    _is_number,
    _nonempty_str,
    _optional,
    _positive_int,
    _spec,
    config_from_dict,
    load_yaml,
)
from ._funnel_config import FunnelConfig, funnel_config_from_dict

BASELINE_METHODS = ("random", "constants_only")
"""Search modes the pipeline runs beside evolution, with the same budget (``search.mode``)."""

WINNER_RULES = ("best", "shortest_within_se")
"""How the funnel's winner is chosen (``pipeline.winner``, ``_rediscovery.funnel_winner``)."""


def _is_methods(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and all(m in BASELINE_METHODS for m in x) and len(set(x)) == len(x)


def _is_seeds(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and all(_is_int(s) and s >= 0 for s in x) and len(set(x)) == len(x)


@dataclass(frozen=True)
class PipelineSection:
    """What the pipeline runs and where it writes."""

    seeds: int = _spec(
        5, "an int >= 1", _positive_int, "independent searches, seeds first_seed .. first_seed + seeds - 1"
    )
    first_seed: int = _spec(
        0, "an int >= 0", lambda x: _is_int(x) and x >= 0, "the first evolution seed (a method's fresh seeds)"
    )
    minutes: float = _spec(
        30.0, "a number > 0", lambda x: _is_number(x) and x > 0, "wall-time budget of each search"
    )
    baselines: tuple = _spec(
        BASELINE_METHODS,
        f"a list of distinct methods from {', '.join(BASELINE_METHODS)}",
        _is_methods,
        "baseline search methods run with the same budget",
    )
    baseline_seeds: tuple = _spec(
        (0,), "a list of distinct ints >= 0", _is_seeds, "the seeds of each baseline method"
    )
    out: str = _spec("runs/rediscover", "a directory path (string)", _nonempty_str, "where everything goes")
    ablation_tolerance: float | None = _spec(
        None,
        "null or a number > 0",
        _optional(lambda x: _is_number(x) and x > 0),
        "null: the verdict judges the probe-simplified winner; a number: the validation fitness a "
        "statement's removal may cost in the paper's ablation step (search._rediscovery_ablation)",
    )
    winner: str = _spec(
        "best",
        f"one of {', '.join(WINNER_RULES)}",
        lambda x: x in WINNER_RULES,
        "best: the best mean at the deepest stage; shortest_within_se: of the programs there "
        "the best does not beat by more than one paired standard error, the fewest live statements "
        "(both on the funnel's select_on fitness)",
    )

    def __post_init__(self):
        object.__setattr__(self, "baselines", tuple(self.baselines))
        object.__setattr__(self, "baseline_seeds", tuple(self.baseline_seeds))


@dataclass(frozen=True)
class RediscoveryConfig:
    """The whole pipeline.

    Attributes:
      pipeline: seeds, minutes, baseline methods and seeds, the output directory.
      search: the search config every run starts from (``run_config`` sets its seed,
        method and wall-time budget).
      funnel: the funnel every run goes through.
    """

    pipeline: PipelineSection = field(default_factory=PipelineSection)
    search: Config = field(default_factory=Config)
    funnel: FunnelConfig = field(default_factory=FunnelConfig)

    def run_config(self, seed: int, mode: str = "evolution") -> Config:
        """The search config of one run: ``seed``, ``mode`` and 60 * minutes of wall time.

        The search section's other budgets (programs, evaluations) stay in force.
        """
        budget = dataclasses.replace(self.search.budget, wall_seconds=60.0 * self.pipeline.minutes)
        return dataclasses.replace(
            self.search,
            seed=seed,
            budget=budget,
            search=dataclasses.replace(self.search.search, mode=mode),
        )


def _prefixed(section: str, error: ConfigError) -> ConfigError:
    path = section if error.path == "<top level>" else f"{section}.{error.path}"
    return ConfigError(path, error.expected, error.got)


def rediscovery_config_from_dict(data: Any, **overrides: Any) -> RediscoveryConfig:
    """Validate ``data`` (parsed YAML) into a ``RediscoveryConfig``.

    Args:
      data: the three sections.
      overrides: values replacing keys of the ``pipeline`` section (the command-line
        options ``--seeds``, ``--first-seed``, ``--minutes``, ``--out``, ``--no-baselines``), validated like
        them; None keeps the file's.

    Raises:
      ConfigError: naming the key path from the top of the file.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("<top level>", "a mapping with the keys pipeline, search, funnel", data)
    for key in data:
        if key not in ("pipeline", "search", "funnel"):
            raise ConfigError(str(key), "one of the keys pipeline, search, funnel", key)
    pipeline_data = data.get("pipeline") or {}
    if isinstance(pipeline_data, dict):
        pipeline_data = {**pipeline_data, **{k: v for k, v in overrides.items() if v is not None}}
    pipeline = _build(PipelineSection, pipeline_data, "pipeline")
    search_data = data.get("search")
    if isinstance(search_data, dict) and isinstance(search_data.get("budget") or {}, dict):
        # the pipeline sets the wall time, so a search section may leave every budget out
        budget = {**(search_data.get("budget") or {}), "wall_seconds": 60.0 * pipeline.minutes}
        search_data = {**search_data, "budget": budget}
    try:
        search = config_from_dict(search_data)
    except ConfigError as error:
        raise _prefixed("search", error) from None
    if search.funnel is not None:
        raise ConfigError("search.funnel", "null (the pipeline runs its own funnel section)", search.funnel)
    try:
        funnel = funnel_config_from_dict(data.get("funnel"))
        from ._funnel import stage_tasks  # the stages must fit the search's task and seeds

        stage_tasks(funnel, search.task.name, list(search.task.seeds))
    except ConfigError as error:
        raise _prefixed("funnel", error) from None
    return RediscoveryConfig(pipeline, search, funnel)


def load_rediscovery_config(path: str | Path, **overrides: Any) -> RediscoveryConfig:
    """Read (with ``load_yaml``) and validate the pipeline's YAML file.

    Raises:
      ConfigError: for a bad key or value, or a file that cannot be read; the message
        starts with the file name.
    """
    path = Path(path)
    try:
        data = load_yaml(path)
    except OSError as error:
        raise ConfigError(str(path), "a readable pipeline config file", error.strerror) from None
    try:
        return rediscovery_config_from_dict(data, **overrides)
    except ConfigError as error:
        raise ConfigError(f"{path.name}: {error.path}", error.expected, error.got) from None
