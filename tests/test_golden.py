"""Golden logs: two short seeded searches must reproduce their stored logs line for line.

The search is a deterministic function of its config in-process, so any change to breeding,
the cache, budgets, restarts or meta-validation that alters a single log line fails here.
Regenerate with ``python tests/data/make_golden.py`` only when a change is meant to alter
the trajectory (the commit says why).
"""

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "make_golden", Path(__file__).parent / "data" / "make_golden.py"
)
make_golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_golden)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(make_golden.CONFIGS))
def test_a_seeded_search_reproduces_its_golden_log(tmp_path, name):
    expected = make_golden.read(name)
    got = make_golden.run(name, tmp_path / "run")
    for log in make_golden.LOGS:
        assert len(got[log]) == len(expected[log]), log
        for line, (new, old) in enumerate(zip(got[log], expected[log], strict=True), start=1):
            assert new == old, f"{log} line {line}"
    assert got["stats.json"] == expected["stats.json"]
