"""The Lion-rediscovery pipeline: its config errors, a tiny end-to-end run, and a killed run resumed."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

import dsl
from dsl import library
from dsl.library import load_program
from proxy_tasks import StallRule
from search import ConfigError, load_rediscovery_config, rediscovery_config_from_dict
from search._rediscovery import pipeline_runs
from search._rediscovery_report import report_markdown

ROOT = Path(__file__).resolve().parents[1]
ABLATION_TOLERANCE = 0.005  # of mlp_digits_tiny's validation accuracy, in the tiny pipeline
SCRIPT = ROOT / "scripts" / "rediscover_lion.py"


def _script(path: Path = SCRIPT):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_config(
    out: Path, programs: int = 200, baselines=("random",), stage_seeds=(1, 2), top_k=2, ablation=None
) -> dict:
    """A pipeline on mlp_digits_tiny: small populations, a programs budget, one funnel stage."""
    return {
        "pipeline": {
            "seeds": 1,
            "minutes": 10,
            "baselines": list(baselines),
            "baseline_seeds": [0],
            "out": str(out),
            "ablation_tolerance": ablation,
        },
        "search": {
            "task": {"name": "mlp_digits_tiny", "seeds": [0]},
            "search": {
                "population_size": 10,
                "tournament_size": 3,
                "parallel_searches": 2,
                "restart_after": 60,
            },
            "mutation": {"weights": {"insert": 1, "delete": 1, "modify_argument": 1, "mutate_constant": 1}},
            "budget": {"programs": programs},
            "workers": {"backend": "inprocess"},
            "run": {"checkpoint_every": 20},
        },
        "funnel": {
            "candidates": {"top_k": top_k},
            "stages": [{"name": "A", "task": "tiny", "seeds": list(stage_seeds), "promote_top": 1}],
            "tuning": {
                "seeds": [6],
                "lr_steps": [0, 0],
                "wd_steps": [0, 0],
                "max_extension": 0,
                "cache_dir": str(out.parent / "tuned"),
            },
        },
    }


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


# ----------------------------------------------------------------------------- config


def test_the_repository_config_loads():
    config = load_rediscovery_config(ROOT / "configs" / "rediscover_lion.yaml", seeds=2, minutes=1.5)
    assert (config.pipeline.seeds, config.pipeline.minutes) == (2, 1.5)
    run = config.run_config(3, "random")
    assert (run.seed, run.search.mode, run.budget.wall_seconds) == (3, "random", 90.0)
    assert run.task == config.search.task and run.search.population_size == 100


def test_no_baselines_leaves_the_evolution_seeds_only():
    path = ROOT / "configs" / "rediscover_lion_v4.yaml"
    assert [r.name for r in pipeline_runs(load_rediscovery_config(path, seeds=2))] == [
        "seed0",
        "seed1",
        "random-seed0",
        "constants_only-seed0",
    ]
    config = load_rediscovery_config(path, seeds=2, baselines=[])
    assert [r.name for r in pipeline_runs(config)] == ["seed0", "seed1"]


def test_the_report_states_the_stall_rule_and_that_no_baseline_ran():
    v4 = ROOT / "configs" / "rediscover_lion_v4.yaml"
    text = report_markdown(load_rediscovery_config(v4, baselines=[]), [], "cmd", {}, Path("out"))
    assert "after 20% of its steps its mean training loss is not more than 0.0005 (relative)" in text
    assert "No baseline method was run." in text and "Baseline methods:" not in text
    v3 = report_markdown(
        load_rediscovery_config(ROOT / "configs" / "rediscover_lion_v3.yaml"), [], "cmd", {}, Path("o")
    )
    assert "stalled" not in v3
    assert "Baseline methods: random, constants_only (seeds [0]), same budget." in v3


def test_the_second_method_differs_from_the_first_only_in_its_two_changes():
    first = load_rediscovery_config(ROOT / "configs" / "rediscover_lion.yaml")
    second = load_rediscovery_config(ROOT / "configs" / "rediscover_lion_v2.yaml")
    assert second.search.search.update_scales_with_lr and not first.search.search.update_scales_with_lr
    assert second.search.mutation.weights == {**first.search.mutation.weights, "wrap": 1.0}
    assert second.pipeline.out != first.pipeline.out
    unchanged = (first.search.task, first.search.budget, first.search.meta_validation, first.funnel)
    assert (
        second.search.task,
        second.search.budget,
        second.search.meta_validation,
        second.funnel,
    ) == unchanged


def test_the_third_method_adds_only_the_duplicate_mutation_to_the_second():
    second = load_rediscovery_config(ROOT / "configs" / "rediscover_lion_v2.yaml")
    third = load_rediscovery_config(ROOT / "configs" / "rediscover_lion_v3.yaml")
    assert third.search.mutation.weights == {**second.search.mutation.weights, "duplicate": 1.0}
    assert third.pipeline.out != second.pipeline.out
    assert replace(third.search, mutation=second.search.mutation) == second.search
    assert third.funnel == second.funnel


def test_the_fourth_method_adds_only_the_stall_rule_to_the_third():
    third = load_rediscovery_config(ROOT / "configs" / "rediscover_lion_v3.yaml")
    fourth = load_rediscovery_config(ROOT / "configs" / "rediscover_lion_v4.yaml")
    assert third.search.task.stall.rule is None
    assert fourth.search.task.stall.rule == StallRule(check=0.2, window=0.05, min_drop=0.0005)
    assert fourth.pipeline.out != third.pipeline.out
    assert replace(fourth.search, task=third.search.task) == third.search
    assert replace(fourth.search.task, stall=third.search.task.stall) == third.search.task
    assert fourth.funnel == third.funnel


def test_the_fifth_method_adds_only_the_ablation_step_and_fresh_seeds_to_the_fourth():
    fourth = load_rediscovery_config(ROOT / "configs" / "rediscover_lion_v4.yaml")
    fifth = load_rediscovery_config(ROOT / "configs" / "rediscover_lion_v5.yaml")
    assert fourth.pipeline.ablation_tolerance is None and fifth.pipeline.ablation_tolerance == 0.001
    assert (fourth.pipeline.first_seed, fifth.pipeline.first_seed) == (0, 10)
    assert fifth.pipeline.out != fourth.pipeline.out
    same = {"ablation_tolerance": None, "first_seed": 0, "out": fourth.pipeline.out}
    assert replace(fifth.pipeline, **same) == fourth.pipeline
    assert fifth.search == fourth.search and fifth.funnel == fourth.funnel
    names = [
        r.name
        for r in pipeline_runs(
            load_rediscovery_config(ROOT / "configs" / "rediscover_lion_v5.yaml", seeds=2, baselines=[])
        )
    ]
    assert names == ["seed10", "seed11"]


def test_the_seventh_method_keeps_the_sixths_settings_with_fresh_seeds():
    # Its one change, the fingerprint's second probe pass, is in the code (dsl/_fingerprint.py).
    sixth = load_rediscovery_config(ROOT / "configs" / "rediscover_lion_v6.yaml")
    seventh = load_rediscovery_config(ROOT / "configs" / "rediscover_lion_v7.yaml")
    assert (sixth.pipeline.first_seed, seventh.pipeline.first_seed) == (20, 25)
    assert seventh.pipeline.out != sixth.pipeline.out
    assert replace(seventh.pipeline, first_seed=20, out=sixth.pipeline.out) == sixth.pipeline
    assert seventh.search == sixth.search and seventh.funnel == sixth.funnel


def test_the_eighth_method_averages_the_fitness_over_two_training_seeds_and_changes_nothing_else():
    seventh = load_rediscovery_config(ROOT / "configs" / "rediscover_lion_v7.yaml")
    eighth = load_rediscovery_config(ROOT / "configs" / "rediscover_lion_v8.yaml")
    assert (seventh.search.task.seeds, eighth.search.task.seeds) == ((0,), (0, 9))
    funnel_seeds = {seed for stage in eighth.funnel.stages for seed in stage.seeds}
    assert not set(eighth.search.task.seeds) & (funnel_seeds | set(eighth.funnel.tuning.seeds))
    assert (seventh.pipeline.first_seed, eighth.pipeline.first_seed) == (25, 30)
    assert eighth.pipeline.out != seventh.pipeline.out
    assert replace(eighth.pipeline, first_seed=25, out=seventh.pipeline.out) == seventh.pipeline
    assert replace(eighth.search, task=seventh.search.task) == seventh.search
    assert replace(eighth.search.task, seeds=(0,)) == seventh.search.task
    assert eighth.funnel == seventh.funnel


def test_the_ninth_method_prefers_the_shorter_program_in_three_places_and_changes_nothing_else():
    eighth = load_rediscovery_config(ROOT / "configs" / "rediscover_lion_v8.yaml")
    ninth = load_rediscovery_config(ROOT / "configs" / "rediscover_lion_v9.yaml")
    assert (eighth.pipeline.first_seed, ninth.pipeline.first_seed) == (30, 40)
    assert ninth.pipeline.out != eighth.pipeline.out
    assert (eighth.pipeline.winner, ninth.pipeline.winner) == ("best", "shortest_within_se")
    assert replace(ninth.pipeline, first_seed=30, out=eighth.pipeline.out, winner="best") == eighth.pipeline
    assert ninth.search.search.parsimony_tolerance == 0.05
    assert replace(ninth.search.search, parsimony_tolerance=0.0) == eighth.search.search
    assert replace(ninth.search, search=eighth.search.search) == eighth.search
    assert ninth.funnel.candidates.shortest_within == 0.05
    assert replace(ninth.funnel.candidates, shortest_within=None) == eighth.funnel.candidates
    assert replace(ninth.funnel, candidates=eighth.funnel.candidates) == eighth.funnel


def _with(data: dict, path: str, value) -> dict:
    """``data`` with the key at dotted ``path`` (``stages.0.seeds``) set to ``value``."""
    data = json.loads(json.dumps(data))
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    node[last] = value
    return data


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("pipeline.seeds", 0, "pipeline.seeds: expected an int >= 1, got 0"),
        ("pipeline.minutes", 0, "pipeline.minutes: expected a number > 0, got 0"),
        ("pipeline.minutes", "30", "pipeline.minutes: expected a number > 0, got '30'"),
        ("pipeline.baselines", ["evolution"], "pipeline.baselines: expected a list of distinct methods from"),
        (
            "pipeline.baseline_seeds",
            [0, -1],
            "pipeline.baseline_seeds: expected a list of distinct ints >= 0",
        ),
        ("pipeline.baseline_seeds", 0, "pipeline.baseline_seeds: expected a list of distinct ints >= 0"),
        ("pipeline.out", "", "pipeline.out: expected a directory path (string), got ''"),
        ("pipeline.first_seed", -1, "pipeline.first_seed: expected an int >= 0, got -1"),
        (
            "pipeline.ablation_tolerance",
            0,
            "pipeline.ablation_tolerance: expected null or a number > 0, got 0",
        ),
        ("pipeline.ablation_tolerance", "1e-3", "pipeline.ablation_tolerance: expected null or a number > 0"),
        ("pipeline.islands", 2, "pipeline.islands: expected one of the keys seeds, first_seed, minutes"),
        ("search.search.population_size", 1, "search.search.population_size: expected an int >= 3, got 1"),
        ("search.task.name", "nope", "search.task.name: expected a proxy task name"),
        ("search.budget", [1], "search.budget: expected a mapping of keys, got [1]"),
        ("search.funnel", "configs/funnel.yaml", "search.funnel: expected null (the pipeline runs"),
        ("funnel.stages.0.seeds", [3], "funnel.stages[0].seeds: expected a list of at least 2 distinct"),
        ("funnel.stages.0.seeds", [0, 1], "funnel.stages[0].seeds: expected new seeds: the search trained"),
        ("funnel.stages.0.task", "huge", "funnel.stages[0].task: expected a proxy task name or a size"),
        ("funnel.tuning.lr_steps", [2, 1], "funnel.tuning.lr_steps: expected a list [low, high] of ints"),
        ("funnel.baselines.others", ["nope"], "funnel.baselines.others[0]: expected a library program name"),
        ("funnels", {}, "funnels: expected one of the keys pipeline, search, funnel"),
    ],
)
def test_a_bad_value_is_an_error_naming_its_key_path(tmp_path, path, value, message):
    data = _with(tiny_config(tmp_path / "out"), path, value)
    with pytest.raises(ConfigError) as error:
        rediscovery_config_from_dict(data)
    assert str(error.value).startswith(message), str(error.value)


def test_the_search_section_needs_no_budget_of_its_own(tmp_path):
    data = tiny_config(tmp_path / "out")
    del data["search"]["budget"]
    config = rediscovery_config_from_dict(data)
    assert config.run_config(0).budget.wall_seconds == 600.0


def test_the_script_names_the_file_and_key_and_exits_2(tmp_path, capsys):
    config = write_config(tmp_path / "bad.yaml", tiny_config(tmp_path / "out"))
    assert _script().main(["--config", str(config), "--minutes", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "rediscover_lion: bad.yaml: pipeline.minutes: expected a number > 0, got -1.0"
    assert _script().main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: expected a readable pipeline config file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- end to end


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.is_file() else []


def _run_until(command: list[str], log: Path, condition, timeout: float = 240.0) -> bool:
    """Start ``command``; kill -9 it as soon as ``condition()`` holds. Returns whether it was killed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "ab") as stderr:
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while process.poll() is None and not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    killed = process.poll() is None
    if killed:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return killed


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The tiny pipeline, killed during seed 0's search, killed again during its funnel, then completed.

    Returns the paths and the files' contents at each kill.
    """
    tmp = tmp_path_factory.mktemp("rediscovery")
    out = tmp / "out"
    config = write_config(
        tmp / "tiny.yaml",
        tiny_config(out, programs=200, stage_seeds=(1, 2, 3, 4), top_k=4, ablation=ABLATION_TOLERANCE),
    )
    seed0 = out / "seed0"
    individuals = seed0 / "search" / "individuals.jsonl"
    evaluations = seed0 / "funnel" / "evaluations.jsonl"
    command = [sys.executable, str(SCRIPT), "--config", str(config), "--quiet"]
    log = tmp / "stderr.txt"
    killed_in_search = _run_until(command, log, lambda: len(_lines(individuals)) >= 40)
    at_first_kill = _lines(individuals)
    killed_in_funnel = _run_until(command, log, lambda: len(_lines(evaluations)) >= 2)
    at_second_kill = {"individuals": individuals.read_bytes(), "evaluations": _lines(evaluations)}
    docs = tmp / "docs"
    arguments = ["--config", str(config), "--quiet", "--report", str(docs / "rediscovery.md")]
    arguments += ["--docs", str(docs / "rediscovery")]
    code = _script().main(arguments)
    return {
        "config": config,
        "out": out,
        "docs": docs,
        "arguments": arguments,
        "code": code,
        "stderr": log.read_text(),
        "killed": (killed_in_search, killed_in_funnel),
        "at_first_kill": at_first_kill,
        "at_second_kill": at_second_kill,
    }


@pytest.mark.slow
def test_a_killed_pipeline_resumes_and_redoes_nothing(pipeline):
    assert pipeline["killed"] == (True, True), pipeline["stderr"]
    assert pipeline["code"] == 0
    seed0 = pipeline["out"] / "seed0"
    individuals = seed0 / "search" / "individuals.jsonl"
    records = [json.loads(line) for line in _lines(individuals)]
    seqs = [r["seq"] for r in records]
    assert len(seqs) == len(set(seqs)) and len({r["id"] for r in records}) == len(records)
    assert len(records) == 200  # the budget, reached once over the three sessions
    first = pipeline["at_first_kill"]
    assert _lines(individuals)[: len(first) - 1] == first[:-1]  # the last line may have been torn
    # the search had finished when the funnel was killed: the completing run did not touch it
    assert individuals.read_bytes() == pipeline["at_second_kill"]["individuals"]
    evaluations = [json.loads(line) for line in _lines(seed0 / "funnel" / "evaluations.jsonl")]
    keys = [(e["hash"], e["task"], e["seed"]) for e in evaluations]
    assert len(keys) == len(set(keys))
    before = pipeline["at_second_kill"]["evaluations"]
    assert (
        len(before) >= 2 and _lines(seed0 / "funnel" / "evaluations.jsonl")[: len(before) - 1] == before[:-1]
    )

    # everything done: running it again trains nothing and changes no log or summary
    logs = [
        seed0 / "search" / "individuals.jsonl",
        seed0 / "funnel" / "evaluations.jsonl",
        seed0 / "summary.json",
        seed0 / "ablation" / "evaluations.jsonl",
        pipeline["out"] / "random-seed0" / "search" / "individuals.jsonl",
    ]
    contents = [path.read_bytes() for path in logs]
    assert _script().main(pipeline["arguments"]) == 0
    assert [path.read_bytes() for path in logs] == contents


def _table(report: str, name: str) -> dict[str, str]:
    """The report's row of run ``name``, by column header."""
    lines = report.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith(f"| {name} |"))
    header = next(lines[i] for i in range(row, -1, -1) if lines[i].startswith("| run |"))

    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip().strip("|").split(" | ")]

    return dict(zip(cells(header), cells(lines[row]), strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["seed0", "random-seed0"])
def test_the_report_agrees_with_the_logs(pipeline, name):
    report = (pipeline["out"] / "rediscovery.md").read_text()
    row = _table(report, name)
    directory = pipeline["out"] / name
    records = [json.loads(line) for line in _lines(directory / "search" / "individuals.jsonl")]
    trained = sum(r["cache_hit"] is None for r in records)
    assert row["programs (trained)"] == f"{len(records)} ({trained} trained)"
    children = [r for r in records if r["mutation"] != "initial"]
    hits = sum(r["cache_hit"] is not None for r in children)
    fractions = [r["redundant_fraction"] for r in children if r["redundant_fraction"] is not None]
    assert (
        row["cache hit rate / redundant"]
        == f"{hits / len(children):.1%} / {sum(fractions) / len(fractions):.1%}"
    )

    # the first Lion-family program: its trainings counted from the log up to its line
    first = re.fullmatch(r"(\d+) evaluations \(individual (\d+)\)", row["first Lion family"])
    if first is not None:
        seq = next(r["seq"] for r in records if r["id"] == int(first.group(2)))
        assert int(first.group(1)) == sum(r["cache_hit"] is None for r in records if r["seq"] <= seq)
    else:
        assert row["first Lion family"] == "none"

    # the winner: the best test mean of a candidate at the last stage of funnel.json
    funnel = json.loads((directory / "funnel" / "funnel.json").read_text())
    stage = funnel["stages"][-1]
    candidates = [r for r in stage["rows"] if r["kind"] == "candidate"]
    winner = max(candidates, key=lambda r: r["test"]["mean"])
    baselines = [r for r in stage["rows"] if r["kind"] != "candidate"]
    assert [r["baseline"] for r in baselines] == ["adamw", "lion"]
    figures = " / ".join(f"{r['test']['mean']:.4f} ± {r['test']['se']:.4f}" for r in [winner, *baselines])
    assert row["stage A (mlp_digits_tiny): best / adamw / lion"] == figures
    raw = re.match(r"\[#(\d+)\]\(([^)]+)\)", row["raw best"])
    assert int(raw.group(1)) == winner["individual"]
    logged = next(r["program"] for r in records if r["id"] == winner["individual"])
    assert load_program(str(pipeline["out"] / raw.group(2))) == dsl.parse(logged)


@pytest.mark.slow
def test_the_verdict_is_the_closest_optimizer_of_the_simplified_file(pipeline):
    report = (pipeline["out"] / "rediscovery.md").read_text()
    row = _table(report, "seed0")
    simplified = load_program(str(pipeline["out"] / "seed0" / "simplified.txt"))
    match = dsl.closest_optimizer(simplified)
    if match.lion_family:
        assert row["verdict"] == "Lion" or row["verdict"].startswith("Lion family (not Lion: ")
    else:
        assert (
            row["verdict"]
            == f"not Lion family (closest: {match.name}; {'; '.join(match.lion_family_failures)})"
        )
    for column, key, digits in (("β1", "beta1", 4), ("β2", "beta2", 4), ("lr", "learning_rate", 3)):
        value = {"beta1": match.beta1, "beta2": match.beta2}.get(key, match.constants.get(key))
        assert row[column] == ("—" if value is None else f"{value:.{digits}g}")
    summary = json.loads((pipeline["out"] / "seed0" / "summary.json").read_text())
    ablation = summary["ablation"]
    assert ablation["program"] == load_program(str(pipeline["out"] / "seed0" / "ablated.txt")).to_text()
    after = int(ablation["verdict"] == "Lion")
    assert (
        f"**Lion in {after} of 1 seeds** after ablation (before it: {int(row['verdict'] == 'Lion')} of 1)"
        in report
    )
    ablation_row = _table(report, "seed0")  # the first table holding a seed0 row is the seeds table
    assert ablation_row == row
    lines = report.splitlines()
    section = lines.index("## Ablation (the paper's simplification step 2)")
    assert lines[section + 4].startswith("| seed0 | ") and lines[section + 4].endswith(
        f" | {ablation['verdict']} |"
    )


@pytest.mark.slow
def test_the_reports_link_real_files_and_the_docs_copies(pipeline, capsys):
    from symdisc.cli import main as symdisc

    for report in (pipeline["out"] / "rediscovery.md", pipeline["docs"] / "rediscovery.md"):
        text = report.read_text()
        links = re.findall(r"\]\(([^)]+)\)", text)
        images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
        assert len(images) == 6  # fitness, cache and funnel of each run
        for link in links:
            assert (report.parent / link).is_file(), link
            assert not link.startswith(("/", "..")), link  # the docs copy stands alone
        for image in images:
            assert (report.parent / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    docs = pipeline["docs"] / "rediscovery"
    for name in ("seed0", "random-seed0"):
        run = pipeline["out"] / name
        assert (docs / f"{name}.txt").read_text() == (run / "simplified.txt").read_text()
        assert (docs / name / "funnel.md").read_text() == (run / "funnel" / "funnel.md").read_text()
        if name == "seed0":  # the ablation's program and steps, beside the funnel report
            for file in ("ablated.txt", "ablation.txt"):
                assert (docs / name / file).read_text() == (run / file).read_text()
        capsys.readouterr()
        assert symdisc(["inspect", str(run / "search")]) == 0
        assert (docs / name / "inspect.txt").read_text() == capsys.readouterr().out


@pytest.mark.slow
def test_the_ablation_drops_what_costs_nothing_and_measures_the_rest_as_the_funnel_does(pipeline, tmp_path):
    """Lion with a planted no-op (a global-norm clip at 1e6) ablated after the tiny pipeline's funnel."""
    import statistics

    import proxy_tasks
    from search._cli import make_evaluator
    from search._funnel import run_funnel
    from search._rediscovery import ablation_summary, funnel_winner
    from search._rediscovery_ablation import ablate_winner
    from search._rediscovery_report import ablation_rows

    config = load_rediscovery_config(pipeline["config"])
    run = tmp_path / "seed0"
    shutil.copytree(pipeline["out"] / "seed0", run)
    evaluator = make_evaluator(config.search)
    funnel = run_funnel(config.funnel, [str(run / "search")], run / "funnel", evaluator)  # all logged
    _, winner = funnel_winner(funnel)
    stage = funnel.stages[0]
    # Lion at a learning rate that learns mlp_digits_tiny, without weight decay (which at this size
    # changes no validation answer, so an ablation at tolerance 0 could take it too)
    lion = library.load("lion").to_text().replace("lr * 0.0001", "lr * 0.01")
    lion = dsl.parse(lion.replace("  wd = w * 0.01\n  update = update + wd\n", ""))
    text = lion.to_text()
    planted = dsl.parse(text.replace("sign(update)\n", "sign(update)\n  update = clip(update, 1000000.0)\n"))
    assert len(planted.statements) == len(lion.statements) + 1
    assert dsl.simplify(planted).program == planted  # no exact rewrite removes it: only the ablation can

    # at a tolerance of 0 only what changes nothing measurable may go: the planted clip
    ablation = ablate_winner(funnel, winner, planted, 0.0, run, run / "funnel", evaluator)
    evaluator.close()
    assert ablation.program == lion and ablation.removed == 1
    assert (run / "ablated.txt").read_text().endswith(lion.to_text())

    # validation on the tuning seeds only; the stage's seeds train the ablated program and nothing else
    tuning, seeds = set(config.funnel.tuning.seeds), list(stage.config.seeds)
    records = [json.loads(line) for line in _lines(run / "ablation" / "evaluations.jsonl")]
    ablated_hash = dsl.analyze(ablation.program).hash
    assert records and all(r["seed"] in tuning or r["hash"] == ablated_hash for r in records)
    assert all(r["seed"] in tuning or r["seed"] in seeds for r in records)

    # measured as the funnel measures, paired with the funnel's own tuned-AdamW results
    row = ablation.stages[0].row(ablation.row.label)
    task = proxy_tasks.get(stage.task)
    test = [task.evaluate(ablation.program, seed).test_fitness for seed in seeds]
    assert [r.test_fitness for r in row.results] == pytest.approx(test, abs=1e-6)
    reference = [r.test_fitness for r in stage.reference.results]
    assert row.comparison.difference == pytest.approx(
        statistics.mean(a - b for a, b in zip(test, reference, strict=True))
    )

    # its summary: the stage figures are the row's, and the verdict judges the ablated Lion (beta 0.9/0.99)
    data = ablation_summary(ablation, 0.0, "the winner's verdict", "adamw")
    figures = data["stages"][0]
    assert figures["winner"]["mean"] == pytest.approx(statistics.mean(test))
    assert figures["winner_vs_reference"]["difference"] == pytest.approx(row.comparison.difference)
    assert data["closest"]["name"] == "lion" and data["lion_family"]
    assert data["lion"] == row.comparison.beats
    summary = {**json.loads((run / "summary.json").read_text()), "ablation": data}
    files = {"seed0": {"ablated": run / "ablated.txt", "ablation_steps": run / "ablation.txt"}}
    table = "\n".join(ablation_rows([summary], files, tmp_path))
    assert table.count("\n") == 2 and "`update = interp(g, m, 0.9); update = sign(update);" in table
    assert f"| {figures['winner']['mean']:.4f} ± {figures['winner']['se']:.4f} / " in table


@pytest.mark.slow
def test_the_after_the_fact_script_gives_what_the_pipeline_gave(pipeline, tmp_path, capsys):
    run = tmp_path / "seed0"
    shutil.copytree(pipeline["out"] / "seed0", run)
    for name in ("ablated.txt", "ablation.txt"):
        (run / name).unlink()
    shutil.rmtree(run / "ablation")
    script = _script(ROOT / "scripts" / "ablate_winners.py")
    arguments = [
        "--config",
        str(pipeline["config"]),
        "--tolerance",
        str(ABLATION_TOLERANCE),
        "--quiet",
        str(run),
    ]
    assert script.main(arguments) == 0
    pipeline_ablation = json.loads((pipeline["out"] / "seed0" / "summary.json").read_text())["ablation"]
    assert json.loads((run / "ablation.json").read_text()) == pipeline_ablation
    original = pipeline["out"] / "seed0"
    assert (run / "ablation.txt").read_text() == (original / "ablation.txt").read_text()
    ours, theirs = (run / "ablated.txt").read_text(), (original / "ablated.txt").read_text()
    assert ours.split("\n", 1)[1] == theirs.split("\n", 1)[1]  # but for the header naming the run
    assert f"| {run} | [{pipeline_ablation['removed']}](" in capsys.readouterr().out


@pytest.mark.slow
def test_a_variant_equal_to_the_winner_measures_as_the_funnel_did_and_retrains_nothing(
    pipeline, tmp_path, capsys
):
    run = tmp_path / "seed0"
    shutil.copytree(pipeline["out"] / "seed0", run)
    summary = json.loads((run / "summary.json").read_text())
    variant = tmp_path / "same_as_winner.txt"
    variant.write_text(summary["winner"]["raw_program"])
    script = _script(ROOT / "scripts" / "measure_variant.py")
    assert script.main(["--config", str(pipeline["config"]), "--quiet", str(run), str(variant)]) == 0
    table = capsys.readouterr().out
    measured = [stage for stage in summary["stages"] if not stage["skipped"]]
    assert measured
    for stage in measured:
        line = next(row for row in table.splitlines() if row.startswith(f"| {stage['name']} ("))
        cells = [cell.strip() for cell in line.split("|")]
        assert cells[3] == f"{stage['winner']['mean']:.4f} ± {stage['winner']['se']:.4f}"
        assert cells[4].startswith("+0.0000 ± 0.0000")  # against the winner: itself
        for name, comparison in stage["winner_vs_baselines"].items():
            assert f"{name} (tuned): {comparison['difference']:+.4f} ± {comparison['se']:.4f}" in cells[-2]
    # the funnel's trainings of the winner were reused, not repeated (only its other forms train)
    trained = [json.loads(line) for line in _lines(run / "variants" / "same_as_winner" / "evaluations.jsonl")]
    winner_hash = dsl.analyze(dsl.parse(summary["winner"]["raw_program"])).hash
    assert trained and winner_hash not in {record["hash"] for record in trained}
    assert "Lion family:" in table


def _funnel_row(label: str, text: str, validation: list[float], tests: list[float] | None = None):
    """A candidate row of a funnel stage with these per-seed validation (and test) values."""
    from proxy_tasks import Result
    from search._funnel import Row
    from search._funnel_candidates import Candidate
    from search._funnel_stats import mean_and_se

    tests = validation if tests is None else tests
    program = dsl.analyze(text).pruned
    candidate = Candidate("run", len(label), 0, -1.9, program, dsl.analyze(text).hash, label, ("top_k",))
    results = [
        Result(v, -v, -v, 10, None, 0.0, test_fitness=t) for v, t in zip(validation, tests, strict=True)
    ]
    return Row(
        label, "candidate", candidate, None, results, mean_and_se(validation), mean_and_se(tests), None
    )


def _funnel_outcome(rows, select_on: str = "validation"):
    from types import SimpleNamespace

    return SimpleNamespace(
        stages=[SimpleNamespace(rows=rows)], runs=["run"], config=SimpleNamespace(select_on=select_on)
    )


def test_the_winner_is_chosen_on_validation_unless_the_funnel_selected_on_test():
    from search._rediscovery import funnel_winner

    lion, signum = library.load("lion").to_text(), library.load("signum").to_text()
    high, low = [-1.60, -1.61, -1.62], [-1.70, -1.71, -1.72]
    rows = [_funnel_row("lion", lion, high, low), _funnel_row("signum", signum, low, high)]
    assert funnel_winner(_funnel_outcome(rows))[1].label == "lion"
    assert funnel_winner(_funnel_outcome(rows, "test"))[1].label == "signum"
    # the one-SE rule measures the tie on the same fitness: on validation lion beats signum by 0.1
    assert funnel_winner(_funnel_outcome(rows), "shortest_within_se")[1].label == "lion"
    assert funnel_winner(_funnel_outcome(rows, "test"), "shortest_within_se")[1].label == "signum"


def test_the_shortest_within_se_winner_is_the_shortest_program_the_best_does_not_beat_by_one_se():

    from search._rediscovery import funnel_winner

    lion = library.load("lion").to_text()
    longer = lion.replace(
        "  update = sign(update)\n", "  update = sign(update)\n  s = sin(update)\n  update = update + s\n"
    )
    signum = library.load("signum").to_text()
    assert (
        len(dsl.parse(longer).statements)
        > len(dsl.parse(lion).statements)
        > len(dsl.parse(signum).statements)
    )
    best = [-1.60, -1.62, -1.61, -1.63, -1.59]
    # best minus lion, seed by seed: mean 0.002, SE 0.0064 (hand-computed): within one SE
    tied = [b - d for b, d in zip(best, [0.02, -0.015, 0.01, -0.01, 0.005], strict=True)]
    # best minus signum: mean 0.051, SE 0.0033: the best beats it
    worse = [b - d for b, d in zip(best, [0.05, 0.06, 0.04, 0.05, 0.055], strict=True)]
    failed = [-1.5, -1.5, float("-inf"), -1.5, -1.5]  # one diverged seed: never the winner
    rows = [
        _funnel_row("longer", longer, best),
        _funnel_row("lion", lion, tied),
        _funnel_row("signum", signum, worse),
        _funnel_row("sgd", library.load("sgd").to_text(), failed),
    ]
    outcome = _funnel_outcome(rows)
    assert funnel_winner(outcome)[1].label == "longer"
    assert funnel_winner(outcome, "shortest_within_se")[1].label == "lion"
    # without the tie, the best stands
    rows[1] = _funnel_row("lion", lion, [b - 0.03 for b in best])
    assert funnel_winner(outcome, "shortest_within_se")[1].label == "longer"
    with pytest.raises(ValueError, match="unknown winner rule"):
        funnel_winner(outcome, "shortest")
