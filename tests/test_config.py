"""Search configs: the shipped YAML files load; bad keys, types and values name the key path."""

from pathlib import Path

import pytest

from search import ConfigError, config_from_dict, load_config, load_yaml
from search._config import MAX_YAML_BYTES

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
BUDGET = {"budget": {"evaluations": 10}}


@pytest.mark.parametrize("name", ["quickstart.yaml", "default.yaml"])
def test_shipped_configs_load(name):
    config = load_config(CONFIGS / name)
    assert config.search.tournament_size < config.search.population_size


def test_default_yaml_is_the_paper_setting():
    config = load_config(CONFIGS / "default.yaml")
    assert (config.search.population_size, config.search.tournament_size) == (1000, 2)
    assert config.search.initial_program == "adamw_paper"
    weights = {k: v for k, v in config.mutation.weights.items() if v > 0}
    assert weights == {"insert": 1.0, "delete": 1.0, "modify_argument": 1.0}


def test_default_yaml_writes_every_key_out():
    """default.yaml documents the full configuration: it sets every field explicitly."""
    import dataclasses

    import yaml

    from search import Config

    data = yaml.safe_load((CONFIGS / "default.yaml").read_text())

    def keys(cls, prefix=""):
        out = set()
        for f in dataclasses.fields(cls):
            if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory):
                out |= keys(f.default_factory, f"{prefix}{f.name}.")
            else:
                out.add(prefix + f.name)
        return out

    def present(d, prefix=""):
        out = set()
        for k, v in d.items():
            if isinstance(v, dict) and k != "weights":
                out |= present(v, f"{prefix}{k}.")
            else:
                out.add(prefix + k)
        return out

    assert keys(Config) == present(data)


def test_missing_keys_take_defaults():
    config = config_from_dict(BUDGET)
    assert config.search.mode == "evolution"
    assert config.mutation.weights == {"insert": 1.0, "delete": 1.0, "modify_argument": 1.0}
    assert config.budget.evaluations == 10


def test_config_is_frozen():
    config = config_from_dict(BUDGET)
    with pytest.raises(AttributeError):
        config.seed = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"search": {"tournament_size": 1}},
            "search.tournament_size: expected an int >= 2 and < search.population_size, got 1",
        ),
        (
            {"search": {"population_size": 5, "tournament_size": 5}},
            "search.tournament_size: expected an int >= 2 and < search.population_size (5), got 5",
        ),
        ({"serch": {}}, "serch: expected one of the keys seed, task, search"),
        ({"search": {"popsize": 3}}, "search.popsize: expected one of the keys mode, initial_program"),
        ({"budget": {"evaluations": "many"}}, "budget.evaluations: expected null or an int >= 1, got 'many'"),
        ({"budget": {"evaluations": 2.5}}, "budget.evaluations: expected null or an int >= 1, got 2.5"),
        ({"budget": {"evaluations": True}}, "budget.evaluations: expected null or an int >= 1, got True"),
        ({"budget": {}}, "budget: expected at least one of programs, evaluations, wall_seconds"),
        (
            {"search": {"mode": "greedy"}},
            "search.mode: expected one of evolution, constants_only, random, got 'greedy'",
        ),
        ({"mutation": {"weights": {"swap": 1}}}, "mutation.weights: expected a mapping from insert, delete"),
        ({"mutation": {"weights": {"insert": 0}}}, "mutation.weights: expected a mapping"),
        ({"mutation": {"weights": {"insert": -1, "delete": 2}}}, "mutation.weights: expected a mapping"),
        (
            {"mutation": {"constant_probability": 1.5}},
            "mutation.constant_probability: expected a number in [0, 1], got 1.5",
        ),
        ({"task": {"name": "imagenet"}}, "task.name: expected a proxy task name ("),
        ({"meta_validation": {"task": "nope"}}, "meta_validation.task: expected a proxy task name ("),
        (
            {"search": {"initial_program": "adamw_typo"}},
            "search.initial_program: expected a library program name",
        ),
        ({"workers": {"backend": "mpi"}}, "workers.backend: expected one of ray, inprocess, got 'mpi'"),
        ({"search": []}, "search: expected a mapping of keys, got []"),
    ],
)
def test_bad_configs_name_the_key_and_the_expected_form(data, message):
    data = {**BUDGET, **data} if "budget" not in data else data
    with pytest.raises(ConfigError) as error:
        config_from_dict(data)
    assert str(error.value).startswith(message), str(error.value)


def test_load_config_prefixes_the_file_name(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("budget:\n  evaluations: 10\nsearch:\n  tournament_size: 0\n")
    with pytest.raises(ConfigError, match=r"^bad.yaml: search.tournament_size: expected an int >= 2"):
        load_config(path)


def test_invalid_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("search: [unclosed\n")
    with pytest.raises(ConfigError, match="expected valid YAML"):
        load_config(path)


def test_initial_program_may_be_a_file(tmp_path):
    program = tmp_path / "mine.txt"
    program.write_text(
        "def train(w, g, m, lr):\n  m = interp(g, m, 0.9)\n  update = m * lr\n  return update, m\n"
    )
    config = config_from_dict({**BUDGET, "search": {"initial_program": str(program)}})
    assert config.search.initial_program == str(program)


def test_files_that_are_not_utf8_text_are_config_errors(tmp_path):
    not_text = tmp_path / "binary"
    not_text.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="expected valid YAML"):
        load_config(not_text)
    with pytest.raises(ConfigError, match="^search.initial_program: .*not UTF-8 text"):
        config_from_dict({**BUDGET, "search": {"initial_program": str(not_text)}})
    with pytest.raises(ConfigError, match="^search.initial_program: "):
        config_from_dict({**BUDGET, "search": {"initial_program": str(tmp_path)}})  # a directory


def test_task_seeds_and_the_one_seed_shorthand():
    assert config_from_dict(BUDGET).task.seeds == (0,)
    assert config_from_dict({**BUDGET, "task": {"seeds": [0, 1]}}).task.seeds == (0, 1)
    assert config_from_dict({**BUDGET, "task": {"seed": 3}}).task.seeds == (3,)
    assert config_from_dict({**BUDGET, "meta_validation": {"seeds": [2, 5]}}).meta_validation.seeds == (2, 5)
    with pytest.raises(ConfigError, match=r"^task.seed: expected not given together with task.seeds"):
        config_from_dict({**BUDGET, "task": {"seed": 0, "seeds": [0, 1]}})
    with pytest.raises(ConfigError, match=r"^task.seed: expected an int >= 0, got -1"):
        config_from_dict({**BUDGET, "task": {"seed": -1}})
    for bad in ([], [1, 1], [0, -2], "0", [0.5]):
        with pytest.raises(
            ConfigError, match=r"^task.seeds: expected a non-empty list of distinct ints >= 0"
        ):
            config_from_dict({**BUDGET, "task": {"seeds": bad}})
        with pytest.raises(ConfigError, match=r"^meta_validation.seeds: expected a non-empty list"):
            config_from_dict({**BUDGET, "meta_validation": {"seeds": bad}})


def alias_bomb(depth: int, width: int = 9) -> str:
    """A small YAML whose every level lists the level below ``width`` times (width**depth leaves)."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, depth):
        aliases = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{aliases}]")
    lines.append(f"search: {{mode: *a{depth - 1}}}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("depth", [6, 9])
def test_an_alias_bomb_is_refused_before_it_expands(tmp_path, depth):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(depth))
    assert len(path.read_bytes()) < 2000
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "aliases expanded" in message and len(message) < 300, message[:300]


def test_a_small_alias_is_still_allowed(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text(
        "budget: &b {evaluations: 10}\nmeta_validation: {task: null}\nrun: {checkpoint_every: 5}\n"
    )
    assert load_config(path).budget.evaluations == 10


def test_a_recursive_alias_is_a_config_error(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("budget: {evaluations: 10}\nsearch: &s {mode: *s}\n")
    with pytest.raises(ConfigError, match=r"without recursive aliases, got an alias at line 2"):
        load_config(path)


def test_an_error_quotes_a_huge_value_short():
    with pytest.raises(ConfigError) as error:
        config_from_dict({**BUDGET, "search": {"mode": ["evolution"] * 100_000}})
    message = str(error.value)
    assert message.startswith(
        "search.mode: expected one of evolution, constants_only, random, got ['evolution'"
    )
    assert message.endswith("...]") and len(message) < 300, message[:400]
    with pytest.raises(ConfigError) as error:
        config_from_dict({**BUDGET, "task": {"name": "x" * 10_000}})
    quoted = str(error.value).rsplit(", got ", 1)[1]  # after the list of every task name
    assert len(quoted) < 100 and "..." in quoted, quoted[:200]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "budget:\n  evaluations: 10\nsearch:\n  population_size: 50\n  population_size: 60\n",
            "dup.yaml: search.population_size: expected each key once in a mapping, "
            "got it again at line 5 (first at line 4)",
        ),
        (
            "seed: 1\nbudget: {evaluations: 10}\nseed: 2\n",
            "dup.yaml: seed: expected each key once in a mapping, got it again at line 3 (first at line 1)",
        ),
        (
            "budget: {evaluations: 10}\nmutation:\n  weights: {insert: 1, insert: 0}\n",
            "dup.yaml: mutation.weights.insert: expected each key once",
        ),
    ],
)
def test_a_repeated_key_is_refused_with_its_path_and_line(tmp_path, text, message):
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(message), str(error.value)


def test_a_merge_key_may_be_overridden(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("x: &base {evaluations: 10, programs: 5}\nbudget: {<<: *base, programs: 7}\n")
    data = load_yaml(path)
    assert data["budget"] == {"evaluations": 10, "programs": 7}


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * MAX_YAML_BYTES + "\nbudget: {evaluations: 10}\n")
    with pytest.raises(ConfigError, match=f"expected a YAML file of at most {MAX_YAML_BYTES} bytes"):
        load_config(path)


def test_deep_nesting_is_a_config_error_not_a_traceback(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("budget: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path)


def test_an_initial_program_that_ignores_lr_is_refused_when_the_update_must_scale_with_it(tmp_path):
    program = tmp_path / "constant_lr.txt"
    program.write_text(
        "def train(w, g, m, lr):\n  m = interp(g, m, 0.9)\n  update = m * 0.001\n  return update, m\n"
    )
    search = {"initial_program": str(program), "update_scales_with_lr": True}
    with pytest.raises(ConfigError, match=r"^search.initial_program: expected a program whose update"):
        config_from_dict({**BUDGET, "search": search})
    config = config_from_dict({**BUDGET, "search": {**search, "initial_program": "adamw_paper"}})
    assert config.search.update_scales_with_lr is True
    with pytest.raises(ConfigError, match=r"^search.update_scales_with_lr: expected true or false"):
        config_from_dict({**BUDGET, "search": {"update_scales_with_lr": "yes"}})
