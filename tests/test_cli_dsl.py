"""``symdisc ops``, ``symdisc show`` and ``symdisc check``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dsl import OPS, library, parse
from symdisc.cli import main

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
    assert main(["check", str(file)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"{file}: 'utf-8' codec can't decode byte 0x89")
    assert captured.out == ""
