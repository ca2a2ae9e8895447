"""``symdisc plot``: real PNG files whose series are the run's log, read independently."""

from __future__ import annotations

import json
import math
import shutil
import statistics

import numpy as np
import pytest
from _seeded_run import seeded_run
from matplotlib import image

from search._inspect import read_run
from search._plots import (
    FunnelError,
    plot_cache,
    plot_fitness,
    plot_funnel,
    plot_meta_validation,
    read_funnel,
)
from symdisc.cli import main


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    return seeded_run(tmp_path_factory)


def raw_lines(path, name="individuals.jsonl"):
    return [json.loads(line) for line in (path / name).read_text().splitlines()]


def nan_if_failed(value):
    return math.nan if value is None else value


def check_png(path, min_width=500, min_height=300):
    """A PNG file that decodes, of a sensible size, with something drawn on it."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(path)
    height, width = pixels.shape[:2]
    assert width >= min_width and height >= min_height
    assert pixels[..., :3].std() > 0.05  # not a blank page
    return pixels


def test_plot_command_writes_every_png(run_path, tmp_path, capsys):
    out = tmp_path / "plots"
    assert main(["plot", str(run_path), "--out", str(out)]) == 0
    names = ["fitness.png", "cache.png", "meta_validation.png"]
    assert capsys.readouterr().out.splitlines() == [str(out / name) for name in names]
    for name in names:
        check_png(out / name)


def test_fitness_plot_draws_the_logged_fitness_and_the_final_populations(run_path, tmp_path):
    series = plot_fitness(read_run(run_path), tmp_path / "fitness.png")
    check_png(tmp_path / "fitness.png")
    lines = raw_lines(run_path)
    fitness = [nan_if_failed(line["fitness"]) for line in lines]
    np.testing.assert_array_equal(series["x"], np.arange(1, len(lines) + 1))
    np.testing.assert_array_equal(series["fitness"], fitness)
    np.testing.assert_array_equal(series["island"], [line["island"] for line in lines])
    best, running = [], -math.inf
    for value in fitness:
        running = value if not math.isnan(value) and value > running else running
        best.append(running)
    np.testing.assert_array_equal(series["best"], best)
    # The populations are replayed from the log; the search's own final state is in its checkpoint.
    state = json.loads((run_path / "checkpoint.json").read_text())
    assert len(series["restarts"]) == state["counts"]["restarts"] > 0
    for island, members in enumerate(state["islands"]):
        values = [state["members"][str(i)]["fitness"] for i in members["members"]]
        values = [-math.inf if v is None else v for v in values]
        expected = statistics.median(values)
        drawn = series["medians"][island][-1]  # NaN where the median is a failure (-inf)
        assert drawn == expected if math.isfinite(expected) else math.isnan(drawn)


def test_cache_plot_draws_moving_rates_of_the_children(run_path, tmp_path):
    series = plot_cache(read_run(run_path), tmp_path / "cache.png")
    check_png(tmp_path / "cache.png")
    lines = raw_lines(run_path)
    children = [(n, line) for n, line in enumerate(lines, 1) if line["parent"] is not None]
    window = series["window"]
    assert window == 10
    np.testing.assert_array_equal(series["x"], [n for n, _ in children])
    for k in range(len(children)):
        recent = [line for _, line in children[max(0, k + 1 - window) : k + 1]]
        hits = sum(line["cache_hit"] is not None for line in recent)
        by_hash = sum(line["cache_hit"] == "hash" for line in recent)
        redundant = [line["redundant_fraction"] for line in recent if line["redundant_fraction"] is not None]
        assert series["hit_rate"][k] == pytest.approx(100 * hits / len(recent))
        assert series["hash_rate"][k] == pytest.approx(100 * by_hash / len(recent))
        assert series["redundant"][k] == pytest.approx(100 * sum(redundant) / len(redundant))
    assert series["hit_rate"].max() > 0, "the seeded run has a cache hit, so the plot shows one"


def test_meta_validation_plot_draws_both_tasks(run_path, tmp_path):
    # The shared run meta-validates on its own task (same numbers): lower the meta fitness
    # in a copy so that the two series differ and a swap would show.
    copy = tmp_path / "run"
    shutil.copytree(run_path, copy)
    meta = raw_lines(run_path, "meta_validation.jsonl")
    for line in meta:
        line["fitness"] = line["fitness"] - 0.5
    (copy / "meta_validation.jsonl").write_text("".join(json.dumps(line) + "\n" for line in meta))
    series = plot_meta_validation(read_run(copy), tmp_path / "meta.png")
    check_png(tmp_path / "meta.png")
    lines = raw_lines(run_path)
    assert len(meta) >= 2
    assert series["individual"] == [line["individual"] for line in meta]
    np.testing.assert_array_equal(series["meta_fitness"], [line["fitness"] for line in meta])
    by_id = {line["id"]: line for line in lines}
    np.testing.assert_array_equal(
        series["search_fitness"], [by_id[line["individual"]]["fitness"] for line in meta]
    )
    # placed at the number of individuals recorded before each meta-validation line
    np.testing.assert_array_equal(series["x"], [sum(i["seq"] < m["seq"] for i in lines) for m in meta])


LION_TEXT = "def train(w, g, m, lr):\n  update = sign(g)\n  update = update * lr\n  return update, m\n"
FUNNEL = [
    {  # as symdisc funnel (search/_funnel_report.py) writes a stage
        "name": "B",
        "task": "mlp_digits_b",
        "seeds": [0, 1],
        "rows": [
            {
                "label": "runs/a:12",
                "kind": "candidate",
                "run": "runs/a",
                "individual": 12,
                "program": LION_TEXT,
                "validation": {"mean": 0.97, "se": 0.001, "n": 2, "failed_seeds": 0},
                "test": {"mean": 0.951, "se": 0.004, "n": 2, "failed_seeds": 0},
            },
            {
                "label": "runs/b:12",
                "kind": "candidate",
                "run": "runs/b",
                "individual": 12,
                "test": {"mean": 0.944, "se": 0.006},
            },
            {
                "label": "runs/b:30",
                "kind": "candidate",
                "run": "runs/b",
                "individual": 30,
                "test": {"mean": None, "se": None, "n": 2, "failed_seeds": 2},
            },
            {
                "label": "adamw (tuned)",
                "kind": "reference",
                "baseline": "adamw (tuned)",
                "program": LION_TEXT,
                "test": {"mean": 0.948, "se": 0.003},
            },
        ],
    },  # fmt: skip
    {  # flat rows, baselines apart
        "stage": "C",
        "rows": [{"id": 12, "test_mean": 0.962, "standard_error": 0.003}, {"program_id": 40, "mean": 0.95}],
        "baselines": [{"optimizer": "lion (tuned)", "test_mean": 0.961, "test_se": 0.002}],
    },
]


def test_funnel_plot_reads_the_report_tolerantly(tmp_path):
    path = tmp_path / "funnel.json"
    path.write_text(json.dumps({"search_task": "mlp_digits_tiny", "stages": FUNNEL}))
    series = plot_funnel(read_funnel(path), tmp_path / "funnel.png")
    check_png(tmp_path / "funnel.png")
    stage_b, stage_c = series["stages"]
    assert stage_b == {
        "title": "B / mlp_digits_b",
        "labels": ["a #12", "b #12", "adamw (tuned)"],  # two runs: each id with its run
        "means": [0.951, 0.944, 0.948],
        "stderrs": [0.004, 0.006, 0.003],
        "baseline": [False, False, True],
        "left_out": 1,  # runs/b:30 failed on every seed
    }
    assert stage_c == {
        "title": "C",
        "labels": ["#12", "#40", "lion (tuned)"],
        "means": [0.962, 0.95, 0.961],
        "stderrs": [0.003, 0.0, 0.002],
        "baseline": [False, False, True],
        "left_out": 0,
    }


def test_plot_with_a_funnel_and_bad_funnels(run_path, tmp_path, capsys):
    good = tmp_path / "funnel.json"
    good.write_text(json.dumps(FUNNEL))
    out = tmp_path / "plots"
    assert main(["plot", str(run_path), "--out", str(out), "--funnel", str(good)]) == 0
    check_png(out / "funnel.png")
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    for content, message in [
        ("{not json", "cannot read the funnel report"),
        ('{"rows": []}', "expected a list of stages"),
        ('[{"rows": [{"id": 1}]}]', "no stage has a row with a test mean"),
    ]:
        bad.write_text(content)
        assert main(["plot", str(run_path), "--out", str(out), "--funnel", str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("symdisc plot: ") and message in err and err.count("\n") == 1
    with pytest.raises(FunnelError):
        read_funnel([])


def test_plot_of_something_that_is_not_a_run(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err
