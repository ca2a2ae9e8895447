"""Funnel selection: the promotion rule, candidate gathering, config errors, resume, end to end."""

import json
import math
import statistics
from pathlib import Path

import pytest
import yaml

from dsl import analyze, fingerprint, parse
from proxy_tasks import Result
from search import (
    ConfigError,
    InProcessEvaluator,
    RunDirectory,
    Search,
    config_from_dict,
    funnel_config_from_dict,
    gather_candidates,
    load_funnel_config,
    mean_and_se,
    paired_comparison,
    promote,
    run_funnel,
)
from search._funnel import Row, promote_rows
from symdisc.cli import main

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TASK = "mlp_digits_tiny"

# ----------------------------------------------------------------------------- statistics


def test_mean_and_se_by_hand():
    estimate = mean_and_se([1.0, 2.0, 3.0, 4.0])
    # mean 2.5; sample variance (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3; SE = sqrt(5/3 / 4)
    assert estimate.mean == 2.5
    assert estimate.se == pytest.approx(math.sqrt(5 / 12), rel=1e-12)
    assert math.isnan(mean_and_se([0.7]).se)
    failed = mean_and_se([0.9, float("nan"), float("-inf")])
    assert failed.mean == -math.inf and failed.failed == 2


# Two seeds, differences d1, d2: mean (d1 + d2) / 2, sample std |d1 - d2| / sqrt(2), so the
# paired SE is |d1 - d2| / 2 and z = (d1 + d2) / |d1 - d2|.
REFERENCE = [0.5, 0.25]


def test_a_program_just_above_two_standard_errors_is_promoted():
    candidate = [0.5 + 0.0299, 0.25 + 0.01]  # z = 0.0399 / 0.0199 = 2.005
    c = paired_comparison(candidate, REFERENCE)
    assert c.difference == pytest.approx(0.01995, abs=1e-12)
    assert c.se == pytest.approx(0.00995, abs=1e-12)
    assert c.z == pytest.approx(0.0399 / 0.0199, rel=1e-9)
    assert c.beats
    assert promote([c], top=3) == [0]


def test_a_program_just_below_two_standard_errors_is_not():
    candidate = [0.5 + 0.0301, 0.25 + 0.01]  # z = 0.0401 / 0.0201 = 1.995
    c = paired_comparison(candidate, REFERENCE)
    assert c.z == pytest.approx(0.0401 / 0.0201, rel=1e-9)
    assert not c.beats
    assert promote([c], top=3) == []


def test_the_standard_error_is_the_paired_one():
    """Same shift on every seed: a zero paired SE although each program varies a lot over seeds."""
    reference = [0.1, 0.5, 0.9]
    c = paired_comparison([r + 0.001 for r in reference], reference)
    assert c.se == pytest.approx(0.0, abs=1e-12) and c.beats
    # an unpaired SE, sqrt(se_c^2 + se_r^2), would be about 0.33: nowhere near promotion


def test_the_top_m_cap_keeps_the_largest_differences_in_order():
    reference = [0.5, 0.25, 0.75]
    shifts = [0.01, 0.04, 0.03, 0.02]  # all beat the reference (the same shift on every seed)
    comparisons = [paired_comparison([r + s for r in reference], reference) for s in shifts]
    assert all(c.beats for c in comparisons)
    assert promote(comparisons, top=2) == [1, 2]
    assert promote(comparisons, top=10) == [1, 2, 3, 0]


def test_a_failed_or_nan_program_is_never_promoted():
    reference = [0.5, 0.25, 0.75]
    nan_seed = paired_comparison([0.9, float("nan"), 0.9], reference)
    failed_seed = paired_comparison([0.9, 0.9, float("-inf")], reference)
    good = paired_comparison([0.9, 0.9, 0.95], reference)
    assert not nan_seed.beats and math.isnan(nan_seed.difference)
    assert not failed_seed.beats
    assert promote([nan_seed, failed_seed, good], top=5) == [2]
    # a failed reference promotes nobody either
    assert not paired_comparison([0.9, 0.9, 0.9], [0.5, float("-inf"), 0.5]).beats


def _stage_row(
    label: str,
    validation: list[float],
    test: list[float],
    reference_validation: list[float],
    reference_test: list[float],
) -> Row:
    """A candidate row with these per-seed fitnesses, compared with the reference's."""
    results = [
        Result(fitness=v, metric=0.0, train_loss=0.0, steps=1, failure=None, seconds=0.0, test_fitness=t)
        for v, t in zip(validation, test, strict=True)
    ]
    return Row(
        label,
        "candidate",
        None,
        None,
        results,
        mean_and_se(validation),
        mean_and_se(test),
        paired_comparison(test, reference_test),
        paired_comparison(validation, reference_validation),
    )


def test_a_candidate_with_the_same_results_as_an_earlier_one_takes_no_place():
    # Programs that differ on the probe can train identically (the rediscovery's v2 seed 4
    # funnel had two such pairs); the copy must not take a promotion place from a program
    # that is actually different.
    reference = [0.5, 0.25, 0.75]

    def row(label, shift, second_shift=None):
        test_shift = shift if second_shift is None else second_shift
        validation, test = [r + shift for r in reference], [r + test_shift for r in reference]
        return _stage_row(label, validation, test, reference, reference)

    best, copy, other = row("a", 0.04), row("a2", 0.04), row("b", 0.03)
    near = row("c", 0.04, second_shift=0.035)  # same validation, other test: not a copy
    rows = [best, copy, other, near]
    assert promote_rows(rows, top=3) == 3
    assert [r.same_as for r in rows] == [None, "a", None, None]
    assert [r.label for r in rows if r.promoted] == ["a", "b", "c"]


def test_promotion_selects_on_validation_and_test_only_reports():
    reference = [0.5, 0.25, 0.75]
    shifted = [r + 0.05 for r in reference]
    # "valid" beats the reference by 0.05 on validation (every seed), ties it on test;
    # "lucky" ties on validation and beats it by 0.05 on test.
    valid = _stage_row("valid", shifted, reference, reference, reference)
    lucky = _stage_row("lucky", reference, shifted, reference, reference)
    rows = [valid, lucky]
    assert promote_rows(rows, top=2) == 2
    assert [r.label for r in rows if r.promoted] == ["valid"]
    # the rule of the funnels run before validation selection
    for row in rows:
        row.promoted = False
    promote_rows(rows, top=2, select_on="test")
    assert [r.label for r in rows if r.promoted] == ["lucky"]
    assert funnel_config_from_dict({}).select_on == "validation"
    with pytest.raises(ConfigError, match="select_on"):
        funnel_config_from_dict({"select_on": "train"})


# ----------------------------------------------------------------------------- configs


def test_funnel_yaml_is_the_defaults_and_writes_every_key_out():
    import dataclasses

    from search._funnel_config import FunnelConfig, StageSection

    assert load_funnel_config(CONFIGS / "funnel.yaml") == funnel_config_from_dict({})
    data = yaml.safe_load((CONFIGS / "funnel.yaml").read_text())
    for f in dataclasses.fields(FunnelConfig):
        section = data[f.name]
        if dataclasses.is_dataclass(f.default_factory):
            assert set(section) == {g.name for g in dataclasses.fields(f.default_factory)}, f.name
    stage_keys = {g.name for g in dataclasses.fields(StageSection)}
    assert all(set(stage) == stage_keys for stage in data["stages"])


@pytest.mark.parametrize(
    "data, message",
    [
        ({"stagez": []}, "stagez: expected one of the keys candidates, stages"),
        ({"stages": []}, "stages: expected a non-empty list of stage mappings, got []"),
        ({"stages": [{"seeds": [3]}]}, "stages[0].seeds: expected a list of at least 2 distinct ints >= 0"),
        (
            {"stages": [{"task": "a"}, {"task": "b", "seeds": [1, 1]}]},
            "stages[1].seeds: expected a list of at least 2 distinct ints >= 0, got [1, 1]",
        ),
        ({"stages": [{"task": "imagenet"}]}, "stages[0].task: expected a proxy task name or a size ("),
        ({"stages": [{"name": "A"}, {"name": "A"}]}, "stages[1].name: expected a name no other stage has"),
        ({"stages": [{"promote_top": 0}]}, "stages[0].promote_top: expected an int >= 1, got 0"),
        ({"stages": [{"colour": 1}]}, "stages[0].colour: expected one of the keys name, task, seeds"),
        ({"tuning": {"sedes": [1]}}, "tuning.sedes: expected one of the keys seeds"),
        (
            {"tuning": {"lr_steps": [1, -2]}},
            "tuning.lr_steps: expected a list [low, high] of ints, low <= high",
        ),
        ({"tuning": {"max_extension": -1}}, "tuning.max_extension: expected an int >= 0, got -1"),
        ({"baselines": {"reference": "adamx"}}, "baselines.reference: expected a library program name ("),
        ({"baselines": {"others": ["lion", "sgd_typo"]}}, "baselines.others[1]: expected a library program"),
        ({"workers": {"backend": "mpi"}}, "workers.backend: expected one of ray, inprocess, got 'mpi'"),
        ({"candidates": {"top_k": 2.5}}, "candidates.top_k: expected an int >= 1, got 2.5"),
    ],
)
def test_bad_funnel_configs_name_the_key_path(data, message):
    with pytest.raises(ConfigError) as error:
        funnel_config_from_dict(data)
    assert str(error.value).startswith(message), str(error.value)


# ----------------------------------------------------------------------------- candidates

BASE = "def train(w, g, m, lr):\n  m = interp(g, m, 0.9)\n{body}  return update, m\n"
SIGN = BASE.format(body="  s = sign(m)\n  update = s * lr\n")
SIGN_RENAMED = BASE.format(body="  dead = m + g\n  t = sign(m)\n  update = t * lr\n")  # same hash
SIGN_ALGEBRA = BASE.format(
    body="  mm = m * m\n  r = sqrt(mm)\n  s = m / r\n  update = s * lr\n"
)  # same fingerprint
MOMENTUM = BASE.format(body="  update = m * lr\n")
CLIPPED = BASE.format(body="  c = clip(m, 1.0)\n  update = c * lr\n")


def write_run(path, individuals, task_seed=0):
    """A run directory holding ``individuals``: (id, island, program text, fitness or None)."""
    config = config_from_dict({"task": {"name": TASK, "seed": task_seed}, "budget": {"programs": 10}})
    rundir = RunDirectory.create(path, config)
    for seq, (individual, island, text, fitness) in enumerate(individuals, start=1):
        rundir.append(
            {
                "seq": seq,
                "id": individual,
                "island": island,
                "program": text,
                "hash": analyze(text).hash,
                "fitness": fitness,
                "failure": None if fitness is not None else "diverged",
            }
        )
    rundir.close()
    return str(path)


def test_candidates_are_distinct_by_hash_and_fingerprint(tmp_path):
    assert analyze(SIGN).hash == analyze(SIGN_RENAMED).hash
    assert analyze(SIGN).hash != analyze(SIGN_ALGEBRA).hash
    assert fingerprint(SIGN) == fingerprint(SIGN_ALGEBRA)
    run = write_run(
        tmp_path / "run",
        [
            (0, 0, MOMENTUM, 0.5),
            (1, 0, SIGN_RENAMED, 0.9),  # the best copy of the sign program
            (2, 1, SIGN, 0.8),
            (3, 1, SIGN_ALGEBRA, 0.85),
            (4, 0, CLIPPED, None),  # failed: never a candidate
            (5, 1, CLIPPED, 0.3),
            (6, 0, MOMENTUM, 0.7),
            (7, 2, CLIPPED, 0.4),
        ],
    )
    top = gather_candidates([run], top_k=2, island_best=False)
    assert [(c.individual, c.reasons) for c in top] == [(1, ("top_k",)), (6, ("top_k",))]
    assert top[0].program == analyze(SIGN_RENAMED).pruned  # pruned: the dead statement is gone
    assert "dead" not in top[0].program.to_text()
    # island 0's best is the top program; island 1's (individual 3) is the sign program again;
    # island 2's is new
    with_islands = gather_candidates([run], top_k=1, island_best=True)
    assert [(c.individual, c.reasons) for c in with_islands] == [
        (1, ("top_k", "island_best")),
        (7, ("island_best",)),
    ]


def test_the_shortest_program_within_a_tolerance_of_the_best_is_a_candidate(tmp_path):
    run = write_run(
        tmp_path / "run",
        [
            (0, 0, SIGN_ALGEBRA, 0.9),  # the best: 5 live statements
            (1, 0, SIGN_RENAMED.replace("0.9", "0.8"), 0.86),  # 3 live (and a dead one), 0.04 below
            (2, 1, CLIPPED, 0.87),  # 3 live, 0.03 below: the fitter of the two 3s
            (3, 1, MOMENTUM, 0.7),  # 2 live, 0.2 below
            (4, 0, MOMENTUM.replace("0.9", "0.5"), None),  # 2 live, failed: never a candidate
        ],
    )
    assert [c.individual for c in gather_candidates([run], 1, False, shortest_within=None)] == [0]
    assert [c.individual for c in gather_candidates([run], 1, False, shortest_within=0.01)] == [0]
    within = gather_candidates([run], 1, False, shortest_within=0.05)
    assert [(c.individual, c.reasons) for c in within] == [(0, ("top_k",)), (2, ("shortest_within",))]
    assert [c.individual for c in gather_candidates([run], 1, False, shortest_within=0.25)] == [0, 3]


def test_the_shortest_candidate_of_a_real_run_uses_its_logged_lengths(search_run):
    records = [r for r in RunDirectory.open(search_run).read_log() if r["failure"] is None]
    best = max(r["fitness"] for r in records)
    tolerance = 0.2
    live = {
        r["id"]: len(parse(r["program"]).statements) - len(analyze(r["program"]).redundant)
        for r in records
        if r["fitness"] >= best - tolerance
    }
    candidates = gather_candidates([search_run], 1, False, shortest_within=tolerance)
    shortest = [c for c in candidates if "shortest_within" in c.reasons]
    assert len(shortest) == 1 and live[shortest[0].individual] == min(live.values())
    assert len(shortest[0].program.statements) == min(live.values())
    assert min(live.values()) < max(live.values())  # the run offers a choice


def test_candidates_of_several_runs_keep_their_run(tmp_path):
    first = write_run(tmp_path / "first", [(0, 0, MOMENTUM, 0.5), (1, 0, CLIPPED, 0.6)])
    second = write_run(tmp_path / "second", [(0, 0, SIGN, 0.7), (1, 0, MOMENTUM, 0.55)])
    candidates = gather_candidates([first, second], top_k=5, island_best=False)
    assert [(c.run, c.individual) for c in candidates] == [(second, 0), (first, 1), (second, 1)]
    assert candidates[0].label == f"{second}:0"


# ----------------------------------------------------------------------------- running


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    """A real 40-program search on mlp_digits_tiny with two islands."""
    config = config_from_dict(
        {
            "seed": 5,
            "task": {"name": TASK},
            "search": {"population_size": 10, "tournament_size": 2, "parallel_searches": 2},
            "mutation": {"weights": {"insert": 1, "delete": 1, "modify_argument": 1, "mutate_constant": 1}},
            "budget": {"programs": 40},
            "workers": {"backend": "inprocess"},
        }
    )
    rundir = RunDirectory.create(tmp_path_factory.mktemp("search") / "run", config)
    Search(config, rundir).run(InProcessEvaluator(TASK))
    rundir.close()
    return str(rundir.path)


def tiny_funnel(cache_dir, **stage_b):
    return funnel_config_from_dict(
        {
            "candidates": {"top_k": 3},
            "stages": [
                {"name": "A", "task": "tiny", "seeds": [1, 2, 3], "promote_top": 2},
                {"name": "B", "task": "tiny", "seeds": [4, 5], "promote_top": 1, **stage_b},
            ],
            "tuning": {
                "seeds": [6, 7],
                "lr_steps": [-1, 1],
                "wd_steps": [0, 0],
                "max_extension": 0,
                "cache_dir": str(cache_dir),
            },
        }
    )


def evaluation_keys(out):
    lines = (Path(out) / "evaluations.jsonl").read_text().splitlines()
    return [(r["hash"], r["task"], r["seed"]) for r in map(json.loads, lines)]


def without_seconds(out):
    """funnel.json's stages, without the wall times of the evaluations."""
    stages = json.loads((Path(out) / "funnel.json").read_text())["stages"]
    for stage in stages:
        for row in stage["rows"]:
            for seed in row["seeds"]:
                del seed["seconds"]
    return stages


class CountingEvaluator(InProcessEvaluator):
    """The in-process evaluator, counting the jobs it is given."""

    def __init__(self, task_name):
        super().__init__(task_name)
        self.submitted = 0

    def submit(self, *args, **kwargs):
        self.submitted += 1
        super().submit(*args, **kwargs)


class Crash(RuntimeError):
    pass


class CrashingEvaluator(CountingEvaluator):
    """The in-process evaluator that dies (as a killed funnel would) after ``after`` completed jobs."""

    def __init__(self, task_name, after):
        super().__init__(task_name)
        self.after = after
        self.completed = 0

    def wait(self):
        if self.completed == self.after:
            raise Crash(f"killed after {self.after} evaluations")
        done = super().wait()
        self.completed += len(done)
        return done


@pytest.mark.parametrize("phase", ["candidates", "tuning"])
def test_a_killed_funnel_resumes_without_evaluating_anything_twice(search_run, tmp_path, phase):
    config = tiny_funnel(tmp_path / "cache1")
    candidate_jobs = 3 * len(gather_candidates([search_run], 3, island_best=True))  # stage A: 3 seeds
    # killed mid-way through stage A's candidates, or mid-way through tuning its AdamW (6 jobs)
    crash_after = 5 if phase == "candidates" else candidate_jobs + 3
    reference_out = tmp_path / "uninterrupted"
    whole = CountingEvaluator(TASK)
    reference = run_funnel(config, [search_run], reference_out, whole)
    needed = len(evaluation_keys(reference_out))
    assert needed == whole.submitted > crash_after

    out = tmp_path / "killed"
    with pytest.raises(Crash):
        run_funnel(tiny_funnel(tmp_path / "cache2"), [search_run], out, CrashingEvaluator(TASK, crash_after))
    assert len(evaluation_keys(out)) == crash_after
    assert not (tmp_path / "cache2").exists()  # died before any tuning finished
    resumed_evaluator = CountingEvaluator(TASK)
    resumed = run_funnel(tiny_funnel(tmp_path / "cache2"), [search_run], out, resumed_evaluator)
    keys = evaluation_keys(out)
    assert len(keys) == len(set(keys)) == needed  # nothing twice, nothing missing
    assert resumed_evaluator.submitted == needed - crash_after
    assert without_seconds(out) == without_seconds(reference_out)  # the same funnel, numbers and all
    assert [r.label for r in resumed.stages[0].rows] == [r.label for r in reference.stages[0].rows]

    again = CountingEvaluator(TASK)  # a finished funnel run again trains nothing
    run_funnel(tiny_funnel(tmp_path / "cache2"), [search_run], out, again)
    assert again.submitted == 0


def test_a_torn_last_line_is_cut_and_a_damaged_log_is_a_one_line_error(search_run, tmp_path, capsys):
    config = tmp_path / "funnel.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "candidates": {"top_k": 1, "island_best": False, "follow_best": False},
                "stages": [{"task": "tiny", "seeds": [1, 2]}],
                "tuning": {
                    "seeds": [3],
                    "lr_steps": [0, 0],
                    "wd_steps": [0, 0],
                    "max_extension": 0,
                    "cache_dir": str(tmp_path / "cache"),
                },
                "workers": {"backend": "inprocess"},
            }
        )
    )
    out = tmp_path / "funnel"
    command = ["funnel", search_run, "--config", str(config), "--out", str(out), "--quiet"]
    assert main(command) == 0
    log = out / "evaluations.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    assert len(lines) == 2 + 2 + 4  # 1 candidate x 2 seeds; 2 baselines x 1 grid point x 1 seed; 2 x 2 seeds
    log.write_text("".join(lines[:-1]) + lines[-1][:25])  # the last line torn by a kill
    assert main(command) == 0

    def without_seconds(text):
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in text.splitlines()]

    after = log.read_text()
    assert after.startswith("".join(lines[:-1]))  # every complete line kept as it was
    assert without_seconds(after) == without_seconds("".join(lines))  # the torn one cut and trained again
    log.write_text("".join(lines[:2]) + "{not json\n" + "".join(lines[2:]))
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("symdisc funnel: ") and "evaluations.jsonl: line 3 is not a JSON record" in err
    assert len(err.splitlines()) == 1


def test_stage_seeds_must_be_new_on_the_search_task(search_run, tmp_path, capsys):
    config = tmp_path / "funnel.yaml"
    config.write_text(yaml.safe_dump({"stages": [{"task": "tiny", "seeds": [0, 1]}]}))
    assert main(["funnel", search_run, "--config", str(config), "--out", str(tmp_path / "f"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert (
        "stages[0].seeds: expected new seeds: the search trained on mlp_digits_tiny with seed(s) [0]" in err
    )
    assert len(err.strip().splitlines()) == 1


def test_funnel_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["funnel", str(tmp_path), "--quiet"]) == 2
    assert "not a run directory" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  - seeds: [1]\n")
    assert main(["funnel", str(tmp_path), "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert (
        err.strip()
        == "symdisc funnel: bad.yaml: stages[0].seeds: expected a list of at least 2 distinct ints >= 0, got [1]"
    )


def test_a_search_config_with_a_bad_funnel_exits_2_before_searching(tmp_path, capsys):
    funnel = tmp_path / "funnel.yaml"
    funnel.write_text(yaml.safe_dump({"stages": [{"task": "z"}]}))
    search = tmp_path / "search.yaml"
    search.write_text(
        yaml.safe_dump({"task": {"name": TASK}, "budget": {"programs": 5}, "funnel": str(funnel)})
    )
    assert main(["run", str(search), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "search.yaml: funnel: funnel.yaml: stages[0].task: expected a proxy task name or a size" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "run").exists()


def test_a_search_config_runs_its_funnel_when_the_search_ends(tmp_path):
    funnel = tmp_path / "funnel.yaml"
    funnel.write_text(
        yaml.safe_dump(
            {
                "candidates": {"top_k": 2, "island_best": False},
                "stages": [{"task": "tiny", "seeds": [1, 2]}],
                "tuning": {
                    "seeds": [3],
                    "lr_steps": [0, 0],
                    "wd_steps": [0, 0],
                    "max_extension": 0,
                    "cache_dir": str(tmp_path / "c"),
                },
                "workers": {"backend": "inprocess"},
            }
        )
    )
    search = tmp_path / "search.yaml"
    search.write_text(
        yaml.safe_dump(
            {
                "task": {"name": TASK},
                "search": {"population_size": 5},
                "budget": {"programs": 10},
                "workers": {"backend": "inprocess"},
                "funnel": str(funnel),
            }
        )
    )
    run = tmp_path / "run"
    assert main(["run", str(search), "--out", str(run), "--quiet"]) == 0
    report = json.loads((run / "funnel" / "funnel.json").read_text())
    assert report["runs"] == [str(run)] and report["stages"][0]["task"] == TASK
    assert "Does the best search program" in (run / "funnel" / "funnel.md").read_text()


# ----------------------------------------------------------------------------- end to end


def _recomputed_rows(stage, log, reference_name, k, top):
    """Each row's numbers from the evaluation log alone (statistics module, not the funnel's code)."""
    rows = {}
    for row in stage["rows"]:
        program_hash = analyze(parse(row["program"])).hash
        records = [log[(program_hash, stage["task"], seed)] for seed in stage["seeds"]]
        rows[row["label"]] = records
    reference = rows[f"{reference_name} (tuned)"]
    winners = []
    for row in stage["rows"]:
        records = rows[row["label"]]
        assert [s["fitness"] for s in row["seeds"]] == [r["fitness"] for r in records]
        assert [s["test_fitness"] for s in row["seeds"]] == [r["test_fitness"] for r in records]
        validation = [r["fitness"] for r in records]
        if None not in validation:
            assert row["validation"]["mean"] == pytest.approx(statistics.mean(validation), rel=1e-12)
            assert row["validation"]["se"] == pytest.approx(
                statistics.stdev(validation) / math.sqrt(len(validation)), rel=1e-9, abs=1e-15
            )
        test = [r["test_fitness"] for r in records]
        reference_test = [r["test_fitness"] for r in reference]
        reference_validation = [r["fitness"] for r in reference]
        if row["kind"] == "candidate" and None not in test + reference_test:
            d = [c - r for c, r in zip(test, reference_test, strict=True)]
            assert row["vs_reference"]["difference"] == pytest.approx(statistics.mean(d), rel=1e-9, abs=1e-12)
        # promotion is on validation (the funnel's default select_on); test only reports
        if (
            row["kind"] == "candidate"
            and not row["followed"]
            and None not in validation + reference_validation
        ):
            d = [c - r for c, r in zip(validation, reference_validation, strict=True)]
            assert row["vs_reference_validation"]["difference"] == pytest.approx(
                statistics.mean(d), rel=1e-9, abs=1e-12
            )
            if statistics.mean(d) > k * statistics.stdev(d) / math.sqrt(len(d)):
                winners.append((statistics.mean(d), row["label"]))
    winners.sort(key=lambda w: -w[0])
    return [label for _, label in winners[:top]]


def _tuning_mean(program_text, task, log):
    """The tuned point's mean validation over the tuning seeds, checked to be the grid's best."""
    from proxy_tasks._tune import find_lr_constant, find_wd_constant, with_constant

    tuned = parse(program_text)
    lr_site, wd_site = find_lr_constant(tuned), find_wd_constant(tuned)

    def constants_cleared(program):
        program = with_constant(program, lr_site, 1.0)
        return (with_constant(program, wd_site, 1.0) if wd_site else program).to_text()

    grid = {}
    for record in log.values():
        if record["task"] == task and record["seed"] in (6, 7):
            try:
                same = constants_cleared(parse(record["program"])) == constants_cleared(tuned)
            except (IndexError, ValueError):  # another program's shape
                same = False
            if same:
                fitness = record["fitness"]
                grid.setdefault(record["hash"], []).append(-math.inf if fitness is None else fitness)
    assert len(grid) == 3 and all(len(v) == 2 for v in grid.values())  # 3 lr factors x 2 seeds
    means = {h: statistics.mean(v) for h, v in grid.items()}
    tuned_mean = means[analyze(tuned).hash]
    assert tuned_mean == max(means.values())
    return tuned_mean


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # with the other tests that start Ray (test_ray_pool.py)
def test_tiny_to_a_funnel_on_ray_workers_agrees_with_its_evaluation_log(search_run, tmp_path):
    config = tmp_path / "funnel.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "candidates": {"top_k": 3},
                "stages": [
                    {"name": "A", "task": "tiny", "seeds": [1, 2, 3], "promote_top": 2},
                    {"name": "B", "task": "a", "seeds": [1, 2, 3], "promote_top": 2},
                ],
                "tuning": {
                    "seeds": [6, 7],
                    "lr_steps": [-1, 1],
                    "wd_steps": [0, 0],
                    "max_extension": 0,
                    "cache_dir": str(tmp_path / "tuned"),
                },
                "workers": {"backend": "ray", "count": 2},
            }
        )
    )
    out = tmp_path / "funnel"
    assert main(["funnel", search_run, "--config", str(config), "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "funnel.json").read_text())
    log = {}
    for record in map(json.loads, (out / "evaluations.jsonl").read_text().splitlines()):
        key = (record["hash"], record["task"], record["seed"])
        assert key not in log
        log[key] = record
    assert {r["worker"] for r in log.values()} == {"ray-0", "ray-1"}  # both workers trained

    individuals = RunDirectory.open(search_run).read_log()
    best_fitness = max(r["fitness"] for r in individuals if r["fitness"] is not None)
    assert report["candidates"][0]["search_fitness"] == best_fitness
    assert len({c["hash"] for c in report["candidates"]}) == len(report["candidates"])

    entering = {c["label"] for c in report["candidates"]}
    for stage in report["stages"]:
        labels = {row["label"] for row in stage["rows"] if row["kind"] == "candidate" and not row["followed"]}
        assert labels == entering
        promoted = _recomputed_rows(stage, log, "adamw", 2.0, stage["promote_top"])
        assert sorted(stage["promoted"]) == sorted(promoted)  # the report lists them in row order
        entering = set(promoted)
        for row in stage["rows"]:
            if row["kind"] != "candidate":
                assert _tuning_mean(row["program"], stage["task"], log) == pytest.approx(
                    row["tuning_fitness"], rel=1e-12
                )
        assert {row["label"] for row in stage["rows"] if row["kind"] != "candidate"} == {
            "adamw (tuned)",
            "lion (tuned)",
        }
    markdown = (out / "funnel.md").read_text()
    assert "## Answer" in markdown and "## Stage A: mlp_digits_tiny" in markdown
    assert "## Stage B: mlp_digits_a" in markdown
