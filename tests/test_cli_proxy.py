"""The proxy-task commands as a user runs them: symdisc tasks / evaluate / tune."""

import dsl
import proxy_tasks
from symdisc.cli import main
from symdisc.exit_codes import BAD_INPUT


def test_tasks_lists_every_task_with_its_size(capsys):
    assert main(["tasks"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split()[0] for row in rows] == proxy_tasks.names()
    assert {row.split()[2] for row in rows} >= {"a", "b", "c"}


def test_evaluate_prints_fitness_per_seed_and_spread(capsys):
    assert main(["evaluate", "adamw_paper", "--task", "mlp_digits_tiny", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "seed 0: fitness" in out and "seed 1: fitness" in out
    assert "mlp_digits_tiny: fitness" in out and "over 2 seed(s)" in out


def test_evaluate_rejects_unknown_task_and_bad_program(capsys, tmp_path):
    assert main(["evaluate", "lion", "--task", "no_such_task"]) == BAD_INPUT
    assert "unknown task 'no_such_task'" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_text("def train(w, g, lr):\n  update = frob(g)\n  return update\n")
    assert main(["evaluate", str(bad), "--task", "mlp_digits_tiny"]) == BAD_INPUT
    assert "line 2: unknown function 'frob'" in capsys.readouterr().err
    not_text = tmp_path / "binary.txt"
    not_text.write_bytes(b"\xff\xfe\x00")
    assert main(["evaluate", str(not_text), "--task", "mlp_digits_tiny"]) == BAD_INPUT
    assert f"{not_text}: line 1: not UTF-8 text (byte 0xff at offset 0)" in capsys.readouterr().err


def test_tune_writes_a_program_at_least_as_good(capsys, tmp_path):
    out_file = tmp_path / "tuned.txt"
    assert main(["tune", "lion", "--task", "mlp_digits_tiny", "--out", str(out_file), "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    best_line = next(line for line in out.splitlines() if line.startswith("best:"))
    task = proxy_tasks.get("mlp_digits_tiny")
    tuned = task.evaluate(dsl.parse(out_file.read_text()))
    default = task.evaluate(dsl.library.load("lion"))
    assert f"fitness {tuned.fitness:.4f}" in best_line
    assert tuned.fitness >= default.fitness
