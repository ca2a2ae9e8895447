"""The funnel's report: ``funnel.json`` (every number) and ``funnel.md`` (tables and the answer in words).

Both are rewritten atomically after every stage, so a running funnel can be read.
Non-finite numbers are ``null`` in JSON (a failed seed, an undefined standard error).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ._funnel import FunnelOutcome, Row, StageOutcome
from ._funnel_config import funnel_config_to_dict
from ._funnel_stats import Comparison, Estimate
from ._funnel_store import result_record
from ._rundir import _write_atomically

FUNNEL_JSON = "funnel.json"
FUNNEL_MD = "funnel.md"


def write_report(outcome: FunnelOutcome, out_dir: Path) -> None:
    """Write ``funnel.json`` and ``funnel.md`` into ``out_dir``."""
    _write_atomically(out_dir / FUNNEL_JSON, json.dumps(report_dict(outcome), indent=1, allow_nan=False))
    _write_atomically(out_dir / FUNNEL_MD, report_markdown(outcome))


# ----------------------------------------------------------------------------- JSON


def _number(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _estimate(e: Estimate) -> dict:
    return {"mean": _number(e.mean), "se": _number(e.se), "n": e.n, "failed_seeds": e.failed}


def _comparison(c: Comparison | None) -> dict | None:
    if c is None:
        return None
    # z is null when undefined or infinite (a zero SE); difference and se still say which
    return {"difference": _number(c.difference), "se": _number(c.se), "z": _number(c.z), "beats": c.beats}


def _row_dict(row: Row, seeds: tuple[int, ...]) -> dict:
    data = {"label": row.label, "kind": row.kind}
    if row.candidate is not None:
        c = row.candidate
        data.update(run=c.run, individual=c.individual, search_fitness=c.search_fitness, hash=c.hash)
    else:
        t = row.tuned
        data.update(baseline=t.name, lr=t.lr, weight_decay=t.weight_decay)
        data.update(tuning_fitness=_number(t.tuning_fitness), grid_points=t.grid_points)
        data["bound_hit"] = list(t.bound_hit)
    data["program"] = row.program.to_text()
    data["seeds"] = [{"seed": s, **result_record(r)} for s, r in zip(seeds, row.results, strict=True)]
    data["validation"] = _estimate(row.validation)
    data["test"] = _estimate(row.test)
    data["vs_reference"] = _comparison(row.comparison)
    data["vs_reference_validation"] = _comparison(row.validation_comparison)
    data["promoted"] = row.promoted
    data["followed"] = row.followed
    data["same_as"] = row.same_as
    return data


def best_verdict(outcome: FunnelOutcome, stage: StageOutcome) -> dict:
    """Does the best search program beat the reference at ``stage`` on test?"""
    row = stage.row(outcome.best.label)
    if row is None:
        return {"evaluated": False, "beats_reference": None, "why": stage.skipped or "not promoted to it"}
    return {"evaluated": True, "beats_reference": row.comparison.beats, **_comparison(row.comparison)}


def report_dict(outcome: FunnelOutcome) -> dict:
    """Everything the funnel measured, as JSON-safe data."""
    config = outcome.config
    stages = []
    for stage in outcome.stages:
        stages.append(
            {
                "name": stage.config.name,
                "task": stage.task,
                "seeds": list(stage.config.seeds),
                "standard_errors": stage.config.standard_errors,
                "promote_top": stage.config.promote_top,
                "skipped": stage.skipped,
                "rows": [_row_dict(row, stage.config.seeds) for row in stage.rows],
                "promoted": [row.label for row in stage.rows if row.promoted],
                "best_program": {"label": outcome.best.label, **best_verdict(outcome, stage)},
            }
        )
    return {
        "search_task": outcome.search_task,
        "runs": outcome.runs,
        "reference": config.baselines.reference,
        "config": funnel_config_to_dict(config),
        "candidates": [
            {
                "label": c.label,
                "run": c.run,
                "individual": c.individual,
                "island": c.island,
                "search_fitness": c.search_fitness,
                "hash": c.hash,
                "fingerprint": c.fingerprint,
                "reasons": list(c.reasons),
                "program": c.program.to_text(),
            }
            for c in outcome.candidates
        ],
        "stages": stages,
    }


# ----------------------------------------------------------------------------- Markdown


def _mean_se(e: Estimate) -> str:
    if e.failed:
        return f"failed ({e.failed}/{e.n} seeds)"
    if math.isnan(e.se):
        return f"{e.mean:.4f}"
    return f"{e.mean:.4f} ± {e.se:.4f}"


def _difference(c: Comparison | None) -> tuple[str, str]:
    if c is None:
        return "(reference)", ""
    if math.isnan(c.difference):
        return "undefined (a failed seed)", ""
    z = f"{c.z:+.1f}" if math.isfinite(c.z) else ("+inf" if c.z > 0 else "-inf")
    return f"{c.difference:+.4f} ± {c.se:.4f}", z


def _stage_table(outcome: FunnelOutcome, stage: StageOutcome) -> list[str]:
    reference = outcome.config.baselines.reference
    lines = [
        f"| program | run | search fitness | validation | test | validation − {reference} | SE units "
        f"| test − {reference} | SE units | promoted |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in stage.rows:
        validation_difference, validation_z = _difference(row.validation_comparison)
        difference, z = _difference(row.comparison)
        if row.candidate is not None:
            name, run = str(row.candidate.individual), row.candidate.run
            fitness = f"{row.candidate.search_fitness:.4f}"
            promoted = "yes" if row.promoted else "no"
            if row.followed:
                promoted = "— (followed: best by search fitness, not promoted to this stage)"
            elif row.same_as is not None:
                promoted = f"— (results identical to {row.same_as} on every seed)"
        else:
            name, run, fitness, promoted = row.label, "", "", ""
        lines.append(
            f"| {name} | {run} | {fitness} | {_mean_se(row.validation)} | {_mean_se(row.test)} "
            f"| {validation_difference} | {validation_z} | {difference} | {z} | {promoted} |"
        )
    return lines


def _verdict_words(outcome: FunnelOutcome, stage: StageOutcome) -> str:
    reference = outcome.config.baselines.reference
    k = f"{stage.config.standard_errors:g}"
    head = f"stage {stage.config.name} ({stage.task})"
    row = stage.row(outcome.best.label)
    if row is None:
        why = stage.skipped or "it was not promoted to this stage"
        return f"{head}: not evaluated ({why})."
    c = row.comparison
    if math.isnan(c.difference):
        return f"{head}: **no**; it failed on {row.test.failed} of {row.test.n} seeds."
    words = "**yes**, it beats" if c.beats else "**no**, it does not beat"
    _, z = _difference(c)
    return (
        f"{head}: {words} tuned {reference} on test: {_mean_se(row.test)} against "
        f"{_mean_se(stage.reference.test)}, difference {c.difference:+.4f} ± {c.se:.4f} ({z} SE; "
        f"the rule needs more than {k})."
    )


def report_markdown(outcome: FunnelOutcome) -> str:
    """``funnel.md``: the answer in words, then one table per stage."""
    config = outcome.config
    reference = config.baselines.reference
    best = outcome.best
    lines = [
        "# Funnel selection",
        "",
        f"Runs: {', '.join(outcome.runs)} (search task {outcome.search_task}). "
        f"{len(outcome.candidates)} distinct candidates: the top {config.candidates.top_k} by search fitness"
        + (", plus the best of every island" if config.candidates.island_best else "")
        + (
            f", plus each run's shortest program (fewest live statements) within "
            f"{config.candidates.shortest_within:g} of its best search fitness"
            if config.candidates.shortest_within is not None
            else ""
        )
        + ".",
        "",
        f"Promotion rule: a program goes on when its mean {config.select_on} fitness beats tuned {reference} "
        "by more than k standard errors of the paired difference (per-seed difference on the same seeds; "
        "sample standard deviation over seeds / sqrt(seeds)); at most the top M by difference go on. Baselines are tuned "
        f"(learning rate and weight decay, one log grid, seeds {list(config.tuning.seeds)}) on each stage's "
        "task, on validation; every number below is a fresh run on the stage's seeds. "
        "Validation and test are fitness (higher is better), mean ± standard error over seeds."
        + (
            " Test fitness selects nothing here: it answers the question below."
            if config.select_on == "validation"
            else " (select_on: test, the rule of funnels run before validation selection.)"
        ),
        "",
        "## Answer",
        "",
        f"Does the best search program ({best.label}, search fitness {best.search_fitness:.4f}) "
        f"beat tuned {reference} on test?",
        "",
    ]
    lines += [f"- {_verdict_words(outcome, stage)}" for stage in outcome.stages]
    for stage in outcome.stages:
        lines += ["", f"## Stage {stage.config.name}: {stage.task}", ""]
        if stage.skipped:
            lines.append(f"Skipped: {stage.skipped}.")
            continue
        candidates = [r for r in stage.rows if r.kind == "candidate" and not r.followed and r.same_as is None]
        promoted = [r.label for r in stage.rows if r.promoted]
        if candidates:
            selecting = sum(r.selection(config.select_on).beats for r in candidates)
            on_test = sum(r.comparison.beats for r in candidates)
            outcome_words = (
                f"{selecting} of {len(candidates)} candidates beat tuned {reference} on {config.select_on}"
                + ("" if config.select_on == "test" else f" ({on_test} on test)")
                + f"; promoted: {', '.join(promoted) if promoted else 'none'}."
            )
        else:
            outcome_words = "No candidate was promoted to this stage; the best search program is followed."
        lines.append(
            f"Seeds {list(stage.config.seeds)}; k = {stage.config.standard_errors:g}, "
            f"M = {stage.config.promote_top}. {outcome_words}"
        )
        lines += [""] + _stage_table(outcome, stage) + [""]
        for row in stage.rows:
            if row.tuned is not None:
                t = row.tuned
                wd = "" if t.weight_decay is None else f", weight decay {t.weight_decay:.3g}"
                edge = f"; still on the grid's edge in {', '.join(t.bound_hit)}" if t.bound_hit else ""
                lines.append(
                    f"- tuned {t.name}: learning rate {t.lr:.3g}{wd} ({t.grid_points} grid points, "
                    f"validation {t.tuning_fitness:.4f} on the tuning seeds{edge})"
                )
    return "\n".join(lines) + "\n"
