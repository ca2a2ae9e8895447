"""``symdisc ops``, ``symdisc show`` and ``symdisc check``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dsl import OPS, library, parse
from symdisc.cli import main
from symdisc.exit_codes import BAD_INPUT

BAD_PROGRAM = "def train(w, g, m, lr):\n  x = sign(g)\n  update = x * y\n  return update, m\n"


def test_ops_lists_45_functions(capsys):
    assert main(["ops"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.split() and line.split()[0] in OPS]
    assert [row.split()[0] for row in rows] == list(OPS)
    assert len(rows) == 45
    assert lines[-1] == "45 functions"
    assert any(row.startswith("add (+)") for row in rows)


def test_show_prints_canonical_text(capsys):
    assert main(["show", "lion"]) == 0
    out = capsys.readouterr().out
    assert out == library.load("lion").to_text()
    assert "  update = sign(update)\n" in out


def test_show_a_file(tmp_path, capsys):
    file = tmp_path / "mine.txt"
    file.write_text("# mine\ndef train(w, g, lr):\n  update = g * lr  # plain\n  return update\n")
    assert main(["show", str(file)]) == 0
    assert capsys.readouterr().out == "def train(w, g, lr):\n  update = g * lr\n  return update\n"


def test_check_a_good_file(tmp_path, capsys):
    file = tmp_path / "good.txt"
    program = library.load("adamw")
    file.write_text(program.to_text())
    assert main(["check", str(file)]) == 0
    captured = capsys.readouterr()
    assert f"{len(program.statements)} statements, 2 state slots" in captured.out
    assert captured.err == ""


@pytest.mark.parametrize(
    "text,line,words",
    [
        (BAD_PROGRAM, 3, "'y' is read before it is assigned"),
        ("def train(w, g, m, lr):\n  update = norm(g)\n  return update, m\n", 3, "must be a tree"),
        ("def train(w, g, m, lr):\n  update = = g\n  return update, m\n", 2, "syntax error"),
    ],
)
def test_check_a_bad_file_fails_with_line(tmp_path, capsys, text, line, words):
    file = tmp_path / "bad.txt"
    file.write_text(text)
    assert main(["check", str(file)]) != 0
    captured = capsys.readouterr()
    assert f"line {line}:" in captured.err and words in captured.err
    assert str(file) in captured.err
    assert captured.out == ""


def test_check_unknown_program(capsys):
    assert main(["check", "no_such_optimizer"]) != 0
    assert "neither a program file nor a library program" in capsys.readouterr().err


def test_every_library_program_checks(capsys):
    for name in library.names():
        assert main(["check", name]) == 0, name
    assert capsys.readouterr().err == ""


def test_command_line_in_a_subprocess(tmp_path):
    """The installed entry point, end to end, in a fresh interpreter."""
    bad = tmp_path / "bad.txt"
    bad.write_text(BAD_PROGRAM)
    command = [sys.executable, "-m", "symdisc"]
    show = subprocess.run([*command, "show", "lion"], capture_output=True, text=True, timeout=120)
    assert show.returncode == 0, show.stderr
    assert parse(show.stdout) == library.load("lion")
    check = subprocess.run([*command, "check", str(bad)], capture_output=True, text=True, timeout=120)
    assert check.returncode != 0
    assert "line 3:" in check.stderr and "'y' is read before it is assigned" in check.stderr


def test_check_a_program_that_divides_a_constant_by_zero(tmp_path):
    file = tmp_path / "by_zero.txt"
    file.write_text("def train(w, g, lr):\n  c = divide(1.0, -1e-08)\n  update = g * c\n  return update\n")
    command = [sys.executable, "-m", "symdisc", "check", str(file)]
    check = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    assert "valid (2 statements, 0 state slots)" in check.stdout
    assert "fingerprint:" in check.stdout and check.stderr == ""


def test_a_closed_output_pipe_is_a_quiet_exit():
    # No reader at all: the first write fails (as in `symdisc ops | head -1` once head exits).
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "wb") as stdout:
        completed = subprocess.run(
            [sys.executable, "-m", "symdisc", "ops"],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert completed.returncode == 141
    assert completed.stderr == ""


def test_a_file_that_is_not_text_is_a_clear_error(tmp_path, capsys):
    file = tmp_path / "image.txt"
    file.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    assert main(["check", str(file)]) == BAD_INPUT
    captured = capsys.readouterr()
    assert captured.err == f"{file}: line 1: not UTF-8 text (byte 0x89 at offset 0)\n"
    assert captured.out == ""


def test_bad_input_exits_with_one_code_in_every_subcommand(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text(BAD_PROGRAM)
    config = tmp_path / "config.yaml"
    config.write_text("search: {initial_program: " + str(bad) + "}\n")
    commands = {
        "show": ["show", str(bad)],
        "show a missing file": ["show", str(tmp_path / "missing.txt")],
        "show --png": ["show", "lion", "--png", str(tmp_path / "x.png")],
        "check": ["check", str(bad)],
        "check a type error": ["check", str(tmp_path / "type_error.txt")],
        "evaluate": ["evaluate", str(bad), "--task", "mlp_digits_tiny"],
        "evaluate an unknown task": ["evaluate", "lion", "--task", "no_such_task"],
        "tune": ["tune", str(bad), "--task", "mlp_digits_tiny"],
        "tune a program without an lr constant": ["tune", "sgd_no_lr.txt", "--task", "mlp_digits_tiny"],
        "run": ["run", str(config), "--out", str(tmp_path / "run")],
        "resume": ["resume", str(tmp_path / "not_a_run")],
    }
    (tmp_path / "not_a_run").mkdir()
    (tmp_path / "type_error.txt").write_text("def train(w, g, lr):\n  update = norm(g)\n  return update\n")
    (tmp_path / "sgd_no_lr.txt").write_text("def train(w, g, lr):\n  update = sign(g)\n  return update\n")
    commands["tune a program without an lr constant"][1] = str(tmp_path / "sgd_no_lr.txt")
    codes = {name: main(argv) for name, argv in commands.items()}
    assert codes == dict.fromkeys(commands, BAD_INPUT)
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == len(commands)  # one line each, no traceback
    assert sum(str(bad) in line and "line 3:" in line for line in errors) == 5
