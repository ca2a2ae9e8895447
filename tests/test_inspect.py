"""``symdisc inspect``: a run's summary, halls of fame and lineages against its own log."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from _seeded_run import seeded_run

import dsl
from search._inspect import lineage, marked_program, program_diff, read_run, summarize
from symdisc.cli import main


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    return seeded_run(tmp_path_factory)


def raw_lines(path, name="individuals.jsonl"):
    """The log read with nothing but json (the reference the tests compare with)."""
    file = path / name
    return [json.loads(line) for line in file.read_text().splitlines()] if file.exists() else []


def raw_fitness(line):
    return -math.inf if line["fitness"] is None else line["fitness"]


def test_summary_agrees_with_the_checkpoint_the_search_wrote(run_path):
    summary = summarize(read_run(run_path))
    counts = json.loads((run_path / "checkpoint.json").read_text())["counts"]
    lines = raw_lines(run_path)
    assert summary.individuals == counts["individuals"] == len(lines) == 60
    assert summary.children == counts["valid"] == 59
    assert summary.evaluated == counts["evaluated"]
    assert summary.failed == counts["failed"]
    assert summary.hash_hits == counts["hash_hits"] and summary.fingerprint_hits == counts["fingerprint_hits"]
    assert summary.generated == counts["generated"]
    assert summary.redundant_fraction == pytest.approx(counts["redundant_sum"] / counts["redundant_count"])
    # Restarts are not in the log: inspect replays the populations; the search counted them itself.
    assert counts["restarts"] > 0
    assert len(summary.restarts) == counts["restarts"]
    assert dict((name, spent) for name, spent, _ in summary.budgets)["programs"] == 60


def test_lineage_of_the_best_follows_the_parents_in_the_log(run_path):
    lines = {line["id"]: line for line in raw_lines(run_path)}
    best = max(lines.values(), key=raw_fitness)
    expected = [best["id"]]
    while lines[expected[-1]]["parent"] is not None:
        expected.append(lines[expected[-1]]["parent"])
    expected.reverse()
    steps = lineage(read_run(run_path), best["id"])
    assert [step.record["id"] for step in steps] == expected
    assert len(steps) >= 3, "the best of this seeded run is several mutations from the warm start"
    assert steps[0].record["mutation"] == "initial" and steps[0].parent is None
    assert [raw_fitness(s.record) for s in steps] == [raw_fitness(lines[i]) for i in expected]
    for step in steps[1:]:
        parent = lines[step.record["parent"]]["program"].splitlines()
        child = lines[step.record["id"]]["program"].splitlines()
        assert step.parent["id"] == step.record["parent"]
        _check_the_diff_is_the_mutation(step.record["mutation"], parent, child, step.removed, step.added)


def _check_the_diff_is_the_mutation(mutation, parent, child, removed, added):
    """What each mutation kind does to the text, checked on the lines the diff reports."""
    if mutation == "insert":
        assert removed == [] and len(added) == 1
        line, text = added[0]
        assert child[line - 1].strip() == text and child[: line - 1] + child[line:] == parent
    elif mutation == "delete":
        assert added == [] and len(removed) == 1
        line, text = removed[0]
        assert parent[line - 1].strip() == text and parent[: line - 1] + parent[line:] == child
    else:  # modify_argument, mutate_constant: one statement changes in place
        assert len(removed) == len(added) == 1 and removed[0][0] == added[0][0]
        line = removed[0][0]
        assert parent[line - 1].strip() == removed[0][1] and child[line - 1].strip() == added[0][1]
        assert parent[: line - 1] == child[: line - 1] and parent[line:] == child[line:]


def test_a_torn_last_line_is_skipped_and_the_log_left_alone(run_path, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_path, copy)
    log = copy / "individuals.jsonl"
    torn = log.read_bytes() + b'{"seq": 61, "id": 60, "par'  # a search writing its next line
    log.write_bytes(torn)
    run = read_run(copy)
    assert [r["id"] for r in run.individuals] == [line["id"] for line in raw_lines(run_path)]
    assert log.read_bytes() == torn  # inspect never writes (resume is the one that repairs)


def test_program_diff_of_a_changed_constant():
    before = "def train(w, g, lr):\n  u = g * 0.5\n  update = u * lr\n  return update\n"
    after = "def train(w, g, lr):\n  u = g * 0.25\n  update = u * lr\n  return update\n"
    assert program_diff(before, after) == ([(2, "u = g * 0.5")], [(2, "u = g * 0.25")])


def test_marked_program_flags_exactly_the_redundant_statements():
    text = (
        "def train(w, g, m, v, lr):\n  v = square(g)\n  m = interp(g, m, 0.9)\n  t = norm(m)\n"
        "  update = m * lr\n  v = abs(m)\n  return update, m, v\n"
    )
    marked = marked_program(text).splitlines()
    flagged = [line.split("#")[0].strip() for line in marked if line.endswith("# redundant")]
    assert flagged == ["v = square(g)", "t = norm(m)", "v = abs(m)"]  # as symdisc check reports them
    assert [line.split("#")[0].rstrip() for line in marked] == text.splitlines()


def test_inspect_run_prints_the_summary_and_halls_of_fame(run_path, capsys):
    assert main(["inspect", str(run_path)]) == 0
    out = capsys.readouterr().out
    lines = raw_lines(run_path)
    counts = json.loads((run_path / "checkpoint.json").read_text())["counts"]
    hits = counts["hash_hits"] + counts["fingerprint_hits"]
    assert f"budgets: programs 60 of 60, evaluations {counts['evaluated']} (no limit)" in out
    assert f"programs: {counts['generated']} generated, 59 valid children recorded" in out
    assert f"{counts['hash_hits']} by functional hash, {counts['fingerprint_hits']} by fingerprint" in out
    assert f"cache hits: {hits} of 59 children" in out
    assert f"restarts: {counts['restarts']} (per island: " in out
    assert f"meta-validations on mlp_digits_tiny: {len(raw_lines(run_path, 'meta_validation.jsonl'))}" in out
    best = max(lines, key=raw_fitness)
    assert f"best: individual {best['id']}, fitness {best['fitness']:.4f}" in out
    # the Pareto rows: for each live length, the fittest program of that length
    rows = out.split("constants to 4 digits):\n")[1].split("\n\n")[0].splitlines()[1:]
    shown = {int(row[1:].split()[0]): int(row[1:].split()[2]) for row in rows}
    expected = {}
    for line in lines:
        live = len(line["program"].splitlines()) - 2 - len(dsl.analyze(line["program"]).redundant)
        if live not in expected or raw_fitness(line) > raw_fitness(expected[live]):
            expected[live] = line
    assert shown == {live: line["id"] for live, line in expected.items()}
    for island in (0, 1):
        mine = [line for line in lines if line["island"] == island]
        assert f"island {island}: individual {max(mine, key=raw_fitness)['id']}," in out


def test_inspect_best_prints_the_program_and_its_lineage(run_path, capsys):
    code = main(["inspect", str(run_path), "--best"])
    captured = capsys.readouterr()
    best = max(raw_lines(run_path), key=raw_fitness)
    assert captured.out.startswith(f"individual {best['id']} (island {best['island']}, {best['mutation']})")
    assert dsl.parse(best["program"]).to_text().splitlines()[1].strip() in captured.out
    assert "lineage from the warm start (" in captured.out and "individual 0: warm start" in captured.out
    _check_closest(code, captured, dsl.parse(best["program"]))


def _check_closest(code, captured, program):
    assert code == 0
    assert dsl.closest_optimizer(program).report().strip() in captured.out


def test_inspect_a_program_marks_redundant_lines(tmp_path, capsys):
    path = tmp_path / "prog.txt"
    path.write_text("def train(w, g, lr):\n  t = abs(g)\n  update = g * lr\n  return update\n")
    code = main(["inspect", str(path)])
    captured = capsys.readouterr()
    assert "  t = abs(g)" in captured.out and captured.out.splitlines()[1].endswith("# redundant")
    assert not captured.out.splitlines()[2].endswith("# redundant")
    _check_closest(code, captured, dsl.library.load_program(str(path)))


def test_inspect_an_unknown_id_is_one_line(run_path, capsys):
    assert main(["inspect", str(run_path), "--id", "999"]) == 2
    assert (
        capsys.readouterr().err == f"symdisc inspect: {run_path}: no individual 999 in the log (ids 0..59)\n"
    )


def test_inspect_bad_targets(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    assert "is not a run directory (no config.yaml)" in capsys.readouterr().err
    assert main(["inspect", "lion", "--best"]) == 2
    assert "--id and --best need a run directory" in capsys.readouterr().err
    assert main(["inspect", "no_such_program"]) == 2
    assert "neither a program file nor a library program" in capsys.readouterr().err
