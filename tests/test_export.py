"""dsl.export_module: a standalone optax module that trains like dsl.to_optax, without symdisc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dsl
from dsl import library

# State, reductions (global_norm, norm, clip, cosine_sim) and the step count.
STATEFUL = dsl.parse(
    textwrap.dedent(
        """\
        def train(w, g, m, v, lr, step):
          g = clip(g, 1.0)
          m = interp(g, m, 0.9)
          g2 = square(g)
          v = interp(g2, v, 0.99)
          b2t = power(0.99, step)
          bc2 = 1.0 - b2t
          v_hat = v / bc2
          scale = rsqrt(v_hat)
          update = m * scale
          w_norm = norm(w)
          u_norm = norm(update)
          trust = w_norm / u_norm
          trust = min(trust, 10.0)
          update = update * trust
          agreement = cosine_sim(g, m)
          agreement = agreement + 1.5
          update = update * agreement
          lr = lr * 0.001
          update = update * lr
          return update, m, v
        """
    )
)

PROGRAMS = {"lion": library.load("lion"), "adamw": library.load("adamw"), "stateful": STATEFUL}
PEAK = {"lion": 50.0, "adamw": 10.0, "stateful": 10.0}  # schedule peaks: similar real steps

# Run in this process and, as text, in a fresh interpreter without symdisc.
TRAINING = '''
import jax
import jax.numpy as jnp
import numpy as np
import optax

STEPS = 25


def train(make_optimizer, peak):
    """A 2-layer MLP regression, jitted, the optimizer inside optax.chain; losses and leaves."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(64, 5)), jnp.float32)
    y = jnp.sin(x @ jnp.asarray(rng.normal(size=(5, 1)), jnp.float32))
    params = {
        "layers": [
            {"w": jnp.asarray(rng.normal(size=(5, 16)) / 2, jnp.float32), "b": jnp.full((1, 16), 0.1, jnp.float32)},
            {"w": jnp.asarray(rng.normal(size=(16, 1)) / 4, jnp.float32), "b": jnp.full((1, 1), 0.1, jnp.float32)},
        ],
        "gain": jnp.ones((), jnp.float32),
    }

    def loss(p):
        h = jnp.tanh(x @ p["layers"][0]["w"] + p["layers"][0]["b"])
        return jnp.mean((p["gain"] * (h @ p["layers"][1]["w"] + p["layers"][1]["b"]) - y) ** 2)

    schedule = optax.warmup_cosine_decay_schedule(0.0, peak, 5, STEPS, 0.1 * peak)
    tx = optax.chain(optax.clip_by_global_norm(5.0), make_optimizer(schedule))

    @jax.jit
    def step(p, state):
        value, grads = jax.value_and_grad(loss)(p)
        updates, state = tx.update(grads, state, p)
        return optax.apply_updates(p, updates), state, value

    state = tx.init(params)
    losses = []
    for _ in range(STEPS):
        params, state, value = step(params, state)
        losses.append(float(value))
    losses.append(float(loss(params)))
    return losses, [np.asarray(leaf).tolist() for leaf in jax.tree_util.tree_leaves(params)]
'''

STANDALONE = """
import importlib
import json

try:
    import dsl  # noqa: F401
    symdisc_importable = True
except ImportError:
    symdisc_importable = False

results = {"symdisc_importable": symdisc_importable}
for name, peak in PEAKS.items():
    module = importlib.import_module(f"exported_{name}")
    results[name] = train(module.optimizer, peak)
print(json.dumps(results))
"""


def run_in_process(program, peak):
    namespace: dict = {}
    exec(TRAINING, namespace)  # noqa: S102 (the same text the fresh interpreter runs)
    return namespace["train"](lambda schedule: dsl.to_optax(program, schedule), peak)


@pytest.fixture(scope="module")
def isolated_python(tmp_path_factory):
    """A virtual environment that sees the shared site-packages but not the project.

    Its .pth line adds the shared site-packages directory; .pth files found there are not
    processed, so the editable install of symdisc is not loaded.
    """
    root = tmp_path_factory.mktemp("isolated")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    with open(os.path.join(purelib, "shared.pth"), "w") as file:
        file.write(sysconfig.get_paths()["purelib"] + "\n")
    return python, root


@pytest.mark.slow
def test_exported_modules_train_like_to_optax_without_symdisc(isolated_python):
    python, root = isolated_python
    for name, program in PROGRAMS.items():
        (root / f"exported_{name}.py").write_text(dsl.export_module(program, name=name))
    script = root / "train_all.py"
    script.write_text(TRAINING + f"\nPEAKS = {PEAK!r}\n" + STANDALONE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    completed = subprocess.run(
        [str(python), str(script)], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    assert results.pop("symdisc_importable") is False, "the fresh interpreter must not see symdisc"
    for name, program in PROGRAMS.items():
        losses, leaves = results[name]
        expected_losses, expected_leaves = run_in_process(program, PEAK[name])
        assert losses[-1] < 0.9 * losses[0], f"{name} did not train: {losses[0]} -> {losses[-1]}"
        np.testing.assert_allclose(losses, expected_losses, rtol=1e-5, err_msg=name)
        for leaf, expected in zip(leaves, expected_leaves, strict=True):
            np.testing.assert_allclose(leaf, expected, rtol=1e-5, atol=1e-7, err_msg=name)


def load(source: str, name: str):
    namespace: dict = {"__name__": name}
    exec(compile(source, f"<{name}>", "exec"), namespace)  # noqa: S102
    return namespace


@pytest.mark.parametrize("name", ["adabelief", "radam", "lion_refined"])
def test_exported_step_equals_to_optax_step(name):
    program = library.load(name)
    module = load(dsl.export_module(program, name=name), name)
    schedule = optax.linear_schedule(1.0, 0.5, 10)
    ours, theirs = module["optimizer"](schedule), dsl.to_optax(program, schedule)
    rng = np.random.default_rng(1)
    params = {"a": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32), "b": [jnp.ones((4,), jnp.float32)]}
    states = ours.init(params), theirs.init(params)
    for _ in range(8):
        grads = jax.tree_util.tree_map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
        (u1, s1), (u2, s2) = ours.update(grads, states[0], params), theirs.update(grads, states[1], params)
        for a, b in zip(jax.tree_util.tree_leaves(u1), jax.tree_util.tree_leaves(u2), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        states = s1, s2
        params = optax.apply_updates(params, u1)


def test_exported_module_documents_the_program_and_its_rules():
    source = dsl.export_module(STATEFUL, name="trusty")
    assert source.startswith('"""trusty: ')
    assert "      trust = min(trust, 10.0)" in source  # the program, in the docstring
    assert "DIVISION_EPSILON = 1e-08" in source  # the safe division, copied
    assert "x / (y + 1e-8)" in source and "1 / (sqrt|x| + 1e-8)" in source
    assert "import symdisc" not in source and "from dsl" not in source and "import dsl" not in source
    compile(source, "trusty", "exec")


def test_variable_names_that_would_clash_are_renamed():
    program = dsl.parse(
        "def train(w, g, lr):\n  op_sign = sign(g)\n  update = op_sign * lr\n  return update\n"
    )
    module = load(dsl.export_module(program), "clash")
    params = {"x": jnp.asarray([1.0, -2.0])}
    tx = module["optimizer"](0.5)
    updates, _ = tx.update({"x": jnp.asarray([3.0, -4.0])}, tx.init(params), params)
    np.testing.assert_array_equal(np.asarray(updates["x"]), [-0.5, 0.5])


def test_a_program_that_does_not_type_check_is_not_exported():
    with pytest.raises(dsl.ProgramError, match="must be a tree"):
        dsl.export_module(dsl.parse("def train(w, g, lr):\n  update = norm(g)\n  return update\n"))


def test_export_command(tmp_path, capsys):
    from symdisc.cli import main

    out = tmp_path / "lion_opt.py"
    assert main(["export", "lion", "--out", str(out)]) == 0
    assert out.read_text() == dsl.export_module(library.load("lion"), name="lion")
    assert main(["export", "adamw"]) == 0
    assert capsys.readouterr().out == dsl.export_module(library.load("adamw"), name="adamw")
    bad = tmp_path / "bad.txt"
    bad.write_text("def train(w, g, lr):\n  update = norm(g)\n  return update\n")
    assert main(["export", str(bad)]) == 2
    captured = capsys.readouterr()
    assert "line 3:" in captured.err and "must be a tree" in captured.err and captured.out == ""
