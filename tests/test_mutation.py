"""Mutations: every kind occurs, breeding yields only valid children, constants move as the paper says."""

from collections import Counter

import numpy as np
import pytest

from dsl import analyze, closest_optimizer, library, parse
from dsl._random import random_program
from search import MUTATION_KINDS, MutationSettings, mutate
from search._mutation import mutate_constant_value

ALL_KINDS = MutationSettings(weights=dict.fromkeys(MUTATION_KINDS, 1.0), max_length=30)


def _valid_and_new(parent, child) -> bool:
    analysis = analyze(child)
    return analysis.valid and analysis.hash != analyze(parent).hash


@pytest.mark.parametrize("name", ["adamw_paper", "lion", "sgd", "adabelief"])
def test_every_kind_occurs_and_makes_valid_distinct_children(name):
    rng = np.random.default_rng(0)
    parent = library.load(name)
    useful = Counter()
    tried = Counter()
    for _ in range(600):
        child, kind = mutate(rng, parent, ALL_KINDS)
        tried[kind] += 1
        if _valid_and_new(parent, child):
            useful[kind] += 1
    kinds = set(MUTATION_KINDS)
    if not any(not isinstance(a, str) for s in parent.statements for a in s.args):
        kinds.discard("mutate_constant")  # no constant to change
    assert set(useful) == kinds, (tried, useful)


def test_insert_adds_one_statement_and_delete_removes_one():
    rng = np.random.default_rng(1)
    parent = library.load("adamw_paper")
    n = len(parent.statements)
    for kind, delta in (("insert", 1), ("delete", -1)):
        settings = MutationSettings(weights={kind: 1.0})
        for _ in range(50):
            child, got = mutate(rng, parent, settings)
            assert got == kind
            if child != parent:
                assert len(child.statements) == n + delta


def test_insert_targets_new_and_existing_variables():
    rng = np.random.default_rng(2)
    parent = library.load("adamw_paper")
    existing = {s.target for s in parent.statements} | set(parent.state) | {"lr"}
    new, old = 0, 0
    for _ in range(200):
        child, _ = mutate(rng, parent, MutationSettings(weights={"insert": 1.0}))
        added = (Counter(child.statements) - Counter(parent.statements)).keys()
        for statement in added:
            if statement.target in existing:
                old += 1
            else:
                new += 1
    assert new > 20 and old > 20


def test_max_length_is_never_exceeded():
    rng = np.random.default_rng(3)
    settings = MutationSettings(weights={"insert": 1.0, "delete": 0.2}, max_length=12)
    program = library.load("adamw_paper")
    for _ in range(300):
        child, _ = mutate(rng, program, settings)
        assert len(child.statements) <= 12
        if analyze(child).valid:
            program = child
    assert len(program.statements) == 12


def test_modify_argument_keeps_the_kind_of_a_variable_argument():
    """A variable argument becomes another variable of the same kind, or a constant."""
    rng = np.random.default_rng(4)
    parent = library.load("adamw_paper")
    settings = MutationSettings(weights={"modify_argument": 1.0}, constant_probability=0.0)
    changed = 0
    for _ in range(200):
        child, _ = mutate(rng, parent, settings)
        if child == parent:
            continue
        changed += 1
        # same kind everywhere means the child always type-checks
        assert analyze(child).valid, child.to_text()
        assert child.kinds == parent.kinds
    assert changed > 100


def test_constants_only_mutation_keeps_the_structure():
    rng = np.random.default_rng(5)
    parent = library.load("adamw_paper")
    settings = MutationSettings(weights={"mutate_constant": 1.0})
    for _ in range(100):
        child, kind = mutate(rng, parent, settings)
        assert kind == "mutate_constant"
        assert [(s.target, s.op) for s in child.statements] == [(s.target, s.op) for s in parent.statements]
        diffs = [
            (a, b)
            for s, t in zip(parent.statements, child.statements, strict=True)
            for a, b in zip(s.args, t.args, strict=True)
            if a != b
        ]
        assert len(diffs) <= 1
        assert all(isinstance(a, float) and isinstance(b, float) for a, b in diffs)


def test_constant_mutation_is_a_fresh_draw_or_a_power_of_two_scaling():
    rng = np.random.default_rng(6)
    fresh = [mutate_constant_value(rng, 0.001, reset_probability=1.0) for _ in range(4000)]
    assert abs(np.mean(fresh)) < 0.1 and abs(np.std(fresh) - 1.0) < 0.1
    scaled = [mutate_constant_value(rng, 0.001, reset_probability=0.0) for _ in range(4000)]
    exponents = np.log2(np.array(scaled) / 0.001)
    assert all(s > 0 for s in scaled)  # scaling keeps the sign
    assert abs(np.mean(exponents)) < 0.1 and abs(np.std(exponents) - 1.0) < 0.1


def test_mutation_is_deterministic_given_the_seed():
    parent = library.load("lion")

    def chain(seed):
        rng = np.random.default_rng(seed)
        program, out = parent, []
        for _ in range(30):
            program, kind = mutate(rng, program, ALL_KINDS)
            out.append((kind, program.to_text()))
            if not analyze(program).valid:
                program = parent
        return out

    assert chain(7) == chain(7)
    assert chain(7) != chain(8)


def test_a_program_without_applicable_mutations_is_returned_unchanged():
    program = parse("def train(w, g, lr):\n  update = sign(g)\n  return update\n")
    child, kind = mutate(
        np.random.default_rng(0), program, MutationSettings(weights={"mutate_constant": 1.0})
    )
    assert (child, kind) == (program, "none")


# ----------------------------------------------------------------------------- the random-program generator


def test_random_programs_read_step_and_reassign_every_input():
    # The search's random mode and the property tests draw from this generator, so a part
    # of the language it never draws is a part they never explore.
    programs = [random_program(np.random.default_rng(seed), 12, 2) for seed in range(200)]
    assert all(analyze(p).valid and parse(p.to_text()) == p for p in programs)
    assert 0.2 < np.mean([p.uses_step for p in programs]) < 0.8
    read_step = [p for p in programs if any("step" in s.variables() for s in p.statements)]
    assert len(read_step) > 20 and all(p.uses_step for p in read_step)
    for name in ("w", "g", "lr", "step"):
        reassigned = [p for p in programs if any(s.target == name for s in p.statements)]
        assert len(reassigned) > 10, name
    # A reassigned input is read afterwards (it is a variable like any other).
    assert any(
        statement.target in ("w", "g", "lr")
        and any(statement.target in t.variables() for t in p.statements[i + 1 :])
        for p in programs
        for i, statement in enumerate(p.statements)
    )
    without_step = random_program(np.random.default_rng(0), 12, 2, uses_step=False)
    with_step = random_program(np.random.default_rng(0), 12, 2, uses_step=True)
    assert not without_step.uses_step and with_step.uses_step


def test_random_programs_are_deterministic_given_the_seed():
    def draw(seed):
        rng = np.random.default_rng(seed)
        return [random_program(rng, length, slots).to_text() for length, slots in [(1, 0), (8, 2), (20, 4)]]

    assert draw(11) == draw(11)
    assert draw(11) != draw(12)


def test_wrap_passes_one_statement_through_a_function_of_the_same_kind():
    rng = np.random.default_rng(3)
    parent = library.load("adamw_paper")
    settings = MutationSettings(weights={"wrap": 1.0})
    functions = Counter()
    for _ in range(300):
        child, kind = mutate(rng, parent, settings)
        assert kind == "wrap"
        assert len(child.statements) == len(parent.statements) + 1
        # exactly one new statement, `x = f(x)`, right after the one that assigns x
        index = next(
            i
            for i in range(1, len(child.statements))
            if child.statements[:i] + child.statements[i + 1 :] == parent.statements
            and child.statements[i].args == (child.statements[i].target,)
        )
        new = child.statements[index]
        assert new.args == (new.target,) and child.statements[index - 1].target == new.target
        assert child.kinds[index] is child.kinds[index - 1]
        assert analyze(child).valid
        functions[new.op] += 1
    assert {"sign", "tanh", "sqrt"} <= set(functions), functions


def test_sign_wrapped_around_the_adam_update_is_one_wrap_away():
    # The stepping stone the rediscovery runs lacked (docs/rediscovery_analysis.md):
    # sign(m / sqrt(v)) from AdamW in one mutation.
    rng = np.random.default_rng(0)
    parent = library.load("adamw_paper")
    settings = MutationSettings(weights={"wrap": 1.0})
    texts = {str(mutate(rng, parent, settings)[0]) for _ in range(2000)}
    assert any("update = sign(update)" in text for text in texts)


def test_duplicate_copies_a_statement_before_it_and_points_one_reader_at_the_copy():
    rng = np.random.default_rng(5)
    parent = library.load("adamw_paper")
    settings = MutationSettings(weights={"duplicate": 1.0})
    copied_ops = Counter()
    for _ in range(300):
        child, kind = mutate(rng, parent, settings)
        assert kind == "duplicate"
        new = [
            i for i, s in enumerate(child.statements) if s.target not in {p.target for p in parent.statements}
        ]
        assert len(new) == 1, str(child)
        index = new[0]
        copy, original = child.statements[index], child.statements[index + 1]
        # The rest of the body is the parent's, except one read of the original's value.
        rest = child.statements[:index] + child.statements[index + 1 :]
        differences = [(old, now) for old, now in zip(parent.statements, rest, strict=True) if old != now]
        assert len(differences) == 1, str(child)
        old, now = differences[0]
        assert (now.target, now.op) == (old.target, old.op)
        changed = [(a, b) for a, b in zip(old.args, now.args, strict=True) if a != b]
        assert changed == [(original.target, copy.target)], str(child)
        assert parent.statements[index] == original
        # The copy calls the original's function with exactly one argument changed.
        assert copy.op == original.op
        assert sum(a != b for a, b in zip(copy.args, original.args, strict=True)) == 1, str(child)
        copied_ops[copy.op] += 1
    assert {"interp", "sqrt", "multiply"} <= set(copied_ops), copied_ops


def test_lion_is_one_duplicate_away_from_signum():
    # Signum stores and reads one momentum; Lion reads an interpolation with a smaller beta
    # than the one it stores (arXiv:2302.06675, Program 0). The verdict comes from the
    # probe-based classifier, not from the program's text.
    rng = np.random.default_rng(0)
    parent = library.load("signum")
    settings = MutationSettings(weights={"duplicate": 1.0})
    children = [mutate(rng, parent, settings)[0] for _ in range(200)]
    # children whose update reads a copy of the momentum update with a smaller beta
    split = [
        c
        for c in children
        if c.statements[0].op == "interp" and "sign(t" in str(c) and 0 < c.statements[0].args[2] < 0.86
    ]
    assert len(split) >= 10, len(split)
    for child in split[:3]:
        match = closest_optimizer(child)
        assert match.is_lion, match.report()
        assert match.beta1 == pytest.approx(child.statements[0].args[2], abs=0.01)
        assert match.beta2 == pytest.approx(0.9, abs=0.01)
    assert not closest_optimizer(parent).is_lion
