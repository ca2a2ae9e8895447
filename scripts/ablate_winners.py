"""The paper's second simplification step on the pipeline's winners: drop what barely matters.

arXiv:2302.06675, section 5 (and section 2 on the raw program that became Lion): after the
search, statements that are not redundant but barely change the fitness were removed by
re-evaluation. The pipeline (``search._rediscovery``) simplifies its winners with
probe-verified steps only, so a winner keeps whatever the search carried along, such as a
constant offset that helped the single search seed and does nothing on average. This
script applies the missing step to finished pipeline runs, after the fact, with a protocol
fixed before it ran on any run but one (v4 seed 2, whose winner prompted it):

1. the run's ``simplified.txt`` (the probe-simplified funnel winner);
2. ``dsl.simplify`` with ablation, the fitness being the mean *validation* fitness on the
   search task over the funnel's tuning seeds (not the search seed, not the test seeds),
   tolerance 1e-3 (``dsl.simplify``'s default), constants not rounded;
3. if a statement went, the ablated program is measured as the funnel measures a
   candidate: each stage's task and test seeds, paired with the tuned reference's
   per-seed results from the funnel's own ``funnel.json``; it goes on to the next stage
   only if it beats the reference there by more than the stage's k standard errors;
4. ``dsl.closest_optimizer`` of the ablated program, and the pipeline's verdict rule:
   Lion when Lion family, beta2 - beta1 >= ``dsl.LION_BETA_GAP`` and it beats the
   reference on test at the last stage.

Before measuring, the winner itself is re-run on the first stage's first seed and checked
against the funnel's logged result, so in-process and worker evaluations agree.

Each run's result is kept in ``<run>/ablation.json`` (with the steps in ``ablation.txt``),
so a killed script resumes; the Markdown table goes to stdout and to ``--report``.

    python scripts/ablate_winners.py runs/rediscover_v4/seed* --report docs/ablation_v4.md
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

CONSISTENCY_TOLERANCE = 1e-4


def validation_fitness(task_name: str, seeds: list[int]):
    import proxy_tasks

    task = proxy_tasks.get(task_name)

    def evaluate(program) -> float:
        values = [task.evaluate(program, seed).fitness for seed in seeds]
        return sum(values) / len(values) if all(math.isfinite(v) for v in values) else -math.inf

    return evaluate


def per_seed(row: dict) -> list[float]:
    return [entry["test_fitness"] for entry in sorted(row["seeds"], key=lambda e: e["seed"])]


def check_consistency(run: Path, funnel: dict) -> None:
    """The winner re-run here on stage 1's first seed gives the funnel's logged test fitness."""
    import dsl
    import proxy_tasks

    summary = json.loads((run / "summary.json").read_text())
    label = summary["winner"]["label"]
    stage = funnel["stages"][0]
    row = next(r for r in stage["rows"] if r["label"] == label)
    entry = min(row["seeds"], key=lambda e: e["seed"])
    program = dsl.parse(summary["winner"]["raw_program"])
    again = proxy_tasks.get(stage["task"]).evaluate(program, entry["seed"]).test_fitness
    if abs(again - entry["test_fitness"]) > CONSISTENCY_TOLERANCE:
        raise SystemExit(f"{run}: the winner gives {again} here, {entry['test_fitness']} in the funnel")


def measure(program, funnel: dict) -> list[dict]:
    """The ablated program through the funnel's stages, as the funnel measures a candidate."""
    import proxy_tasks
    import search

    stages = []
    for stage in funnel["stages"]:
        task = proxy_tasks.get(stage["task"])
        values = [task.evaluate(program, seed).test_fitness for seed in stage["seeds"]]
        k = stage["standard_errors"]
        result = {"stage": stage["name"], "task": stage["task"], "test": values, "k": k, "vs": {}}
        estimate = search.mean_and_se(values)
        result["mean"], result["se"] = estimate.mean, estimate.se
        for row in stage["rows"]:
            if row["kind"] in ("reference", "baseline"):
                c = search.paired_comparison(values, per_seed(row), k)
                result["vs"][row["baseline"]] = {
                    "reference": row["kind"] == "reference",
                    "mean": row["test"]["mean"],
                    "difference": c.difference,
                    "se": c.se,
                    "z": c.z,
                    "beats": c.beats,
                }
        stages.append(result)
        if not next(v for v in result["vs"].values() if v["reference"])["beats"]:
            break
    return stages


def ablate_run(run: Path) -> dict:
    import dsl
    from dsl.library import load_program

    out = run / "ablation.json"
    if out.is_file():
        return json.loads(out.read_text())
    funnel = json.loads((run / "funnel" / "funnel.json").read_text())
    simplified = load_program(str(run / "simplified.txt"))
    tuning_seeds = list(funnel["config"]["tuning"]["seeds"])
    evaluate = validation_fitness(funnel["search_task"], tuning_seeds)
    result = dsl.simplify(simplified, evaluate=evaluate, round_constants=False)
    (run / "ablation.txt").write_text(result.report())
    data = {
        "run": str(run),
        "search_task": funnel["search_task"],
        "validation_seeds": tuning_seeds,
        "simplified": simplified.to_text(),
        "ablated": result.program.to_text(),
        "changed": result.program.to_text() != simplified.to_text(),
        "removed": len(simplified.statements) - len(result.program.statements),
        "validation_before": result.fitness_before,
        "validation_after": result.fitness_after,
    }
    if data["changed"]:
        check_consistency(run, funnel)
        stages = measure(result.program, funnel)
        match = dsl.closest_optimizer(result.program)
        last = funnel["stages"][-1]["name"]
        reached = stages[-1]["stage"] == last
        beats_last = reached and next(v for v in stages[-1]["vs"].values() if v["reference"])["beats"]
        data["stages"] = stages
        data["closest"] = {
            "name": match.name,
            "beta1": match.beta1,
            "beta2": match.beta2,
            "sign_agreement": match.sign_agreement,
            "lion_family": match.lion_family,
            "failures": list(match.lion_family_failures),
            "is_lion": match.is_lion,
        }
        data["lion"] = bool(match.is_lion and beats_last)
    out.write_text(json.dumps(data, indent=1))  # NaN (an undefined SE) as JSON's NaN
    return data


def _cell(stage: dict | None) -> str:
    if stage is None:
        return "not reached"
    ref = next(v for v in stage["vs"].values() if v["reference"])
    others = "; ".join(
        f"{name} {v['difference']:+.4f} ± {v['se']:.4f}"
        for name, v in stage["vs"].items()
        if not v["reference"]
    )
    return (
        f"{stage['mean']:.4f} ± {stage['se']:.4f}; vs reference {ref['difference']:+.4f} ± {ref['se']:.4f} "
        f"({ref['z']:+.1f} SE){'; ' + others if others else ''}"
    )


def table(results: list[dict]) -> str:
    lines = [
        "| run | removed | ablated program | validation before / after | stage A | stage B | closest | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for data in results:
        body = "; ".join(
            line.strip() for line in data["ablated"].splitlines()[1:] if not line.strip().startswith("return")
        )
        removed = data["removed"]
        if not data["changed"]:
            lines.append(
                f"| {data['run']} | 0 | (unchanged) | {data['validation_before']:.4f} | | | | the pipeline's verdict stands |"
            )
            continue
        stages = {s["stage"]: s for s in data["stages"]}
        closest = data["closest"]
        if data["lion"]:
            verdict = "**Lion**"
        elif closest["lion_family"]:
            verdict = "Lion family, not Lion"
        else:
            verdict = "not Lion family: " + "; ".join(closest["failures"])
        lines.append(
            f"| {data['run']} | {removed} | `{body}` | {data['validation_before']:.4f} / {data['validation_after']:.4f} "
            f"| {_cell(stages.get('A'))} | {_cell(stages.get('B'))} | {closest['name']} (β1 {closest['beta1']:.3g}, "
            f"β2 {closest['beta2']:.3g}, sign agreement {closest['sign_agreement']:.1%}) | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "runs", nargs="+", help="pipeline run directories (OUT/<run>, each with summary.json)"
    )
    parser.add_argument("--report", help="also write the table here")
    args = parser.parse_args(argv)
    runs = [Path(run) for run in args.runs]
    missing = [str(run) for run in runs if not (run / "summary.json").is_file()]
    if missing:
        parser.error(f"not a finished pipeline run (no summary.json): {', '.join(missing)}")
    results = []
    for run in runs:
        print(f"{run}: ablating", file=sys.stderr, flush=True)
        results.append(ablate_run(run))
    text = table(results)
    print(text, end="")
    if args.report:
        Path(args.report).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
