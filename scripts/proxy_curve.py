"""Test loss of fixed optimizer constants at several horizons, next to the language's loss floors.

Is a Markov-language proxy in the regime an optimizer can show itself in? Each variant
(``markov_lm_a``'s keys overridden, as in ``proxy_cost.py``) is trained at each ``--steps``
with each ``--point`` (a library program with its learning rate and weight decay set), and
its test loss is printed next to the source's entropy rates
(``proxy_tasks.source_entropies``: what a model seeing the last 0, 1, ..., order tokens can
reach at best).
A loss that sits on the one-token floor whatever the optimizer means the run ends before
the model has learnt to use more context, and what differs between optimizers is noise
around that floor (docs/proxy_design.md, section 10).

    python scripts/proxy_curve.py "batch_size=64" --steps 300 1200 \\
        --point adamw:0.01:1e-4 --point lion:0.001:0.0316 --seeds 3 4
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_cost import emit, parse_variant, variant_config  # noqa: E402


def parse_point(text: str) -> tuple[str, float, float | None]:
    """``"lion:0.001:0.1"`` -> ``("lion", 0.001, 0.1)``; the weight decay may be left out."""
    name, *values = text.split(":")
    if not name or len(values) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected PROGRAM:LR[:WD], got {text!r}")
    return name, float(values[0]), float(values[1]) if len(values) == 2 else None


def with_constants(name: str, lr: float, wd: float | None):
    """The library program ``name`` with its learning rate and (if given) weight decay set."""
    import dsl
    from proxy_tasks import find_lr_constant, find_wd_constant, with_constant

    program = dsl.library.load(name)
    program = with_constant(program, find_lr_constant(program), lr)
    if wd is not None:
        site = find_wd_constant(program)
        if site is None:
            raise SystemExit(f"proxy_curve.py: {name} has no weight decay to set")
        program = with_constant(program, site, wd)
    return program


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help='overrides of markov_lm_a, e.g. "batch_size=16"')
    parser.add_argument("--steps", nargs="+", type=int, required=True)
    parser.add_argument("--point", action="append", type=parse_point, required=True, help="PROGRAM:LR[:WD]")
    parser.add_argument("--seeds", nargs="+", type=int, default=[3])
    parser.add_argument("--out", help="append the JSON lines to this file")
    args = parser.parse_args(argv)
    import proxy_tasks

    points = [(name, lr, wd, with_constants(name, lr, wd)) for name, lr, wd in args.point]
    for text in args.variants:
        for steps in args.steps:
            config = variant_config({**parse_variant(text), "steps": steps})
            floors = [round(h, 4) for h in proxy_tasks.source_entropies(config.model)]
            task = proxy_tasks.build(replace(config, name=f"{config.name}_curve"))
            for name, lr, wd, program in points:
                results = [task.evaluate(program, seed) for seed in args.seeds]
                row = {
                    "variant": text,
                    "steps": steps,
                    "batch_size": config.batch_size,
                    "program": name,
                    "lr": lr,
                    "weight_decay": wd,
                    "seeds": args.seeds,
                    "test": [r.test_metric for r in results],
                    "failure": [r.failure for r in results if r.failed],
                    "floors_by_context": floors,
                }
                emit(row, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
