"""``symdisc check`` and ``symdisc show --graph``."""

from __future__ import annotations

import io
import shutil

import pytest
from matplotlib import image

import dsl
from dsl._dataflow_png import draw_dataflow_png
from symdisc.cli import main
from symdisc.exit_codes import BAD_INPUT

REDUNDANT = """\
# two dead statements and an unused slot
def train(w, g, m, v, lr):
  v = square(g)
  m = interp(g, m, 0.9)
  t = norm(m)
  update = m * lr
  v = abs(m)
  return update, m, v
"""


def test_check_reports_hash_fingerprint_live_state_and_redundant_lines(tmp_path, capsys):
    path = tmp_path / "redundant.txt"
    path.write_text(REDUNDANT)
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    program = dsl.parse(REDUNDANT)
    assert f"{path}: valid (5 statements, 2 state slots)" in out
    assert f"hash:         {dsl.functional_hash(program)}" in out
    assert f"fingerprint:  {dsl.fingerprint(program)}" in out
    assert "live state:   m\n" in out
    assert "unused state: v " in out
    assert "redundant:    3 of 5 statements (60%)" in out
    assert "    line 3: v = square(g)\n    line 5: t = norm(m)\n    line 7: v = abs(m)\n" in out


def test_check_of_a_clean_library_program(capsys):
    assert main(["check", "lion"]) == 0
    out = capsys.readouterr().out
    assert "lion: valid (7 statements, 1 state slot)" in out
    assert "redundant:    0 of 7 statements (0%)" in out
    assert "unused state" not in out


def test_check_of_an_invalid_program_names_the_line(tmp_path, capsys):
    path = tmp_path / "bad.txt"
    path.write_text("def train(w, g, lr):\n  n = norm(lr)\n  update = g * n\n  return update\n")
    assert main(["check", str(path)]) == BAD_INPUT
    captured = capsys.readouterr()
    assert "invalid: line 2: norm reduces a tree, got a scalar" in captured.err
    assert captured.out == ""


def test_show_graph_prints_dot(capsys):
    assert main(["show", "--graph", "lion"]) == 0
    out = capsys.readouterr().out
    assert out == dsl.to_dot(dsl.dataflow(dsl.library.load("lion")))


def test_show_graph_draws_a_program_that_does_not_type_check(tmp_path, capsys):
    path = tmp_path / "bad.txt"
    path.write_text("def train(w, g, lr):\n  n = norm(lr)\n  update = g * n\n  return update\n")
    assert main(["show", str(path)]) == BAD_INPUT
    assert "line 2: norm reduces a tree, got a scalar" in capsys.readouterr().err
    assert main(["show", "--graph", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == dsl.to_dot(dsl.dataflow(dsl.library.load_program(str(path))))
    assert captured.err == ""


def test_show_without_graph_still_prints_the_program(capsys):
    assert main(["show", "lion"]) == 0
    assert capsys.readouterr().out == dsl.library.load("lion").to_text()


def test_png_needs_graph(capsys):
    assert main(["show", "lion", "--png", "x.png"]) == BAD_INPUT
    assert "--png needs --graph" in capsys.readouterr().err


def test_png_without_graphviz_is_drawn_with_networkx(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no 'dot' on it
    target = tmp_path / "lion.png"
    assert main(["show", "--graph", "lion", "--png", str(target)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("digraph train {")
    assert "drawn with networkx and matplotlib" in captured.err
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(target)
    assert pixels.shape[0] >= 300 and pixels.shape[1] >= 600 and pixels[..., :3].std() > 0.05


def test_networkx_drawing_shows_every_statement_and_points_down():
    program = dsl.parse(REDUNDANT)
    graph = dsl.dataflow(program)
    drawn = draw_dataflow_png(graph, io.BytesIO())
    statements = [f"line {program.line_of(i)}: {s.to_text()}" for i, s in enumerate(program.statements)]
    assert sorted(v for k, v in drawn["labels"].items() if k.startswith("statement:")) == sorted(statements)
    assert {"w", "g", "m", "v", "lr", "update", "next m", "next v"} <= set(drawn["labels"].values())
    assert not any(k.startswith("const:") for k in drawn["positions"])  # constants are in the text
    y = {node: position[1] for node, position in drawn["positions"].items()}
    for source, target, data in graph.edges(data=True):
        if data["kind"] == "data" and not source.startswith("const:"):
            assert y[source] > y[target], f"{source} -> {target} does not point down"
    assert {(u, v) for u, v in drawn["edges"]} == {
        (u, v) for u, v in graph.edges if not u.startswith("const:")
    }


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_png_with_graphviz(tmp_path):
    target = tmp_path / "lion.png"
    assert main(["show", "--graph", "lion", "--png", str(target)]) == 0
    assert target.read_bytes().startswith(b"\x89PNG")
