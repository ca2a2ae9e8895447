"""dsl.update_scales_with_lr, and the search's option that breeds only such programs."""

import numpy as np
import pytest

import dsl
from dsl import library
from search import MutationSettings
from search._breeding import mutate_until_valid, random_valid_program


def program(*lines: str, signature: str = "w, g, m, lr", returns: str = "update, m") -> dsl.Program:
    body = "\n".join(f"  {line}" for line in lines)
    return dsl.parse(f"def train({signature}):\n{body}\n  return {returns}\n")


@pytest.mark.parametrize("name", library.names())
def test_every_library_optimizer_scales_its_update_with_lr(name):
    assert dsl.update_scales_with_lr(library.load(name))


@pytest.mark.parametrize(
    ("lines", "scales"),
    [
        (("m = interp(g, m, 0.9)", "update = m * lr"), True),
        (("m = interp(g, m, 0.9)", "lr = lr * 0.001", "update = m * lr"), True),
        # the rediscovery winners' kind: the schedule replaced by a constant
        (("m = interp(g, m, 0.9)", "update = m * 0.001"), False),
        (("m = interp(g, m, 0.9)", "lr = sqrt(lr)", "update = m * lr"), False),
        (("m = interp(g, m, 0.9)", "lr = sign(lr)", "update = m * lr"), False),
        (("m = interp(g, m, 0.9)", "update = m + lr"), False),
        # lr reaches the slot too: the update goes as lr squared
        (("u = g * lr", "m = interp(u, m, 0.9)", "update = m * lr"), False),
        # ... unless the direction forgets the slot's scale
        (("u = g * lr", "m = interp(u, m, 0.9)", "s = sign(m)", "update = s * lr"), True),
        (("update = g * 0.0",), False),  # no update to scale
    ],
)
def test_programs_that_do_and_do_not_scale_with_lr(lines, scales):
    assert dsl.update_scales_with_lr(program(*lines)) is scales


def test_breeding_with_the_option_yields_only_children_that_scale_with_lr():
    parent = library.load("adamw_paper")
    parent_hash = dsl.analyze(parent).hash
    weights = {"insert": 1.0, "delete": 1.0, "modify_argument": 1.0, "mutate_constant": 1.0, "wrap": 1.0}
    free, constrained = MutationSettings(weights), MutationSettings(weights, update_scales_with_lr=True)
    rng = np.random.default_rng(0)
    free_children = [mutate_until_valid(rng, parent, parent_hash, free).program for _ in range(200)]
    assert not all(dsl.update_scales_with_lr(child) for child in free_children)  # the option matters
    rng = np.random.default_rng(0)
    for _ in range(200):
        assert dsl.update_scales_with_lr(mutate_until_valid(rng, parent, parent_hash, constrained).program)
    rng = np.random.default_rng(0)
    for _ in range(30):
        child = random_valid_program(rng, 10, 2, require_lr_scaling=True)
        assert dsl.update_scales_with_lr(child.program)
