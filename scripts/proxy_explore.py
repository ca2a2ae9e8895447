"""Explore candidate proxy regimes: tuned AdamW vs Lion vs Lion's single-beta ablations.

Plain JAX, no interpreter: each optimizer is a pure update with the learning rate and the
weight decay as traced arguments, and one compiled training loop is vmapped over a chunk of
(lr, wd, seed) configurations, so a whole grid costs one compilation per optimizer.
Data are fresh every step (generated inside the loop from the run's seed); the metric is
the cross-entropy on a fixed validation sample (tuning) and a fixed, disjoint test sample
(reports).

Regimes (``--regime``):

* ``teacher``: an MLP student of a fixed random MLP teacher whose labels are drawn from
  ``softmax(teacher(x) / temperature + log zipf_prior)`` (noisy, Zipf-distributed classes),
  with ``x ~ N(0, I)`` fresh each step.
* ``markov``: a causal Transformer LM on sequences of a fixed random order-``order`` Markov
  source with Zipf-shaped transition rows (a procedurally generated language).

Protocol (``--tune-seeds``, ``--eval-seeds``): each optimizer's (lr, wd) grid is evaluated
with the tuning seeds, the best mean validation loss is picked, the grid is extended one
step beyond any edge the best point sits on (up to ``--max-extend`` times), and the tuned
point is re-run on the evaluation seeds; the table reports test loss, mean +- standard
error, and the paired difference to Lion (same seeds: same init and data stream).

    python scripts/proxy_explore.py --regime teacher --batch 256 --steps 2000 --out docs/proxy_design_data/x.json
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

OPTIMIZERS = ("adamw", "lion", "ablation_0.9", "ablation_0.99")
# Grid centres (the lr grid is centre x 10^(k/2), k = -2..2); one wd grid for all.
LR_CENTRES = {"adamw": 3e-3, "lion": 3e-4, "ablation_0.9": 3e-4, "ablation_0.99": 3e-4}
WD_GRID = (1e-3, 1e-2, 1e-1, 1.0)
HALF_DECADE = 10.0**0.5


# ----------------------------------------------------------------------------- optimizers


def optimizer_step(name, g, state, w, lr, wd, t):
    """One update ``w - lr * (direction + wd * w)`` for flat vectors; returns (w, state)."""
    if name == "adamw":
        m, v = state
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        step = t + 1.0
        direction = (m / (1 - 0.9**step)) / (jnp.sqrt(v / (1 - 0.999**step)) + 1e-8)
        state = (m, v)
    elif name == "lion":
        (m,) = state
        direction = jnp.sign(0.9 * m + 0.1 * g)
        state = (0.99 * m + 0.01 * g,)
    elif name.startswith("ablation_"):
        beta = float(name.split("_")[1])
        (m,) = state
        m = beta * m + (1 - beta) * g
        direction = jnp.sign(m)
        state = (m,)
    else:
        raise ValueError(f"unknown optimizer {name!r}")
    return w - lr * (direction + wd * w), state


def initial_state(name, w):
    return (jnp.zeros_like(w), jnp.zeros_like(w)) if name == "adamw" else (jnp.zeros_like(w),)


# ----------------------------------------------------------------------------- regimes


def cross_entropy(logits, labels):
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]


def zipf_log_prior(classes, exponent):
    ranks = np.arange(1, classes + 1, dtype=np.float64)
    p = ranks**-exponent
    return jnp.asarray(np.log(p / p.sum()), jnp.float32)


def mlp_init(key, sizes):
    params = []
    keys = jax.random.split(key, len(sizes) - 1)
    for k, (fan_in, fan_out) in zip(keys, zip(sizes[:-1], sizes[1:], strict=True), strict=True):
        params.append((jax.random.normal(k, (fan_in, fan_out)) / math.sqrt(fan_in), jnp.zeros(fan_out)))
    return params


def mlp_apply(params, x):
    for i, (kernel, bias) in enumerate(params):
        x = x @ kernel + bias
        if i < len(params) - 1:
            x = jax.nn.relu(x)
    return x


class TeacherRegime:
    """MLP student of a fixed random MLP teacher with noisy Zipf-distributed labels."""

    def __init__(self, args):
        self.inputs, self.classes = args.inputs, args.classes
        self.student_sizes = [args.inputs, *args.hidden, args.classes]
        teacher = mlp_init(jax.random.key(10_000), [args.inputs, *args.teacher_hidden, args.classes])
        prior = zipf_log_prior(args.classes, args.zipf)
        # Scale the teacher's logits to unit standard deviation, then by 1 / temperature.
        probe = mlp_apply(teacher, jax.random.normal(jax.random.key(10_001), (4096, args.inputs)))
        scale = 1.0 / (float(jnp.std(probe)) * args.temperature)
        self.teacher_logits = lambda x: scale * mlp_apply(teacher, x) + prior
        self.val = self.sample(jax.random.key(20_000), args.eval_size)
        self.test = self.sample(jax.random.key(30_000), args.eval_size)

    def sample(self, key, n):
        kx, ky = jax.random.split(key)
        x = jax.random.normal(kx, (n, self.inputs))
        return x, jax.random.categorical(ky, self.teacher_logits(x))

    def init(self, key):
        return mlp_init(key, self.student_sizes)

    def loss(self, params, x, y):
        return jnp.mean(cross_entropy(mlp_apply(params, x), y))


class MarkovRegime:
    """Causal Transformer LM on a fixed random order-k Markov source (Zipf-shaped rows)."""

    def __init__(self, args):
        self.vocab, self.seq_len, self.order = args.vocab, args.seq_len, args.order
        self.width, self.depth, self.heads = args.width, args.depth, args.heads
        rng = np.random.default_rng(10_000)
        contexts = self.vocab**self.order
        # Each context's next-token distribution: a Zipf law over a random permutation of
        # the vocabulary, sharpened/flattened by the temperature.
        logits = np.stack(
            [zipf_log_prior(self.vocab, args.zipf)[rng.permutation(self.vocab)] for _ in range(contexts)]
        )
        self.table = jnp.asarray(logits / args.temperature, jnp.float32)
        self.val = self.sample(jax.random.key(20_000), args.eval_size)
        self.test = self.sample(jax.random.key(30_000), args.eval_size)

    def sample(self, key, n):
        k0, kseq = jax.random.split(key)
        start = jax.random.randint(k0, (n, self.order), 0, self.vocab)

        def step(context, k):
            index = jnp.zeros(n, jnp.int32)
            for j in range(self.order):
                index = index * self.vocab + context[:, j]
            token = jax.random.categorical(k, self.table[index])
            return jnp.concatenate([context[:, 1:], token[:, None]], axis=1), token

        _, tokens = jax.lax.scan(step, start, jax.random.split(kseq, self.seq_len + 1))
        seq = jnp.concatenate([start, tokens.T], axis=1)[:, -(self.seq_len + 1) :]
        return seq[:, :-1], seq[:, 1:]

    def init(self, key):
        w, v, s = self.width, self.vocab, self.seq_len
        keys = iter(jax.random.split(key, 4 + 4 * self.depth))
        n = lambda shape, std: std * jax.random.normal(next(keys), shape)  # noqa: E731
        blocks = []
        for _ in range(self.depth):
            blocks.append(
                {
                    "ln1": (jnp.ones(w), jnp.zeros(w)),
                    "qkv": n((w, 3 * w), w**-0.5),
                    "out": n((w, w), (w * 2 * self.depth) ** -0.5),
                    "ln2": (jnp.ones(w), jnp.zeros(w)),
                    "mlp_in": (n((w, 4 * w), w**-0.5), jnp.zeros(4 * w)),
                    "mlp_out": (n((4 * w, w), (4 * w * 2 * self.depth) ** -0.5), jnp.zeros(w)),
                }
            )
        return {
            "embed": n((v, w), 0.02),
            "pos": n((s, w), 0.02),
            "blocks": blocks,
            "ln": (jnp.ones(w), jnp.zeros(w)),
            "head": (jnp.zeros((w, v)), jnp.zeros(v)),
        }

    def loss(self, params, x, y):
        def ln(p, h):
            mu = h.mean(-1, keepdims=True)
            var = ((h - mu) ** 2).mean(-1, keepdims=True)
            return (h - mu) * jax.lax.rsqrt(var + 1e-5) * p[0] + p[1]

        b, t = x.shape
        hw = self.width // self.heads
        h = params["embed"][x] + params["pos"][None, :t]
        mask = jnp.tril(jnp.ones((t, t), bool))
        for blk in params["blocks"]:
            qkv = (ln(blk["ln1"], h) @ blk["qkv"]).reshape(b, t, 3, self.heads, hw)
            scores = jnp.einsum("bqhd,bkhd->bhqk", qkv[:, :, 0], qkv[:, :, 1]) / math.sqrt(hw)
            weights = jax.nn.softmax(jnp.where(mask, scores, -1e30), axis=-1)
            h = h + jnp.einsum("bhqk,bkhd->bqhd", weights, qkv[:, :, 2]).reshape(b, t, -1) @ blk["out"]
            z = jax.nn.gelu(ln(blk["ln2"], h) @ blk["mlp_in"][0] + blk["mlp_in"][1])
            h = h + z @ blk["mlp_out"][0] + blk["mlp_out"][1]
        logits = ln(params["ln"], h) @ params["head"][0] + params["head"][1]
        return jnp.mean(cross_entropy(logits, y))


REGIMES = {"teacher": TeacherRegime, "markov": MarkovRegime}


# ----------------------------------------------------------------------------- training


@functools.cache
def training_pool(regime, size):
    """A fixed training sample of ``size`` examples (the registered task's ``x_train``)."""
    return jax.block_until_ready(regime.sample(jax.random.key(40_000), size))


def make_runner(regime, name, steps, batch, pool_size):
    """A jitted function (lr[C], wd[C], seed[C]) -> (val_loss[C], test_loss[C], final train loss[C]).

    Minibatches are drawn with replacement from a fixed pool of ``pool_size`` examples, as
    ``proxy_tasks.Task`` draws them from ``x_train``; a pool several times ``steps x batch``
    makes almost every example fresh.
    """
    from jax.flatten_util import ravel_pytree

    _, unravel = ravel_pytree(regime.init(jax.random.key(0)))
    pool_x, pool_y = training_pool(regime, pool_size)

    def one(lr, wd, seed):
        init_key, data_key = jax.random.split(jax.random.key(seed))
        w, _ = ravel_pytree(regime.init(init_key))
        loss_fn = lambda w, x, y: regime.loss(unravel(w), x, y)  # noqa: E731
        grad_fn = jax.value_and_grad(loss_fn)

        def body(carry, t):
            w, state = carry
            index = jax.random.randint(jax.random.fold_in(data_key, t), (batch,), 0, pool_size)
            x, y = pool_x[index], pool_y[index]
            loss, g = grad_fn(w, x, y)
            schedule = 0.5 * (1.0 + jnp.cos(jnp.pi * t / steps))
            w, state = optimizer_step(name, g, state, w, lr * schedule, wd, t.astype(jnp.float32))
            return (w, state), loss

        (w, _), losses = jax.lax.scan(body, (w, initial_state(name, w)), jnp.arange(steps))
        tail = jnp.mean(losses[-max(1, steps // 10) :])
        val = loss_fn(w, *regime.val)
        test = loss_fn(w, *regime.test)
        bad = ~jnp.isfinite(val) | ~jnp.all(jnp.isfinite(w))
        return jnp.where(bad, jnp.inf, val), jnp.where(bad, jnp.inf, test), tail

    return jax.jit(jax.vmap(one))


class Runner:
    """Evaluates (optimizer, lr, wd, seed) points in fixed-size chunks, memoised, timing CPU."""

    def __init__(self, regime, steps, batch, chunk, pool_size):
        self.regime, self.steps, self.batch, self.chunk = regime, steps, batch, chunk
        self.pool_size = pool_size
        self.results: dict[tuple, tuple[float, float, float]] = {}
        self.cpu_seconds = 0.0
        self.runs = 0
        self.compiled = {}

    def _compiled(self, name):
        if name not in self.compiled:
            self.compiled[name] = make_runner(self.regime, name, self.steps, self.batch, self.pool_size)
        return self.compiled[name]

    def run(self, name, points):
        """``points``: list of (lr, wd, seed); returns {point: (val, test, tail)}."""
        todo = [p for p in dict.fromkeys(points) if (name, *p) not in self.results]
        for i in range(0, len(todo), self.chunk):
            part = todo[i : i + self.chunk]
            padded = part + [part[-1]] * (self.chunk - len(part))
            lr, wd, seed = (np.asarray(c) for c in zip(*padded, strict=True))
            start = time.process_time()
            out = jax.device_get(
                self._compiled(name)(lr.astype(np.float32), wd.astype(np.float32), seed.astype(np.int32))
            )
            self.cpu_seconds += time.process_time() - start
            self.runs += len(padded)
            for j, p in enumerate(part):
                self.results[(name, *p)] = tuple(float(o[j]) for o in out)
        return {p: self.results[(name, *p)] for p in points}


def tune(runner, name, seeds, max_extend):
    """Edge-extending grid search; returns (lr, wd, edge flags, grid table)."""
    lr_grid = [LR_CENTRES[name] * HALF_DECADE**k for k in range(-2, 3)]
    wd_grid = list(WD_GRID)
    edges = []
    for _ in range(max_extend + 1):
        points = [(lr, wd, s) for lr in lr_grid for wd in wd_grid for s in seeds]
        out = runner.run(name, points)
        mean = {(lr, wd): np.mean([out[(lr, wd, s)][0] for s in seeds]) for lr in lr_grid for wd in wd_grid}
        (lr, wd) = min(mean, key=mean.get)
        edges = []
        if lr == lr_grid[0]:
            lr_grid.insert(0, lr_grid[0] / HALF_DECADE)
            edges.append("lr-low")
        if lr == lr_grid[-1]:
            lr_grid.append(lr_grid[-1] * HALF_DECADE)
            edges.append("lr-high")
        if wd == wd_grid[0]:
            wd_grid.insert(0, wd_grid[0] / 10)
            edges.append("wd-low")
        if wd == wd_grid[-1]:
            wd_grid.append(wd_grid[-1] * 10)
            edges.append("wd-high")
        if not edges:
            break
    return lr, wd, edges, {f"{k[0]:.3g},{k[1]:.3g}": float(v) for k, v in mean.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--regime", choices=sorted(REGIMES), default="teacher")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS))
    p.add_argument("--tune-seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--eval-seeds", nargs="+", type=int, default=[3, 4, 5, 6, 7])
    p.add_argument("--max-extend", type=int, default=2)
    p.add_argument("--chunk", type=int, default=10)
    p.add_argument("--eval-size", type=int, default=8192)
    p.add_argument("--pool-factor", type=float, default=2.0, help="training pool / (steps x batch)")
    p.add_argument("--zipf", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=1.0)
    # teacher
    p.add_argument("--inputs", type=int, default=16)
    p.add_argument("--hidden", nargs="+", type=int, default=[32, 32])
    p.add_argument("--teacher-hidden", nargs="+", type=int, default=[64, 64])
    p.add_argument("--classes", type=int, default=16)
    # markov
    p.add_argument("--vocab", type=int, default=16)
    p.add_argument("--order", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=16)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--depth", type=int, default=1)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--time-only", action="store_true", help="only time one lion run (CPU s) and exit")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    regime = REGIMES[args.regime](args)
    params = sum(x.size for x in jax.tree_util.tree_leaves(regime.init(jax.random.key(0))))
    pool_size = int(args.pool_factor * args.steps * args.batch)
    runner = Runner(regime, args.steps, args.batch, args.chunk, pool_size)
    if args.time_only:
        run = make_runner(regime, "lion", args.steps, args.batch, pool_size)
        one = [np.float32([1e-3]), np.float32([0.1]), np.int32([0])]
        jax.block_until_ready(run(*one))
        times = []
        for _ in range(3):
            start = time.process_time()
            jax.block_until_ready(run(*one))
            times.append(time.process_time() - start)
        print(
            f"{args.regime} {params} params, {args.steps} steps, batch {args.batch}: {min(times):.3f} CPU s/run"
        )
        return 0
    wall = time.time()
    report = {"args": vars(args), "params": params, "optimizers": {}}
    print(f"{args.regime}: {params} params, {args.steps} steps, batch {args.batch}", flush=True)
    for name in args.optimizers:
        lr, wd, edges, grid = tune(runner, name, args.tune_seeds, args.max_extend)
        out = runner.run(name, [(lr, wd, s) for s in args.eval_seeds])
        test = [out[(lr, wd, s)][1] for s in args.eval_seeds]
        report["optimizers"][name] = {"lr": lr, "wd": wd, "edges": edges, "grid": grid, "test": test}
        se = np.std(test, ddof=1) / math.sqrt(len(test))
        print(
            f"{name}: lr {lr:.3g} wd {wd:.3g} edges {edges} test {np.mean(test):.4f} +- {se:.4f}", flush=True
        )
    lion = report["optimizers"].get("lion")
    if lion:
        for name, r in report["optimizers"].items():
            if name != "lion":
                d = np.asarray(r["test"]) - np.asarray(lion["test"])
                r["minus_lion"] = [float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))]
                print(f"{name} - lion: {d.mean():+.4f} +- {r['minus_lion'][1]:.4f} (paired)", flush=True)
    # Per-evaluation CPU cost: one configuration alone (a chunk of 1 would recompile; the
    # chunk's CPU time divided by its size is what a vmapped run costs per configuration).
    report["cpu_seconds"] = runner.cpu_seconds
    report["runs"] = runner.runs
    report["cpu_seconds_per_run"] = runner.cpu_seconds / max(1, runner.runs)
    report["wall_seconds"] = time.time() - wall
    print(
        f"cpu {runner.cpu_seconds:.0f} s for {runner.runs} runs ({report['cpu_seconds_per_run']:.3f} s/run)"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
