"""The Lion-rediscovery report: ``rediscovery.md`` from the runs' ``summary.json``, and its documentation copy.

Every number comes from a run's summary (itself read from the run's logs and funnel), never
typed in. ``write_rediscovery_reports`` writes ``OUT/rediscovery.md`` with links into the run
directories, and optionally the same report elsewhere (``docs/rediscovery.md``) with the
files it links copied beside it: each run's simplified program (``<run>.txt``), the text of
``symdisc inspect`` on its search, its funnel report and its plots (``<run>/``).
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

from dsl import LION_BETA_GAP, prune

from ._inspect import read_run
from ._inspect_cli import run_report
from ._rediscovery import FUNNEL_DIR, SEARCH_DIR, SIMPLIFIED, WINNER
from ._rediscovery_ablation import ABLATED, ABLATION_STEPS
from ._rediscovery_config import RediscoveryConfig
from ._rundir import _write_atomically

REPORT = "rediscovery.md"
INSPECT = "inspect.txt"
GOAL_SEEDS, GOAL_OF = 3, 5
GOAL_MINUTES = 30
PROGRAM_CHARACTERS = 70  # a program in a table cell, cut after this


def run_files(out: Path, summary: dict) -> dict:
    """The files of one run the report links: program files, inspect text, funnel report, plots.

    ``inspect.txt`` (the text of ``symdisc inspect`` on the search) is written here.
    """
    directory = out / summary["name"]
    inspect = directory / INSPECT
    _write_atomically(inspect, run_report(read_run(directory / SEARCH_DIR)))
    files = {
        "simplified": directory / SIMPLIFIED,
        "raw": directory / WINNER,
        "inspect": inspect,
        "funnel": directory / FUNNEL_DIR / "funnel.md",
        "plots": [directory / plot for plot in summary["plots"]],
    }
    if summary.get("ablation"):
        files["ablated"], files["ablation_steps"] = directory / ABLATED, directory / ABLATION_STEPS
    return files


def copy_files(files: dict, docs: Path, name: str) -> dict:
    """Copy one run's ``files`` into ``docs``: ``<name>.txt`` (simplified) and ``<name>/`` (the rest)."""
    folder = docs / name
    folder.mkdir(parents=True, exist_ok=True)
    copies = {
        "simplified": docs / f"{name}.txt",
        "raw": folder / "winner.txt",
        "inspect": folder / INSPECT,
        "funnel": folder / "funnel.md",
        "plots": [folder / Path(plot).name for plot in files["plots"]],
    }
    if "ablated" in files:
        copies["ablated"], copies["ablation_steps"] = folder / ABLATED, folder / ABLATION_STEPS
    for key in ("simplified", "raw", "inspect", "funnel", "ablated", "ablation_steps"):
        if key in files:
            shutil.copyfile(files[key], copies[key])
    for source, target in zip(files["plots"], copies["plots"], strict=True):
        shutil.copyfile(source, target)
    return copies


def write_rediscovery_reports(
    config: RediscoveryConfig,
    summaries: list[dict],
    command: str,
    report: str | Path | None = None,
    docs: str | Path | None = None,
) -> list[Path]:
    """Write ``OUT/rediscovery.md``, and ``report`` with copies of the linked files in ``docs``.

    Args:
      config: the pipeline's configuration.
      summaries: every run's summary, as ``run_pipeline`` returns them.
      command: the command line that ran the pipeline (the report's first line).
      report: a second copy of the report (e.g. ``docs/rediscovery.md``).
      docs: where that copy's linked files go (default: ``report`` without its suffix).

    Returns:
      The reports written.
    """
    out = Path(config.pipeline.out)
    files = {s["name"]: run_files(out, s) for s in summaries}
    written = [out / REPORT]
    _write_atomically(out / REPORT, report_markdown(config, summaries, command, files, out))
    if report is not None:
        report = Path(report)
        docs = Path(docs) if docs is not None else report.with_suffix("")
        copies = {s["name"]: copy_files(files[s["name"]], docs, s["name"]) for s in summaries}
        report.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(report, report_markdown(config, summaries, command, copies, report.parent))
        written.append(report)
    return written


# ----------------------------------------------------------------------------- Markdown


def _link(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def _mean_se(estimate: dict | None) -> str:
    if estimate is None:
        return "—"
    if estimate["mean"] is None:
        return "failed"
    if estimate["se"] is None:
        return f"{estimate['mean']:.4f}"
    return f"{estimate['mean']:.4f} ± {estimate['se']:.4f}"


def _number(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _percent(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.1%}"


def one_line(program_text: str, width: int = PROGRAM_CHARACTERS) -> str:
    """The live statements of a program on one line, cut to ``width`` characters."""
    text = "; ".join(statement.to_text() for statement in prune(program_text).statements)
    return text if len(text) <= width else text[: width - 1] + "…"


def _header(summaries: list[dict], reference: str) -> list[str]:
    stages = summaries[0]["stages"] if summaries else []
    names = [b["name"] for b in stages[0]["baselines"]] if stages else [reference]
    columns = [
        "run",
        "wall time",
        "programs (trained)",
        "cache hit rate / redundant",
        "first Lion family",
        "raw best",
        "simplified",
        "β1",
        "β2",
        "lr",
        "wd",
    ]
    columns += [f"stage {s['name']} ({s['task']}): best / {' / '.join(names)}" for s in stages]
    columns.append("verdict")
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def table_row(summary: dict, files: dict, base: Path) -> str:
    """One run's row of the table (the columns of ``_header``)."""
    first = summary["first_lion_family"]
    first_text = "none" if first is None else f"{first['evaluations']} evaluations (individual {first['id']})"
    winner = summary["winner"]
    closest = summary["closest"] or {}
    raw = f"[#{winner['individual']}]({_link(files['raw'], base)}): `{one_line(winner['raw_program'])}`"
    simplified = f"[file]({_link(files['simplified'], base)}): `{one_line(winner['simplified_program'])}`"
    cells = [
        summary["name"],
        _duration(summary["wall_seconds"]),
        f"{summary['programs']} ({summary['trained']} trained)",
        f"{_percent(summary['cache_hit_rate'])} / {_percent(summary['redundant_fraction'])}",
        first_text,
        raw,
        simplified,
        _number(closest.get("beta1")),
        _number(closest.get("beta2")),
        _number(closest.get("learning_rate"), 3),
        _number(closest.get("weight_decay"), 3),
    ]
    for stage in summary["stages"]:
        figures = [_mean_se(stage["winner"])] + [_mean_se(b["test"]) for b in stage["baselines"]]
        cells.append(" / ".join(figures))
    cells.append(summary["verdict"])
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def final(summary: dict) -> dict:
    """What the pipeline's verdict judged: the ablation's (when it ran) or the simplified winner's."""
    return summary.get("ablation") or summary


def lion_count(summaries: list[dict]) -> tuple[int, int]:
    """(evolution seeds whose final verdict is Lion, evolution seeds)."""
    seeds = [s for s in summaries if s["method"] == "evolution"]
    return sum(final(s)["lion"] for s in seeds), len(seeds)


def _comparison_text(comparison: dict | None) -> str:
    if comparison is None or comparison["difference"] is None:
        return "—"
    se = "—" if comparison["se"] is None else f"{comparison['se']:.4f}"
    return f"{comparison['difference']:+.4f} ± {se}"


def ablation_rows(summaries: list[dict], files: dict, base: Path) -> list[str]:
    """The ablation table: what went, the validation fitness, the ablated program at each stage, the verdict."""
    stage_names = [s["name"] for s in summaries[0]["stages"]]
    lines = [
        "| run | removed | validation before / after | ablated program | "
        + " | ".join(f"stage {name}: ablated / vs reference / vs others" for name in stage_names)
        + " | closest (β1, β2, sign agreement) | verdict before ablation | verdict after |",
        "|" + "---|" * (7 + len(stage_names)),
    ]
    for summary in summaries:
        ablation = summary.get("ablation")
        if not ablation:
            continue
        f = files[summary["name"]]
        program = f"[file]({_link(f['ablated'], base)}): `{one_line(ablation['program'])}`"
        validation = f"{_number(ablation['validation_before'])} / {_number(ablation['validation_after'])}"
        stages = {stage["name"]: stage for stage in ablation["stages"]}
        cells = [summary["name"], f"[{ablation['removed']}]({_link(f['ablation_steps'], base)})", validation]
        cells.append(program if ablation["changed"] else "(nothing went)")
        for name in stage_names:
            stage = stages.get(name)
            if stage is None or stage["winner"] is None:
                cells.append("—")
                continue
            versus = stage["winner_vs_baselines"]
            others = [
                f"{b['name']} {_comparison_text(versus[b['name']])}"
                for b in stage["baselines"]
                if not b["reference"]
            ]
            cells.append(
                " / ".join(
                    [_mean_se(stage["winner"]), _comparison_text(stage["winner_vs_reference"]), *others]
                )
            )
        closest = ablation["closest"]
        cells.append(
            "—"
            if closest is None
            else f"{closest['name']} ({_number(closest['beta1'], 3)}, {_number(closest['beta2'], 3)}, "
            f"{_percent(closest['sign_agreement'])})"
        )
        cells += [summary["verdict"], ablation["verdict"]]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return lines


def report_markdown(
    config: RediscoveryConfig, summaries: list[dict], command: str, files: dict, base: Path
) -> str:
    """The report, its links relative to ``base`` (the directory it is written in)."""
    search, funnel, pipeline = config.search, config.funnel, config.pipeline
    reference = funnel.baselines.reference
    baselines = ", ".join([f"{reference} (the reference)", *funnel.baselines.others])
    stages = "; ".join(
        f"{s.name}: task {s.task}, seeds {list(s.seeds)}, k = {s.standard_errors:g}" for s in funnel.stages
    )
    lion, seeds = lion_count(summaries)
    before = sum(s["lion"] for s in summaries if s["method"] == "evolution")
    before_text = f" after ablation (before it: {before} of {seeds})" if pipeline.ablation_tolerance else ""
    longest = max((s["wall_seconds"] for s in summaries if s["method"] == "evolution"), default=0.0)
    met = lion >= GOAL_SEEDS and seeds >= GOAL_OF and longest <= 60 * GOAL_MINUTES
    lines = [
        "# Rediscovering Lion on two CPU cores",
        "",
        "The method of arXiv:2302.06675 (sections 2-5) end to end, written by `scripts/rediscover_lion.py` "
        "from the runs' logs. The command:",
        "",
        f"    {command}",
        "",
        f"Each evolution seed: a search warm-started from `{search.search.initial_program}` on "
        f"`{search.task.name}` (seeds {list(search.task.seeds)}), {search.search.parallel_searches} "
        f"population(s) of {search.search.population_size}, tournaments of {search.search.tournament_size}, "
        f"restart from the best after {search.search.restart_after} children without improvement, "
        f"{_parsimony_text(search.search.parsimony_tolerance)}"
        f"{pipeline.minutes:g} minutes of wall time{_stall_text(search.task.stall.rule)}; then the funnel "
        f"(stages {stages}{_shortest_text(funnel.candidates.shortest_within)}) against tuned "
        f"{baselines}, promoting on {funnel.select_on}; the winner "
        f"({_winner_text(pipeline.winner, funnel.select_on)}) simplified "
        "(`dsl.simplify`: probe-verified steps only, the same updates); the closest known optimizer "
        "(`dsl.closest_optimizer`); plots. "
        + _ablation_text(pipeline.ablation_tolerance, search.task.name, funnel.tuning.seeds)
        + (
            f"Baseline methods: {', '.join(pipeline.baselines)} (seeds {list(pipeline.baseline_seeds)}), same budget."
            if pipeline.baselines
            else "No baseline method was run."
        ),
        "",
        "Lion family: the closest known optimizer is in the Lion family (sign, tanh or clip of an "
        "interpolation of the gradient and one momentum slot updated by its own interpolation), with "
        "exactly one live state slot (the momentum), at least 95% of update signs agreeing, and the fit checks "
        "of `docs/dsl.md` (a good fit, not a linear momentum, not memoryless sign descent). Lion: Lion family, fitted "
        f"β2 − β1 ≥ {LION_BETA_GAP:g}, and it beats tuned {reference} on test at the last stage by more than k paired "
        "standard errors.",
        "",
        "## Result",
        "",
        f"**Lion in {lion} of {seeds} seeds**{before_text} (goal: at least {GOAL_SEEDS} of {GOAL_OF}, each search within "
        f"{GOAL_MINUTES} minutes; longest search here {longest / 60:.1f} min): goal "
        + ("**met**." if met else "**not met**."),
        "",
        "Fitness is higher-is-better (test, mean ± standard error over the stage's seeds). β1, β2, lr and "
        "wd are the closest optimizer's constants fitted to the simplified program.",
        "",
        "## Seeds",
        "",
    ]
    evolution = [s for s in summaries if s["method"] == "evolution"]
    others = [s for s in summaries if s["method"] != "evolution"]
    lines += _header(summaries, reference)
    lines += [table_row(s, files[s["name"]], base) for s in evolution]
    if others:
        lines += ["", "## Baseline methods (same budget)", ""]
        lines += _header(summaries, reference)
        lines += [table_row(s, files[s["name"]], base) for s in others]
    if any(s.get("ablation") for s in summaries):
        lines += ["", "## Ablation (the paper's simplification step 2)", ""]
        lines += ablation_rows(summaries, files, base)
    lines += ["", "## Per run", ""]
    for s in summaries:
        f = files[s["name"]]
        lines.append(
            f"- {s['name']}: [search summary]({_link(f['inspect'], base)}) (`symdisc inspect`), "
            f"[funnel report]({_link(f['funnel'], base)}), [simplified program]({_link(f['simplified'], base)})"
        )
    lines += ["", "## Plots", ""]
    for s in summaries:
        lines += [f"### {s['name']}", ""]
        lines += [f"![{s['name']}: {Path(p).stem}]({_link(p, base)})" for p in files[s["name"]]["plots"]]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _parsimony_text(tolerance: float) -> str:
    if tolerance <= 0:
        return ""
    return (
        f"tournaments won by the fewest live statements among members within {tolerance:g} of the "
        "sample's best fitness (`search.parsimony_tolerance`), "
    )


def _shortest_text(tolerance: float | None) -> str:
    if tolerance is None:
        return ""
    return f"; candidates include the shortest program within {tolerance:g} of the search's best fitness"


def _winner_text(rule: str, select_on: str) -> str:
    if rule == "shortest_within_se":
        return (
            "the fewest live statements among the candidates at the deepest stage reached that the best "
            f"{select_on} mean there does not beat by more than one paired standard error"
        )
    return f"best {select_on} mean at the deepest stage reached"


def _ablation_text(tolerance: float | None, task: str, seeds) -> str:
    """The ablation step in words, or nothing when the pipeline does not ablate."""
    if tolerance is None:
        return ""
    return (
        "Then the paper's second simplification step (arXiv:2302.06675, section 5): a statement of the "
        f"simplified winner goes when its removal costs at most {tolerance:g} of mean validation fitness on "
        f"`{task}` over the funnel's tuning seeds {list(seeds)} (`dsl.simplify`'s ablation), and the ablated "
        "program goes through the funnel's stages against the same tuned baselines; the final verdict judges "
        "the ablated program. "
    )


def _stall_text(rule) -> str:
    """The search's stall rule (``task.stall``) in words, or nothing when there is none."""
    if rule is None:
        return ""
    return (
        f", a child stopped and failed as stalled when after {rule.check:.0%} of its steps its mean training "
        f"loss is not more than {rule.min_drop:g} (relative) below the untrained model's (`task.stall`)"
    )
