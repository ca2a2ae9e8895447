"""The search configuration: YAML loaded into frozen, documented dataclasses.

Every key is checked: unknown keys, wrong types and bad values raise ``ConfigError``
naming the key path and the expected form, e.g.
``search.tournament_size: expected an int >= 2 and < search.population_size (1000), got 1``.
Missing keys take the defaults below; ``configs/default.yaml`` writes them all out.

``load_yaml`` reads any of the project's YAML files safely (a size limit, an alias bomb and
a duplicate key refused before the data is built) and is shared with the other configs.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._mutation import MUTATION_KINDS

MODES = ("evolution", "constants_only", "random")
BACKENDS = ("ray", "inprocess")


# What a file may hold: a config is a few hundred YAML nodes; these limits are far above
# that and far below what would exhaust memory (an alias bomb expands exponentially).
MAX_YAML_BYTES = 1 << 20
MAX_YAML_NODES = 100_000

# An error quotes a value this short: a huge list or an expanded alias would be a huge line.
_QUOTE = reprlib.Repr()
_QUOTE.maxstring = _QUOTE.maxother = 80
_QUOTE.maxlist = _QUOTE.maxdict = _QUOTE.maxtuple = _QUOTE.maxset = 6
_QUOTE.maxlevel = 3
_MAX_QUOTE_CHARS = 200


class ConfigError(ValueError):
    """A bad configuration: ``path: expected ..., got ...`` (the value quoted short)."""

    def __init__(self, path: str, expected: str, got: Any):
        self.path = path
        self.expected = expected
        self.got = got
        super().__init__(f"{path}: expected {expected}, got {quote(got)}")


class _Described(str):
    """A ``got`` that is a description, quoted as it is (``got line 7``, not ``got 'line 7'``)."""

    def __repr__(self) -> str:
        return str(self)


def quote(value: Any) -> str:
    """A short repr of ``value`` for an error message: long strings and containers elided."""
    text = _QUOTE.repr(value)
    if len(text) > _MAX_QUOTE_CHARS:
        text = text[: _MAX_QUOTE_CHARS - 3] + "..."
    return text


def _spec(default: Any, expected: str, check: Callable[[Any], bool], doc: str) -> Any:
    return field(default=default, metadata={"expected": expected, "check": check, "doc": doc})


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return (isinstance(x, (int, float)) and not isinstance(x, bool)) and math.isfinite(x)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda x: x is None or check(x)


def _positive_int(x: Any) -> bool:
    return _is_int(x) and x >= 1


def _nonempty_str(x: Any) -> bool:
    return isinstance(x, str) and bool(x)


def _is_seed_list(x: Any) -> bool:
    return (
        isinstance(x, (list, tuple))
        and bool(x)
        and all(_is_int(s) and s >= 0 for s in x)
        and len(set(x)) == len(x)
    )


@dataclass(frozen=True)
class StallSection:
    """Stop trainings that have not started to learn (``proxy_tasks.StallRule``); main task only."""

    check: float | None = _spec(
        None,
        "null or a number in (0, 1)",
        _optional(lambda x: _is_number(x) and 0 < x < 1),
        "fraction of the training steps after which a run that has not learned stops (null: never)",
    )
    window: float = _spec(
        0.05,
        "a number in (0, 1)",
        lambda x: _is_number(x) and 0 < x < 1,
        "fraction of the steps, just before the check, whose mean training loss is compared",
    )
    min_drop: float = _spec(
        0.0005,
        "a number > 0",
        lambda x: _is_number(x) and x > 0,
        "the relative fall below the untrained model's loss on the same minibatches a run must exceed",
    )

    def __post_init__(self):
        if self.check is not None and self.window > self.check:
            raise ConfigError("task.stall.window", f"at most task.stall.check ({self.check})", self.window)

    @property
    def rule(self):
        """The ``proxy_tasks.StallRule``, or None when ``check`` is null."""
        if self.check is None:
            return None
        import proxy_tasks  # late: the search config is read without JAX where it can be

        return proxy_tasks.StallRule(self.check, self.window, self.min_drop)


@dataclass(frozen=True)
class TaskSection:
    """The proxy task that scores candidates."""

    name: str = _spec("mlp_digits_a", "a proxy task name (string)", _nonempty_str, "proxy task registry name")
    seeds: tuple = _spec(
        (0,),
        "a non-empty list of distinct ints >= 0",
        lambda x: _is_seed_list(x),
        "training seeds, the same for every candidate; fitness is the mean over them "
        "(task.seed: N is short for task.seeds: [N])",
    )
    stall: StallSection = field(default_factory=StallSection)

    def __post_init__(self):
        object.__setattr__(self, "seeds", tuple(self.seeds))


@dataclass(frozen=True)
class SearchSection:
    """Regularized evolution and its baselines."""

    mode: str = _spec(
        "evolution",
        f"one of {', '.join(MODES)}",
        lambda x: x in MODES,
        "evolution (the method); constants_only (only constants mutate); random (random programs)",
    )
    initial_program: str = _spec(
        "adamw_paper", "a library program name or a program file path", _nonempty_str, "the warm start"
    )
    population_size: int = _spec(1000, "an int >= 3", lambda x: _is_int(x) and x >= 3, "P")
    tournament_size: int = _spec(
        2, "an int >= 2 and < search.population_size", lambda x: _is_int(x) and x >= 2, "T < P"
    )
    parallel_searches: int = _spec(
        1, "an int >= 1", _positive_int, "independent populations, all started from the initial program"
    )
    restart_after: int | None = _spec(
        None,
        "null or an int >= 1",
        _optional(_positive_int),
        "refill a population with the best program after this many individuals without improvement",
    )
    random_max_length: int = _spec(
        20, "an int >= 1", _positive_int, "random mode: lengths are drawn uniformly from 1..this"
    )
    update_scales_with_lr: bool = _spec(
        False,
        "true or false",
        lambda x: isinstance(x, bool),
        "only programs whose update is proportional to lr (the schedule) are bred and trained",
    )
    parsimony_tolerance: float = _spec(
        0.0,
        "a number >= 0",
        lambda x: _is_number(x) and x >= 0,
        "a tournament's winner is the sampled member with the fewest live statements among those "
        "within this much fitness of the sample's fittest (0: the fittest)",
    )


@dataclass(frozen=True)
class MutationSection:
    """How a child is made from its parent (see ``search._mutation``)."""

    weights: dict = _spec(
        None,
        f"a mapping from {', '.join(MUTATION_KINDS)} to numbers >= 0, not all 0",
        lambda x: (
            isinstance(x, dict)
            and set(x) <= set(MUTATION_KINDS)
            and all(_is_number(v) and v >= 0 for v in x.values())
            and any(v > 0 for v in x.values())
        ),
        "relative weights; missing kinds weigh 0",
    )
    max_length: int = _spec(30, "an int >= 1", _positive_int, "statements a program may have")
    constant_probability: float = _spec(
        0.2,
        "a number in [0, 1]",
        lambda x: _is_number(x) and 0 <= x <= 1,
        "chance a new argument is a constant",
    )
    constant_reset_probability: float = _spec(
        0.5,
        "a number in [0, 1]",
        lambda x: _is_number(x) and 0 <= x <= 1,
        "chance a constant is redrawn from N(0,1) rather than scaled by 2^a",
    )

    def __post_init__(self):
        if self.weights is None:  # the paper: insert, delete, modify, uniformly
            object.__setattr__(self, "weights", {"insert": 1.0, "delete": 1.0, "modify_argument": 1.0})


@dataclass(frozen=True)
class BudgetSection:
    """When the run stops (the first budget reached; at least one must be set)."""

    programs: int | None = _spec(
        None, "null or an int >= 1", _optional(_positive_int), "valid children, cache hits included"
    )
    evaluations: int | None = _spec(
        None, "null or an int >= 1", _optional(_positive_int), "trainings (cache misses)"
    )
    wall_seconds: float | None = _spec(
        None,
        "null or a number > 0",
        _optional(lambda x: _is_number(x) and x > 0),
        "wall time, summed over resumes",
    )


@dataclass(frozen=True)
class MetaValidationSection:
    """Evaluate the current best on a larger task every ``every`` evaluations."""

    task: str | None = _spec(None, "null or a proxy task name", _optional(_nonempty_str), "null disables it")
    every: int = _spec(100, "an int >= 1", _positive_int, "evaluations between two meta-validations")
    seeds: tuple = _spec(
        (0,),
        "a non-empty list of distinct ints >= 0",
        lambda x: _is_seed_list(x),
        "training seeds of the meta-validation task; its figures are the means over them",
    )

    def __post_init__(self):
        object.__setattr__(self, "seeds", tuple(self.seeds))


@dataclass(frozen=True)
class WorkersSection:
    """Where candidates are trained."""

    backend: str = _spec("ray", f"one of {', '.join(BACKENDS)}", lambda x: x in BACKENDS, "ray or inprocess")
    count: int | None = _spec(
        None, "null or an int >= 1", _optional(_positive_int), "Ray workers; null: one per CPU"
    )
    address: str | None = _spec(
        None,
        "null or a Ray address",
        _optional(_nonempty_str),
        "join this Ray cluster; null starts a local one",
    )
    in_flight_per_worker: int = _spec(
        2, "an int >= 1", _positive_int, "candidates queued per Ray worker (1: the in-process order)"
    )
    gpus_per_worker: float = _spec(
        0, "a number >= 0", lambda x: _is_number(x) and x >= 0, "GPUs per Ray worker; 0 trains on the CPU"
    )


@dataclass(frozen=True)
class RunSection:
    """Run directory behaviour."""

    checkpoint_every: int = _spec(50, "an int >= 1", _positive_int, "individuals between two checkpoints")


@dataclass(frozen=True)
class Config:
    """A whole search run."""

    seed: int = _spec(0, "an int >= 0", lambda x: _is_int(x) and x >= 0, "seeds the search's Generator")
    task: TaskSection = field(default_factory=TaskSection)
    search: SearchSection = field(default_factory=SearchSection)
    mutation: MutationSection = field(default_factory=MutationSection)
    budget: BudgetSection = field(default_factory=BudgetSection)
    meta_validation: MetaValidationSection = field(default_factory=MetaValidationSection)
    workers: WorkersSection = field(default_factory=WorkersSection)
    run: RunSection = field(default_factory=RunSection)
    funnel: str | None = _spec(
        None,
        "null or a funnel config file path",
        _optional(_nonempty_str),
        "run this funnel (symdisc funnel) on the run when the search ends",
    )


def _build(cls: type, data: Any, path: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path or "<top level>", "a mapping of keys", data)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            where = f"{path}.{key}" if path else str(key)
            raise ConfigError(where, f"one of the keys {', '.join(fields)}", key)
    values = {}
    for name, f in fields.items():
        where = f"{path}.{name}" if path else name
        if dataclasses.is_dataclass(
            f.default_factory if f.default_factory is not dataclasses.MISSING else None
        ):
            values[name] = _build(f.default_factory, data.get(name), where)
            continue
        if name not in data:
            continue
        value = data[name]
        if not f.metadata["check"](value):
            raise ConfigError(where, f.metadata["expected"], value)
        if _is_int(value) and f.type.startswith("float"):  # annotations are strings here
            value = float(value)
        if isinstance(value, dict):
            value = {k: float(v) for k, v in value.items()}
        values[name] = value
    return cls(**values)


def config_from_dict(data: Any) -> Config:
    """Validate ``data`` (parsed YAML) into a ``Config``.

    Raises:
      ConfigError: naming the key path and the expected form.
    """
    config = _build(Config, _task_seed_shorthand(data), "")
    search = config.search
    if search.tournament_size >= search.population_size:
        raise ConfigError(
            "search.tournament_size",
            f"an int >= 2 and < search.population_size ({search.population_size})",
            search.tournament_size,
        )
    _check_names(config)
    budget = config.budget
    if budget.programs is None and budget.evaluations is None and budget.wall_seconds is None:
        raise ConfigError("budget", "at least one of programs, evaluations, wall_seconds", None)
    return config


def _task_seed_shorthand(data: Any) -> Any:
    """``task.seed: N`` (one seed, the older form) becomes ``task.seeds: [N]``."""
    if not isinstance(data, dict) or not isinstance(data.get("task"), dict) or "seed" not in data["task"]:
        return data
    task = dict(data["task"])
    seed = task.pop("seed")
    if "seeds" in task:
        raise ConfigError(
            "task.seed", "not given together with task.seeds (task.seed: N is short for seeds: [N])", seed
        )
    if not (_is_int(seed) and seed >= 0):
        raise ConfigError("task.seed", "an int >= 0", seed)
    return {**data, "task": {**task, "seeds": [seed]}}


def _check_names(config: Config) -> None:
    """Task names exist in the registry; the initial program loads and type-checks."""
    import proxy_tasks
    from dsl import ProgramError, update_scales_with_lr
    from dsl.library import load_program

    known = proxy_tasks.names()
    for path, name in (
        ("task.name", config.task.name),
        ("meta_validation.task", config.meta_validation.task),
    ):
        if name is not None and name not in known:
            raise ConfigError(path, f"a proxy task name ({', '.join(known)})", name)
    try:
        initial = load_program(config.search.initial_program)
        initial.kinds  # noqa: B018 (type-checks)
    except ProgramError as error:
        raise ConfigError(
            "search.initial_program",
            f"a library program name or a valid program file ({error})",
            config.search.initial_program,
        ) from None
    if config.search.update_scales_with_lr and not update_scales_with_lr(initial):
        raise ConfigError(
            "search.initial_program",
            "a program whose update is proportional to lr (search.update_scales_with_lr is true)",
            config.search.initial_program,
        )


def load_yaml(path: str | Path) -> Any:
    """Read one YAML document from ``path`` safely and return its data (a dict for a config).

    Before anything is built it refuses a file over ``MAX_YAML_BYTES``, a document that
    would expand (aliases counted at every use) to more than ``MAX_YAML_NODES`` nodes, and
    a mapping that repeats a key (YAML would silently keep the last). Any of the project's
    YAML configs is read through this.

    Raises:
      ConfigError: naming the file (and the key path and line for a repeated key).
      OSError: if the file cannot be read.
    """
    path = Path(path)
    with open(path, "rb") as file:
        raw = file.read(MAX_YAML_BYTES + 1)
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(
            str(path), f"a YAML file of at most {MAX_YAML_BYTES} bytes", _Described("a larger one")
        )
    try:
        text = raw.decode("utf-8")
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                return None
            try:
                nodes = _expanded_size(root)
            except ValueError as error:
                raise ConfigError(
                    str(path), "a YAML document without recursive aliases", _Described(str(error))
                ) from None
            if nodes > MAX_YAML_NODES:
                raise ConfigError(
                    str(path),
                    f"a YAML document of at most {MAX_YAML_NODES} nodes with its aliases expanded",
                    _Described(f"{nodes} nodes (nested aliases?)"),
                )
            _check_unique_keys(root, path.name)
            return loader.construct_document(root)
        finally:
            loader.dispose()
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(str(path), "valid YAML", str(error).splitlines()[0]) from None
    except RecursionError:  # the YAML composer recurses once per nesting level
        raise ConfigError(str(path), "valid YAML", _Described("values nested too deeply")) from None


def _expanded_size(root: yaml.Node) -> int:
    """Nodes in ``root`` with every alias expanded, counted without expanding (memoized by node).

    Raises:
      ValueError: for an alias inside its own anchor (a value that contains itself).
    """
    sizes: dict[int, int] = {}
    entered: set[int] = set()
    stack = [(root, False)]
    while stack:  # iterative post-order: a deeply nested document must not hit the recursion limit
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if children_done:
            sizes[id(node)] = min(1 + sum(sizes[id(child)] for child in children), MAX_YAML_NODES + 1)
            continue
        if id(node) in entered:  # reached again below itself
            raise ValueError(f"an alias at line {node.start_mark.line + 1} inside its own anchor")
        entered.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_unique_keys(root: yaml.Node, file_name: str) -> None:
    """Raise ``ConfigError`` for a mapping that repeats a scalar key (each node checked once)."""
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node.value))
        if not isinstance(node, yaml.MappingNode):
            continue
        first_line: dict[str, int] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                stack.append((value, path))
                continue
            where = f"{path}.{key.value}" if path else key.value
            line = key.start_mark.line + 1
            if key.value in first_line:
                raise ConfigError(
                    f"{file_name}: {where}",
                    "each key once in a mapping",
                    _Described(f"it again at line {line} (first at line {first_line[key.value]})"),
                )
            first_line[key.value] = line
            stack.append((value, where))


def load_config(path: str | Path) -> Config:
    """Read (with ``load_yaml``) and validate a YAML config file.

    Raises:
      ConfigError: for a bad key or value; the message starts with the file name.
      OSError: if the file cannot be read.
    """
    path = Path(path)
    data = load_yaml(path)
    try:
        return config_from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{path.name}: {error.path}", error.expected, error.got) from None


def config_to_dict(config: Config) -> dict:
    """The resolved config as plain data (what ``config.yaml`` in a run directory holds)."""
    return dataclasses.asdict(config)


def dump_config(config: Config) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)
