"""``symdisc run`` / ``symdisc resume``: errors, a run, and resume after ``kill -9``."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from search import InProcessEvaluator, RunDirectory, Search, config_from_dict
from symdisc.cli import main

CONFIG = {
    "seed": 5,
    "task": {"name": "mlp_digits_tiny"},
    "search": {"population_size": 10, "tournament_size": 2},
    "mutation": {"weights": {"insert": 1, "delete": 1, "modify_argument": 1, "mutate_constant": 1}},
    "budget": {"programs": 30},
    "workers": {"backend": "inprocess"},
    "run": {"checkpoint_every": 10},
}


def write_config(tmp_path, **changes):
    data = json.loads(json.dumps(CONFIG))
    for section, values in changes.items():
        data[section].update(values)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_bad_config_exits_2_naming_the_key(tmp_path, capsys):
    path = write_config(tmp_path, search={"tournament_size": 10})
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert (
        "config.yaml: search.tournament_size: expected an int >= 2 and < search.population_size (10), got 10"
        in err
    )
    assert not (tmp_path / "run").exists()


def test_missing_config_and_bad_run_directory_exit_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
    assert main(["resume", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_run_then_resume_a_finished_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(write_config(tmp_path)), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "done: 30 programs" in err and "best fitness" in err
    best = (out / "best.txt").read_text()
    assert best.startswith("# individual ") and "def train(w, g" in best
    assert len((out / "individuals.jsonl").read_text().splitlines()) == 30
    assert main(["run", str(write_config(tmp_path)), "--out", str(out)]) == 2  # never overwrites a run
    assert "symdisc resume" in capsys.readouterr().err
    assert main(["resume", str(out), "--quiet"]) == 0
    assert "already finished" in capsys.readouterr().err
    assert len((out / "individuals.jsonl").read_text().splitlines()) == 30


def _symdisc(*args):
    return [sys.executable, "-c", "import sys; from symdisc.cli import main; sys.exit(main())", *args]


@pytest.mark.slow
def test_resume_after_kill_9_loses_nothing_and_duplicates_nothing(tmp_path):
    config_path = write_config(tmp_path, budget={"programs": 400}, run={"checkpoint_every": 20})
    out = tmp_path / "run"
    process = subprocess.Popen(_symdisc("run", str(config_path), "--out", str(out), "--quiet"))
    checkpoint = out / "checkpoint.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if checkpoint.is_file() and json.loads(checkpoint.read_text())["seq"] > 0:
            break
        time.sleep(0.05)
    time.sleep(0.3)  # let it write a few lines past the checkpoint
    assert process.poll() is None, "the run finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = (out / "individuals.jsonl").read_text().splitlines()
    before = [line for line in before if line.endswith("}")]
    state = json.loads(checkpoint.read_text())
    assert 0 < state["seq"] < 400 and not state["finished"]

    resumed = subprocess.run(_symdisc("resume", str(out), "--quiet"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr

    records = RunDirectory.open(out).read_log()
    assert [r["id"] for r in records] == list(range(400))  # none lost, none twice
    assert [r["seq"] for r in records] == list(range(1, 401))
    after = (out / "individuals.jsonl").read_text().splitlines()
    assert after[: len(before)] == before  # every line written before the kill is kept as it was
    state = json.loads(checkpoint.read_text())
    assert state["finished"] and state["counts"]["individuals"] == 400
    assert state["counts"]["evaluated"] == sum(r["cache_hit"] is None for r in records)

    # and the resumed run is the run that was never interrupted (in-process, same seed)
    config = config_from_dict(yaml.safe_load(config_path.read_text()))
    rundir = RunDirectory.create(tmp_path / "reference", config)
    Search(config, rundir).run(InProcessEvaluator(config.task.name))
    rundir.close()
    keys = ("id", "parent", "program", "hash", "fitness", "cache_hit")
    reference = [[r[k] for k in keys] for r in rundir.read_log()]
    assert [[r[k] for k in keys] for r in records] == reference
    assert Path(out / "best.txt").read_text() == (tmp_path / "reference" / "best.txt").read_text()


def test_progress_line_shows_the_live_numbers_and_quiet_shows_nothing():
    import io

    from search import Progress

    stats = {
        "evaluated": 120,
        "individuals": 800,
        "failed": 7,
        "best_fitness": 0.93121,
        "cache_hit_rate": 0.84,
        "redundant_fraction": 0.612,
    }
    stream = io.StringIO()
    progress = Progress(stream=stream, interval=0)
    progress.update(stats)
    progress.message("restart from the best")
    line = stream.getvalue().splitlines()[0]
    assert line.startswith("evals 120 (") and "/s)" in line
    assert (
        "programs 800" in line
        and "best 0.9312" in line
        and "cache 84.0%" in line
        and "redundant 61.2%" in line
    )
    assert stream.getvalue().splitlines()[1] == "restart from the best"
    quiet = io.StringIO()
    Progress(quiet=True, stream=quiet).update(stats)
    assert quiet.getvalue() == ""
