"""``search.first_lion_family``: when a run's log first holds a Lion-family program.

The logs are written by hand from library programs, so the expected position, trainings
and programs are counted here by eye; the verdicts are ``dsl.closest_optimizer``'s own.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import dsl
from dsl import library
from search import (
    MUTATION_KINDS,
    MutationSettings,
    RunDirectory,
    config_from_dict,
    first_lion_family,
    mutate,
    read_run,
)
from search._inspect import Run
from search._lion_scan import could_be_lion_family, count_lion_family
from symdisc.cli import main

CONFIG = config_from_dict(
    {"task": {"name": "mlp_digits_tiny"}, "search": {"population_size": 4}, "budget": {"programs": 10}}
)

# Hand labels from the library's files: state slots the update reads, and the Lion family
# as arXiv:2302.06675, section 2 describes it (sign of an interpolation of g and momentum).
TWO_SLOTS = {"adam", "adamw", "adamw_paper", "nadam", "amsgrad", "adabelief", "radam"}
NO_SLOT = {"sgd", "signsgd"}
LION_FAMILY = {"lion", "lion_smooth", "lion_refined", "signum", "ablation_0.9", "ablation_0.99"}

# Lion with a second slot that reaches the update but never changes a sign: Lion in
# behaviour, two live slots, so not Lion family by the rule.
LION_WITH_TWO_SLOTS = """def train(w, g, m, v, lr):
  update = interp(g, m, 0.9)
  tiny = v * 1e-30
  update = update + tiny
  update = sign(update)
  m = interp(g, m, 0.99)
  v = interp(g, v, 0.5)
  wd = w * 0.01
  update = update + wd
  lr = lr * 0.0001
  update = update * lr
  return update, m, v
"""


# Found by a rediscovery search (its 4th record): the update ignores g and the slots and is
# about 1 everywhere. Every candidate fits it badly (relative error > 0.5) and
# ablation_0.99 with 97.5% of signs right wins the tie: Lion family by the rule before it
# required a good fit and a gradient-dependent update; not Lion family now.
COS_OF_WEIGHT = """def train(w, g, m, v, lr):
  wd = w * 0.01
  update = cos(wd)
  return update, m, v
"""


def record(seq, name, fitness=0.5, cache_hit=None, parent=0):
    text = library.load(name).to_text() if "\n" not in name else name
    return {
        "seq": seq,
        "id": seq - 1,
        "parent": None if seq == 1 else parent,
        "island": 0,
        "mutation": "initial" if seq == 1 else "modify_argument",
        "program": text,
        "length": len(dsl.parse(text).statements),
        "hash": dsl.analyze(text).hash,
        "fitness": fitness,
        "failure": None if fitness is not None else "nan",
        "cache_hit": cache_hit,
        "redundant_fraction": 0.0,
    }


def run_of(records, path="hand"):
    return Run(path, CONFIG, records, [])


def test_the_prefilter_keeps_every_lion_family_library_program_and_rejects_two_slot_ones():
    for name in library.names():
        assert could_be_lion_family(library.load(name)) == (name not in TWO_SLOTS | NO_SLOT), name
    assert LION_FAMILY.isdisjoint(TWO_SLOTS)
    assert not could_be_lion_family(LION_WITH_TWO_SLOTS)
    assert not could_be_lion_family("def train(w, g, lr):\n  update = nope(g)\n  return update\n")


def test_the_prefilter_rejects_slotless_programs_and_keeps_many_others():
    # A signature without slots has no live one: the prefilter rejects all of these, and
    # keeps many others whatever their update looks like. Half the programs are
    # random, half are chains of mutations of a library program.
    rng = np.random.default_rng(7)
    settings = MutationSettings({kind: 1.0 for kind in MUTATION_KINDS})
    names = library.names()
    kept = rejected = 0
    for i in range(300):
        if i % 2:
            program = library.load(names[i % len(names)])
            for _ in range(int(rng.integers(1, 6))):
                child, _ = mutate(rng, program, settings)
                program = child if dsl.analyze(child).valid else program
        else:
            program = dsl.random_program(rng, int(rng.integers(2, 10)), state_slots=int(rng.integers(0, 4)))
        if not program.state:
            assert not could_be_lion_family(program), program.to_text()
        kept += could_be_lion_family(program)
        rejected += not could_be_lion_family(program)
    assert kept > 100 and rejected > 20, (kept, rejected)


def test_a_log_without_lion_family_programs_gives_none_without_fitting():
    # Two-slot programs are rejected by the prefilter; the failed signum never trained.
    records = [
        record(1, "adamw"),
        record(2, "adam"),
        record(3, "signum", fitness=None),
        record(4, "adamw", cache_hit="hash"),
        record(5, "nadam", fitness=float("nan")),
    ]
    assert first_lion_family(run_of(records)) is None


@pytest.mark.slow
def test_the_first_hit_is_counted_by_hand():
    records = [
        record(1, "adamw"),  # training 1
        record(2, "adamw", cache_hit="hash"),
        record(3, "nadam"),  # training 2
        record(4, "signum", fitness=None),  # training 3, failed: does not count
        record(5, "adam", cache_hit="fingerprint"),
        record(6, COS_OF_WEIGHT, fitness=0.25),  # training 4: ignores the gradient, not Lion family
        record(7, "signum"),  # training 5: the first Lion-family program
        record(8, "lion"),
    ]
    for max_error in (None, 0.01):
        hit = first_lion_family(run_of(records), max_error=max_error)
        assert (hit.seq, hit.id, hit.evaluations, hit.programs) == (7, 6, 5, 7)
        assert hit.program == records[6]["program"] and hit.fitness == 0.5 and hit.error < 0.01
    # signum is Lion family with beta1 = beta2 (its one beta), so not Lion.
    assert not hit.is_lion
    assert hit.beta1 == hit.beta2 == pytest.approx(0.9, abs=0.01)

    without_signum = [r for i, r in enumerate(records) if i not in (3, 5, 6)]
    hit = first_lion_family(run_of(without_signum))
    assert (hit.seq, hit.evaluations, hit.programs) == (8, 3, 5)
    assert (
        hit.is_lion
        and hit.beta1 == pytest.approx(0.9, abs=0.01)
        and hit.beta2 == pytest.approx(0.99, abs=0.002)
    )
    assert count_lion_family(run_of(records)) == count_lion_family(run_of(records), max_error=0.01) == 2


@pytest.mark.slow
def test_programs_the_prefilter_rejects_are_not_lion_family_for_closest_optimizer():
    rng = np.random.default_rng(11)
    program = dsl.random_program(rng, 6, state_slots=2)
    while could_be_lion_family(program):
        program = dsl.random_program(rng, 6, state_slots=2)
    assert not dsl.closest_optimizer(program).lion_family, program.to_text()
    # Lion in behaviour with a second live slot: fitted by Lion, kept out by the slot rule alone.
    match = dsl.closest_optimizer(dsl.parse(LION_WITH_TWO_SLOTS))
    assert match.name == "lion" and match.sign_agreement >= 0.95
    assert not match.lion_family


@pytest.mark.slow
def test_inspect_prints_the_first_lion_family_line(tmp_path, capsys):
    path = tmp_path / "run"
    RunDirectory.create(path, CONFIG).close()
    records = [record(1, "adamw"), record(2, "adamw", cache_hit="hash"), record(3, "lion")]
    (path / "individuals.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert first_lion_family(path).id == first_lion_family(read_run(path)).id == 2
    assert main(["inspect", str(path), "--lion-family"]) == 0
    out = capsys.readouterr().out
    assert "first Lion-family program: individual 2 after 2 trainings (3 programs), Lion: yes" in out
    assert main(["inspect", str(path)]) == 0
    assert "Lion-family" not in capsys.readouterr().out
