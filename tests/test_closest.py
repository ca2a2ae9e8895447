"""dsl.closest_optimizer: fitted library optimizers, the verdict, and the Lion family."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest

import dsl
from dsl import _closest, library

# Tolerances for recovering perturbed constants, (1 - beta, learning rate, weight decay),
# relative. Smooth optimizers: the betas are searched to 2e-4 of 1 - beta and the learning
# rate and weight decay solved exactly, so 1%, 0.1% and 1% leave room for float32 rounding.
# Sign-based ones: a beta matters only where it flips a sign, and on the probe a band of
# betas a few percent of 1 - beta wide gives identical signs (measured: up to 5% for
# Lion's beta1); one sign flipped more or less moves the fitted weight decay, which is a
# small term, by up to 7%. So 10%, 1% and 10%.
SMOOTH_TOLERANCE = (0.01, 1e-3, 0.01)
SIGN_TOLERANCE = (0.10, 0.01, 0.10)


def body(text: str, signature: str = "w, g, m, lr", returns: str = "update, m") -> dsl.Program:
    lines = "\n".join(f"  {line}" for line in textwrap.dedent(text).strip().splitlines())
    return dsl.parse(f"def train({signature}):\n{lines}\n  return {returns}\n")


def perturbed(name: str, seed: int) -> tuple[dsl.Program, dict[str, float]]:
    """Library program ``name`` with every named constant moved by a random factor."""
    rng = np.random.default_rng(seed)
    constants = {}
    for key, value in _closest.CONSTANTS[name].items():
        if key in _closest.LINEAR:
            constants[key] = value * float(rng.uniform(0.5, 2.0))
        else:  # keep beta in (0, 1): move 1 - beta by a factor in [0.7, 1.4]
            constants[key] = 1.0 - (1.0 - value) * float(rng.uniform(0.7, 1.4))
    candidate = next(c for c in _closest.candidates() if name in c.members)
    return candidate.fitted_program(constants), constants


def assert_fails(match, reason):
    """Not Lion family, for ``reason`` among the reasons the match gives, also in its report."""
    assert not match.lion_family, match.report()
    assert any(reason in failure for failure in match.lion_family_failures), match.lion_family_failures
    assert reason in match.report()


def test_every_library_optimizer_is_a_candidate_with_named_constants():
    assert set(_closest.CONSTANTS) == set(library.names())
    members = [m for c in _closest.candidates() for m in c.members]
    assert sorted(members) == library.names()
    lion = next(c for c in _closest.candidates() if c.name == "lion")
    places = dict(lion.locations)
    assert places["beta1"] == ((0, 2),) and places["beta2"] == ((2, 2),)
    assert places["weight_decay"] == ((3, 1),) and places["learning_rate"] == ((5, 1),)
    # Programs equal up to their constants are one candidate.
    assert next(c for c in _closest.candidates() if "ablation_0.99" in c.members).members == (
        "ablation_0.9",
        "ablation_0.99",
    )


def test_fitted_program_substitutes_every_occurrence_and_derived_constants():
    radam = next(c for c in _closest.candidates() if c.name == "radam")
    program = radam.fitted_program({"beta1": 0.8, "beta2": 0.99, "learning_rate": 0.002})
    constants = [a for s in program.statements for a in s.args if isinstance(a, float)]
    assert 0.9 not in constants and 0.999 not in constants and 0.001 not in constants
    assert constants.count(0.8) == 2  # interp and the bias correction's power
    rho_infinity = 2 / (1 - 0.99) - 1
    assert any(math.isclose(c, rho_infinity) for c in constants)
    assert any(math.isclose(c, (rho_infinity - 4) * (rho_infinity - 2)) for c in constants)


def assert_recovered(fitted: dict[str, float], true: dict[str, float], sign_based: bool):
    beta_tolerance, rate_tolerance, decay_tolerance = SIGN_TOLERANCE if sign_based else SMOOTH_TOLERANCE
    assert set(fitted) == set(true)
    for key, value in true.items():
        if key == "learning_rate":
            assert fitted[key] == pytest.approx(value, rel=rate_tolerance), key
        elif key == "weight_decay":
            assert fitted[key] == pytest.approx(value, rel=decay_tolerance), key
        else:
            assert 1 - fitted[key] == pytest.approx(1 - value, rel=beta_tolerance), key


def uses_sign(name: str) -> bool:
    return any(s.op == "sign" for s in library.load(name).statements)


@pytest.mark.slow
@pytest.mark.parametrize("name", library.names())
def test_perturbed_library_optimizer_is_named_and_its_constants_recovered(name):
    program, constants = perturbed(name, seed=sum(map(ord, name)))
    match = dsl.closest_optimizer(program)
    assert match.name == name, match.report()
    assert_recovered(match.constants, constants, uses_sign(name))
    assert match.error < (0.05 if uses_sign(name) else 1e-3)  # 0.05: a sign or two flipped
    assert match.sign_agreement > 0.999
    assert match.ranking[0] is match.best and len(match.ranking) == len(_closest.candidates())
    assert match.lion_family == (name in _closest.LION_FAMILY)


@pytest.mark.xfail(
    reason="known weakness: the search for two betas of a sign-based optimizer can miss the narrow "
    "well of exact signs (here it ends at beta1 near 1); see docs/dsl.md",
    strict=False,
)
def test_lion_with_other_betas_and_the_lion_rule():
    lion = next(c for c in _closest.candidates() if c.name == "lion")
    constants = {"beta1": 0.92, "beta2": 0.99, "weight_decay": 0.1, "learning_rate": 3e-5}
    match = dsl.closest_optimizer(lion.fitted_program(constants))
    assert match.name == "lion"
    assert_recovered(match.constants, constants, sign_based=True)
    assert match.lion_family and match.is_lion  # beta2 - beta1 = 0.07 >= 0.04
    assert match.lion_family_failures == ()
    assert match.beta1 == pytest.approx(0.92, abs=0.008) and match.beta2 == pytest.approx(0.99, abs=0.001)
    report = match.report()
    assert report.startswith("closest known optimizer: lion")
    assert "Lion family: yes" in report and "Lion (beta2 - beta1 >= 0.04): yes" in report


def test_sign_written_another_way_is_lion_and_an_unused_slot_does_not_count():
    # sign(c) = c / sqrt(c * c) up to the 1e-8 in the division; slot v is never read.
    program = body(
        """
        c = interp(g, m, 0.9)
        c2 = c * c
        size = sqrt(c2)
        update = c / size
        m = interp(g, m, 0.99)
        v = g * 2.0
        wd = w * 0.01
        update = update + wd
        lr = lr * 0.0001
        update = update * lr
        """,
        signature="w, g, m, v, lr",
        returns="update, m, v",
    )
    match = dsl.closest_optimizer(program)
    assert match.name == "lion" and match.lion_family and match.is_lion
    assert match.live_state_slots == ("m",)


def test_single_beta_sign_is_lion_family_but_not_lion():
    match = dsl.closest_optimizer(library.load("signum"))
    assert match.name == "signum" and match.lion_family and not match.is_lion
    assert match.beta1 == match.beta2 == pytest.approx(0.9, abs=0.01)


def test_momentum_has_lion_signs_but_is_not_lion_family():
    # Its update has the signs of a single-beta Lion, but it is not a sign: momentum wins.
    match = dsl.closest_optimizer(library.load("momentum"))
    assert match.name == "momentum"
    assert_fails(match, "the best fit is not a Lion-family optimizer")
    ablation = next(f for f in match.ranking if f.name.startswith("ablation") or f.name == "signum")
    assert ablation.sign_agreement > 0.99


def test_lion_with_a_second_live_slot_is_not_lion_family():
    # The second slot only nudges the update: the signs still agree, the memory does not.
    program = body(
        """
        c = interp(g, m, 0.9)
        update = sign(c)
        m = interp(g, m, 0.99)
        v = interp(g, v, 0.5)
        tiny = v * 1e-9
        update = update + tiny
        lr = lr * 0.0001
        update = update * lr
        """,
        signature="w, g, m, v, lr",
        returns="update, m, v",
    )
    match = dsl.closest_optimizer(program)
    assert match.name in _closest.LION_FAMILY and match.sign_agreement > 0.99
    assert match.live_state_slots == ("m", "v")
    assert_fails(match, "2 live state slots, not 1")


def test_low_sign_agreement_is_not_lion_family():
    # Lion's sign plus a gradient term that outweighs it on arrays with large gradients.
    program = body(
        """
        c = interp(g, m, 0.9)
        update = sign(c)
        m = interp(g, m, 0.99)
        noise = g * 300.0
        update = update + noise
        lr = lr * 0.0001
        update = update * lr
        """
    )
    match = dsl.closest_optimizer(program)
    assert match.sign_agreement < 0.95 or match.name not in _closest.LION_FAMILY
    assert_fails(match, "sign agreement" if match.name in _closest.LION_FAMILY else "not a Lion-family")


def test_non_finite_programs():
    never = body("x = g * 0.0\nupdate = log(x)")  # log(0) = -inf everywhere
    with pytest.raises(ValueError, match="none of the program's updates"):
        dsl.closest_optimizer(never)
    with pytest.raises(dsl.ProgramError):
        dsl.closest_optimizer(body("update = norm(g)"))


# Programs that are not "the sign of an interpolation between the gradient and a momentum
# slot": each ignores the gradient. Under the rule before the fit and gradient checks, the
# first (found by a rediscovery search) was Lion family: every candidate fits it at 0.52 or
# worse, its updates are all positive, and ablation_0.99 agrees with 97.5% of their signs.
DEGENERATE = {
    "cos_of_weight": "def train(w, g, m, v, lr):\n  wd = w * 0.01\n  update = cos(wd)\n  return update, m, v\n",
    "cos_of_weight_times_lr": "def train(w, g, m, lr):\n  wd = w * 0.01\n  update = cos(wd)\n"
    "  update = update * lr\n  return update, m\n",
    "constant": "def train(w, g, lr):\n  zero = w * 0.0\n  update = zero + 0.001\n  update = update * lr\n"
    "  return update\n",
    "weight": "def train(w, g, m, lr):\n  update = w * lr\n  return update, m\n",
    "sign_of_weight": "def train(w, g, lr):\n  update = sign(w)\n  lr = lr * 0.001\n  update = update * lr\n"
    "  return update\n",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_an_update_that_ignores_the_gradient_is_not_lion_family(name):
    program = dsl.parse(DEGENERATE[name])
    match = dsl.closest_optimizer(program)
    assert not match.lion_family, match.report()
    assert match.gradient_error == math.inf  # u(g) = u(-g): no gradient-odd part
    assert not _closest.screen_lion_family(program)
    if name.startswith("cos"):  # every update positive: agreement on negative ones is 0
        assert match.balanced_sign_agreement == 0.0


def lion_variant(direction: str, beta1=0.9, beta2=0.99, decay=0.01) -> dsl.Program:
    """Lion with another odd function of the interpolation ``c`` (lines computing ``d``)."""
    return body(
        f"""
        c = interp(g, m, {beta1})
        {direction}
        m = interp(g, m, {beta2})
        wd = w * {decay}
        update = d + wd
        lr = lr * 0.0001
        update = update * lr
        """
    )


LION_FAMILY_VARIANTS = {
    "lion_0.85_0.98": lion_variant("d = sign(c)", 0.85, 0.98),
    "lion_0.85_0.98_no_decay": lion_variant("d = sign(c)", 0.85, 0.98, 0.0),
    "lion_decay_1": lion_variant("d = sign(c)", decay=1.0),
    "tanh_3c": lion_variant("c3 = c * 3.0\n        d = tanh(c3)"),
    "tanh_0.3c": lion_variant("c3 = c * 0.3\n        d = tanh(c3)"),
    "clip_3c": lion_variant("c3 = c * 3.0\n        c3 = max(c3, -1.0)\n        d = min(c3, 1.0)"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", [*sorted(_closest.LION_FAMILY), *sorted(LION_FAMILY_VARIANTS)])
def test_lion_family_programs_stay_lion_family_and_pass_the_screen(name):
    program = LION_FAMILY_VARIANTS.get(name) or library.load(name)
    match = dsl.closest_optimizer(program)
    assert match.lion_family, match.report()
    assert match.error <= _closest.LION_MAX_ERROR and match.gradient_error <= _closest.LION_MAX_ERROR
    assert _closest.screen_lion_family(program)


def test_the_probe_gradients_are_balanced_in_sign():
    # Sign agreement means something only if the gradients, and so a Lion-family
    # update, are not mostly one sign: each array's are near half positive.
    for leaf in _closest._probe().gradients:
        assert 0.35 < float(np.mean(leaf > 0)) < 0.65


def test_the_gradient_odd_part_of_lion_is_its_sign_term():
    # Hand reference: lr * sign(0.9 * m + 0.1 * g) with m = 0.99 * m + 0.01 * g, on the
    # weights the program saw; the weight-decay term cancels.
    target = _closest._Target(library.load("lion"))
    g = target.gradients.astype(np.float64)
    m = np.zeros_like(g[0])
    expected = np.empty_like(g)
    for t in range(len(g)):
        expected[t] = 1e-4 * np.sign(0.9 * m + 0.1 * g[t])
        m = 0.99 * m + 0.01 * g[t]
    np.testing.assert_allclose(target.odd, expected, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("name", ["momentum", "lion_smooth", "sgd", "signum"])
def test_the_screen_bound_is_below_every_sign_fit(name):
    # The bound must hold for any constants of any sign-based candidate: random ones here.
    target = _closest._Target(library.load(name))
    bound = _closest._sign_magnitude_bound(target)
    rng = np.random.default_rng(3)
    for candidate in _closest.candidates():
        if not any(s.op == "sign" for s in candidate.program.statements):
            continue
        if not set(candidate.members) & set(_closest.LION_FAMILY):
            continue
        for _ in range(20):
            values = {n: 1 - 10 ** rng.uniform(-4, 0) for n in candidate.names}
            values["learning_rate"] = float(10 ** rng.uniform(-6, 0)) * rng.choice([-1, 1])
            if "weight_decay" in values:
                values["weight_decay"] = float(10 ** rng.uniform(-3, 1))
            row = np.asarray([[values[n] for n in candidate.names]])
            updates = target.candidate_updates(candidate, row)[0]
            checks = _closest._lion_checks(target, candidate, row, updates)
            assert checks.gradient_error >= bound - _closest.SCREEN_ROUNDING_MARGIN, (name, values)


@pytest.mark.slow
def test_momentum_with_weight_decay_is_not_lion_family():
    # Found by a rediscovery search: no candidate is momentum with weight decay, and
    # lion_refined (clip of c, linear for |c| < 1) fits it at 0.05 with every check but
    # the last passed; momentum fitted to the gradient-odd part alone is exact.
    program = body(
        """
        m = interp(g, m, 0.9)
        update = m / 0.8011514469317228
        wd = w * -1.1648636219712387
        update = update + wd
        lr = 0.7671185432439538 * 0.001
        update = update * lr
        """
    )
    match = dsl.closest_optimizer(program)
    assert match.name in _closest.LION_FAMILY and match.error < _closest.LION_MAX_ERROR
    assert match.linear_gradient_error < 1e-5 < match.gradient_error
    assert_fails(match, "a linear momentum fits the gradient-odd part")
    assert not _closest.screen_lion_family(program)


@pytest.mark.slow
def test_a_tanh_too_soft_to_leave_its_linear_range_is_not_lion_family():
    # Without weight decay, tanh(0.3 c) stays in its linear range on the probe: a linear
    # momentum fits its gradient-odd part at 0.020 against lion_smooth's 0.013, within the
    # margin, so the program is told from a momentum by nothing it does.
    match = dsl.closest_optimizer(lion_variant("c3 = c * 0.3\n        d = tanh(c3)", decay=0.0))
    assert match.name == "lion_smooth"
    assert match.linear_gradient_error < _closest.LION_LINEAR_MARGIN * match.gradient_error
    assert not match.lion_family, match.report()


@pytest.mark.slow
def test_momentum_over_a_gradient_norm_is_not_lion_family():
    # Found by a rediscovery search (seed 0, log line 691): lion_refined fits it at 0.101,
    # within every other bound, but a linear momentum fits its gradient-odd part at 0.125;
    # genuine Lion-K variants fit 3x (tanh(0.3 c)) to 1e8x (sign) better than linear.
    program = dsl.parse(
        """def train(w, g, m, v, lr):
  g2 = square(g)
  m = interp(g, m, 0.9)
  d = g2 * 0.094
  d = d + 0.951
  s = sqrt(d)
  update = m / s
  lr = lr * 0.001
  update = update * lr
  return update, m, v
"""
    )
    match = dsl.closest_optimizer(program)
    assert match.name in _closest.LION_FAMILY and match.error < _closest.LION_MAX_ERROR
    assert match.gradient_error < match.linear_gradient_error < 2 * match.gradient_error
    assert not match.lion_family, match.report()
    assert not _closest.screen_lion_family(program)


@pytest.mark.slow
def test_sign_descent_without_a_momentum_slot_is_not_lion_family():
    # A rediscovery search's first "Lion-family" program was sign(g) with a weight decay:
    # a signum with betas near 0 fits it, but Lion family needs the momentum slot.
    match = dsl.closest_optimizer(library.load("signsgd"))
    assert match.live_state_slots == ()
    assert not match.lion_family, match.report()
    assert not _closest.screen_lion_family(library.load("signsgd"))


@pytest.mark.slow
def test_a_sign_descent_whose_slot_barely_matters_is_not_lion_family():
    # A rediscovery search's (0.69 g + 0.31 v) / |g| with v an average of g^2: nearly
    # sign(g). Lion with beta2 ~1 fits it at 0.136, every other check passes, but sign
    # descent without memory fits it at 0.147: the slot does not make it a Lion.
    program = body(
        """
        g2 = square(g)
        m = interp(g, v, 0.31080207146318395)
        v = interp(g2, v, 0.999)
        sqrt_v = sqrt(g2)
        update = m / sqrt_v
        lr = 1.0934926279839963 * 0.001
        update = update * lr
        """,
        signature="w, g, m, v, lr",
        returns="update, m, v",
    )
    match = dsl.closest_optimizer(program)
    assert match.name == "lion" and match.error < _closest.LION_MAX_ERROR
    assert match.memoryless_error < _closest.LION_MEMORY_MARGIN * match.error
    assert_fails(match, "sign descent without memory fits")


def test_a_slot_that_holds_tanh_of_the_gradient_is_not_lion_family():
    # A rediscovery search's first "Lion-family" program (seed 1): a linear update whose
    # slot holds tanh(g), not an interpolation of g. lion_smooth fits it and every check on
    # the update passes; only the slot's own update tells it apart.
    program = body(
        """
        g2 = square(g)
        m = interp(g, m, 0.7145266839665879)
        v = interp(g2, v, 0.01276722048569858)
        sqrt_v = arcsinh(1.498491954640043)
        update = m / sqrt_v
        lr = lr * 0.001
        m = tanh(g)
        update = update * lr
        """,
        signature="w, g, m, v, lr",
        returns="update, m, v",
    )
    match = dsl.closest_optimizer(program)
    assert match.name in _closest.LION_FAMILY and match.error < _closest.LION_MAX_ERROR
    assert match.live_state_slots == ("m",)
    assert match.slot_fit[0] > _closest.SLOT_MAX_ERROR
    assert_fails(match, "the live slot's new value is not an interpolation of g and itself")
    assert not _closest.screen_lion_family(program)


def test_a_slot_that_is_read_but_never_written_is_not_lion_family():
    # Random search's first "Lion-family" program: m is read but never written, so it is
    # zero forever; Lion with beta2 at its bound fits the update.
    program = body(
        """
        v = interp(g, 1.2198960467422653, m)
        update = arcsin(v)
        """,
        signature="w, g, m, v, lr, step",
        returns="update, m, v",
    )
    match = dsl.closest_optimizer(program)
    assert match.name in _closest.LION_FAMILY and match.error < _closest.LION_MAX_ERROR
    assert match.live_state_slots == ("m",)
    assert match.slot_fit[0] == math.inf
    assert not match.lion_family, match.report()
    assert not _closest.screen_lion_family(program)


@pytest.mark.parametrize(
    ("slot_update", "family"),
    [
        ("m = interp(g, m, 0.99)", True),  # Lion's slot
        ("m2 = m * 0.99\n  m = m2 + g", True),  # an interpolation up to a factor of 100
        ("m = m + g", False),  # accumulates and never forgets: b = 1
        ("g3 = g * -1.0\n  m = interp(g3, m, 0.99)", False),  # remembers -g: a < 0
    ],
)
def test_the_slot_must_be_an_interpolation_of_the_gradient_and_itself(slot_update, family):
    # The slot's fit, a * g + b * slot, against coefficients worked out by hand.
    program = dsl.parse(
        "def train(w, g, m, lr):\n  c = interp(g, m, 0.9)\n  s = sign(c)\n  update = s * lr\n"
        f"  {slot_update}\n  return update, m\n"
    )
    error, a, b = _closest._Target(program).slot_fit("m")
    assert error < 1e-5
    expected = {
        "m = interp(g, m, 0.99)": (0.01, 0.99),
        "m2 = m * 0.99\n  m = m2 + g": (1.0, 0.99),
        "m = m + g": (1.0, 1.0),
        "g3 = g * -1.0\n  m = interp(g3, m, 0.99)": (-0.01, 0.99),
    }[slot_update]
    assert a == pytest.approx(expected[0], rel=1e-4) and b == pytest.approx(expected[1], rel=1e-4)
    assert _closest._slot_is_interpolation(error, a, b) is family


@pytest.mark.xfail(
    reason="known weakness: the fit is lion_refined (Lion-K with c clipped to [-1, 1], error 0.094), "
    "a Lion-family variant by the rule; arctan(arctanh(c)) saturates like it for the probe's larger "
    "arrays (RMS gradient up to 8). Clipped and tanh variants are linear below |c| = 1, and training's "
    "gradients are far smaller, so the program trains as a momentum with a tiny learning rate. The "
    "rule cannot tell at which gradient scale a variant acts as a sign "
    "(docs/rediscovery_analysis.md, third method)",
    strict=True,
)
def test_a_program_that_is_a_sign_only_at_the_probes_gradient_scale_is_not_lion_family():
    # The third method's first "Lion" (v3 seed 0, evaluation 689, its constants rounded): its
    # fitness, -2.771, is that of a model that does not learn (uniform over 16 symbols: -2.773).
    program = body(
        """
        c = interp(g, m, 0.28)
        m = interp(g, m, 0.43)
        c = arctanh(c)
        update = arctan(c)
        lr = lr * 0.0045
        update = update * lr
        """
    )
    assert not dsl.closest_optimizer(program).lion_family


def test_a_remembered_loss_evaluates_each_distinct_point_once_and_keeps_the_order():
    evaluated = []

    def loss(grid):
        evaluated.extend(map(tuple, grid))
        return grid[:, 0] * 10 + grid[:, 1]

    remembered = _closest._remembered(loss)
    first = np.array([[1.0, 2.0], [1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(remembered(first), [12.0, 12.0, 34.0])
    second = np.array([[3.0, 4.0], [5.0, 6.0], [1.0, 2.0]])  # known points first
    np.testing.assert_array_equal(remembered(second), [34.0, 56.0, 12.0])
    assert sorted(evaluated) == [(1.0, 2.0), (3.0, 4.0), (5.0, 6.0)]
