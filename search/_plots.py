"""PNG plots of a search run (``symdisc plot``), drawn with matplotlib's Agg canvas.

Each ``plot_*`` function writes one file and returns the series it drew, so a test can
compare them with the run's log. Figures are built without pyplot (no global state,
no display needed).

The funnel report (``--funnel``) is read tolerantly. The shape expected, as
``symdisc funnel`` writes it (other keys are ignored)::

    {"stages": [                                  # or the list of stages itself
      {"name": "B", "task": "mlp_digits_b",       # "stage" also works for "name"
       "rows": [
         {"kind": "candidate", "run": "runs/a", "individual": 412,
          "test": {"mean": 0.951, "se": 0.004}},
         {"kind": "reference", "baseline": "adamw (tuned)", "test": {"mean": 0.948, "se": 0.003}},
         {"kind": "baseline", "baseline": "lion (tuned)", "test": {"mean": 0.946, "se": 0.005}}]},
      ...]}

Flat rows work too: ``{"id": 412, "test_mean": 0.951, "test_stderr": 0.004}`` or
``{"name": "adamw (tuned)", "mean": ..., "se": ...}``, and baselines may sit in a stage's
``"baselines"`` list. A row is a baseline when its ``kind`` is ``baseline`` or
``reference`` or it has no id (``individual``, ``id``, ``program_id``); its label is
``#id`` (with the run's name when a stage mixes runs) or its name (``baseline``,
``name``, ``optimizer``). A missing standard error is 0; a row without a test mean (not
evaluated, or failed) is left out.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ._inspect import InspectError, Run, fitness_of, population_history

FITNESS_PNG = "fitness.png"
CACHE_PNG = "cache.png"
META_VALIDATION_PNG = "meta_validation.png"
FUNNEL_PNG = "funnel.png"

_ISLAND_COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]


class FunnelError(ValueError):
    """A funnel report that cannot be drawn."""


def plot_run(run: Run, out_dir: str | Path, funnel: str | Path | None = None) -> dict[Path, dict]:
    """Every plot of ``run`` into ``out_dir``; the funnel's too when a report is given.

    Returns:
      the files written, each with the series it shows. The meta-validation plot is
      left out when the run has no meta-validation yet.

    Raises:
      InspectError: if the run has recorded no individual yet.
      FunnelError: if the funnel report cannot be read.
    """
    if not run.individuals:
        raise InspectError(f"{run.path}: no individual has been recorded yet, nothing to plot")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {
        out / FITNESS_PNG: plot_fitness(run, out / FITNESS_PNG),
        out / CACHE_PNG: plot_cache(run, out / CACHE_PNG),
    }
    if run.meta_validations:
        written[out / META_VALIDATION_PNG] = plot_meta_validation(run, out / META_VALIDATION_PNG)
    if funnel is not None:
        written[out / FUNNEL_PNG] = plot_funnel(read_funnel(funnel), out / FUNNEL_PNG)
    return written


def _save(figure: Figure, path: str | Path) -> None:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=120)


def _island_color(island: int) -> str:
    return _ISLAND_COLORS[island % len(_ISLAND_COLORS)]


def _task_label(run: Run) -> str:
    return f"{run.config.task.name}, {run.config.search.mode} from {run.config.search.initial_program}"


# -- fitness ------------------------------------------------------------------------------


def plot_fitness(run: Run, path: str | Path) -> dict:
    """Best and population fitness against individuals recorded, islands and restarts marked.

    Returns:
      ``x`` (1..n), ``fitness`` (each individual, NaN if it failed), ``island``, ``best``
      (best so far), ``medians`` (per island, the population median; NaN while more than
      half failed) and ``restarts`` (``(x, island)`` pairs).
    """
    history = population_history(run)
    records = run.individuals
    x = np.arange(1, len(records) + 1)
    fitness = np.array([fitness_of(r) for r in records])
    fitness[~np.isfinite(fitness)] = np.nan
    islands = np.array([r["island"] for r in records], dtype=int)
    medians = np.where(np.isfinite(history.medians), history.medians, np.nan)
    best = np.where(np.isfinite(history.best), history.best, np.nan)
    restarts = [(position + 1, island) for position, island in history.restarts]

    figure = Figure(figsize=(9, 6))
    ax = figure.add_subplot()
    n_islands = run.config.search.parallel_searches
    for island in range(n_islands):
        color = _island_color(island)
        mine = islands == island
        ax.scatter(x[mine], fitness[mine], s=6, alpha=0.35, color=color, linewidths=0)
        if run.config.search.mode != "random":
            ax.plot(x, medians[island], color=color, lw=1.5, label=f"island {island}: population median")
    ax.step(x, best, where="post", color="black", lw=2, label="best so far")
    labelled = set()
    for position, island in restarts:
        label = None if island in labelled else f"island {island}: restart from the best"
        labelled.add(island)
        ax.axvline(position, color=_island_color(island), ls=":", lw=1.2, label=label)
    ax.scatter([], [], s=12, color="grey", alpha=0.6, label="one individual (colour: its island)")
    failed = int(np.isnan(fitness).sum())
    ax.set_xlabel("individuals recorded (valid children, cache hits included)")
    ax.set_ylabel("fitness on the proxy task (higher is better)")
    ax.set_title(
        f"Fitness over the search ({_task_label(run)})\n{failed} individuals whose training failed are not shown",
        fontsize=11,
    )
    _zoom_on_the_top(ax, fitness, medians, best)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=8)  # below: not over the data
    figure.tight_layout()
    _save(figure, path)
    return {
        "x": x,
        "fitness": fitness,
        "island": islands,
        "best": best,
        "medians": medians,
        "restarts": restarts,
    }


def _zoom_on_the_top(ax, fitness: np.ndarray, medians: np.ndarray, best: np.ndarray) -> None:
    """Show the range where the population lives; the long tail of poor children is cut off."""
    finite = fitness[np.isfinite(fitness)]
    if finite.size == 0:
        return
    top = np.nanmax(best)
    low_median = np.nanmin(medians) if np.isfinite(medians).any() else np.nanmin(finite)
    bottom = min(low_median, np.quantile(finite, 0.25))
    margin = 0.05 * max(top - bottom, 1e-6)
    ax.set_ylim(bottom - margin, top + margin)


# -- cache hits and redundancy ------------------------------------------------------------


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each position (fewer at the start), NaNs skipped."""
    values = np.asarray(values, dtype=float)
    known = np.isfinite(values)
    sums = np.cumsum(np.where(known, values, 0.0))
    counts = np.cumsum(known)
    sums[window:] = sums[window:] - sums[:-window]
    counts[window:] = counts[window:] - counts[:-window]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def plot_cache(run: Run, path: str | Path) -> dict:
    """Cache hit rate (by level) and redundant fraction of the children over the search.

    The rates are moving averages over the last ``window`` children (arXiv:2302.06675,
    section 3 and its figure 2, right).

    Returns:
      ``x`` (the children's positions among the individuals recorded, 1-based),
      ``window``, and per child in percent: ``hit_rate``, ``hash_rate``,
      ``fingerprint_rate`` and ``redundant`` (moving averages).
    """
    positions = [i + 1 for i, r in enumerate(run.individuals) if r["mutation"] != "initial"]
    children = [r for r in run.individuals if r["mutation"] != "initial"]
    window = max(10, len(children) // 20)
    hash_hit = np.array([r["cache_hit"] == "hash" for r in children], dtype=float)
    fingerprint_hit = np.array([r["cache_hit"] == "fingerprint" for r in children], dtype=float)
    redundant = np.array(
        [math.nan if r["redundant_fraction"] is None else r["redundant_fraction"] for r in children]
    )
    series = {
        "x": np.array(positions, dtype=int),
        "window": window,
        "hit_rate": 100 * moving_average(hash_hit + fingerprint_hit, window),
        "hash_rate": 100 * moving_average(hash_hit, window),
        "fingerprint_rate": 100 * moving_average(fingerprint_hit, window),
        "redundant": 100 * moving_average(redundant, window),
    }
    figure = Figure(figsize=(9, 5))
    ax = figure.add_subplot()
    x = series["x"]
    overall_hits = 100 * np.mean(hash_hit + fingerprint_hit) if children else math.nan
    overall_redundant = 100 * np.nanmean(redundant) if np.isfinite(redundant).any() else math.nan
    ax.plot(
        x,
        series["hit_rate"],
        color="black",
        lw=2,
        label=f"cache hit rate, either level ({overall_hits:.1f}% overall)",
    )
    ax.plot(x, series["hash_rate"], color="tab:blue", lw=1, label="hits by functional hash")
    ax.plot(x, series["fingerprint_rate"], color="tab:cyan", lw=1, label="hits by fingerprint (probe run)")
    ax.plot(
        x,
        series["redundant"],
        color="tab:red",
        lw=2,
        ls="--",
        label=f"redundant statements ({overall_redundant:.1f}% overall)",
    )
    ax.set_ylim(0, 100)
    ax.set_xlabel("individuals recorded (valid children, cache hits included)")
    ax.set_ylabel(f"% of the last {window} children")
    ax.set_title(f"Cache hits and redundant statements ({_task_label(run)})")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    _save(figure, path)
    return series


# -- meta-validation ----------------------------------------------------------------------


def plot_meta_validation(run: Run, path: str | Path) -> dict:
    """The current best's fitness on the proxy task and on the meta-validation task.

    Each meta-validation is placed at the number of individuals recorded when it
    completed (arXiv:2302.06675, section 5 and its figure 3: a search fitness that keeps
    rising while the meta-validation falls is meta-overfitting).

    Returns:
      ``x``, ``individual`` (the validated ids), ``search_fitness`` and ``meta_fitness``
      (NaN for a failed run).
    """
    seqs = np.array([r["seq"] for r in run.individuals])
    meta = run.meta_validations
    x = np.array([int(np.sum(seqs < r["seq"])) for r in meta])
    ids = [r["individual"] for r in meta]
    search_fitness = np.array([fitness_of(run.individual(i)) for i in ids])
    meta_fitness = np.array([fitness_of(r) for r in meta])
    search_fitness[~np.isfinite(search_fitness)] = np.nan
    meta_fitness[~np.isfinite(meta_fitness)] = np.nan
    task = run.config.meta_validation.task

    figure = Figure(figsize=(9, 6))
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.plot(x, search_fitness, "o-", color="tab:blue", label=f"on the proxy task {run.config.task.name}")
    top.set_ylabel("search fitness")
    top.set_title(f"The current best, validated on a larger task ({_task_label(run)})")
    bottom.plot(x, meta_fitness, "s-", color="tab:red", label=f"on the meta-validation task {task}")
    failed = np.isnan(meta_fitness)
    if failed.any():  # a failed (diverged) meta-validation is the clearest meta-overfitting: show it
        finite = meta_fitness[~failed]
        floor = float(finite.min()) if finite.size else 0.0
        bottom.plot(
            x[failed],
            np.full(int(failed.sum()), floor),
            "x",
            color="black",
            markersize=10,
            markeredgewidth=2,
            label="failed (training diverged)",
            linestyle="none",
        )
    bottom.set_ylabel("meta-validation fitness")
    bottom.set_xlabel("individuals recorded when the meta-validation completed")
    for ax, where in ((top, "lower right"), (bottom, "center right")):  # clear of a failure's x
        ax.grid(alpha=0.3)
        ax.legend(loc=where, fontsize=8)
    for xi, individual, fitness in zip(x, ids, search_fitness, strict=True):
        top.annotate(f"#{individual}", (xi, fitness), textcoords="offset points", xytext=(0, 6), ha="center")
    top.margins(y=0.2)
    bottom.margins(y=0.2)
    figure.tight_layout()
    _save(figure, path)
    return {"x": x, "individual": ids, "search_fitness": search_fitness, "meta_fitness": meta_fitness}


# -- the funnel ---------------------------------------------------------------------------

_ID_KEYS = ("individual", "id", "program_id")
_NAME_KEYS = ("baseline", "name", "optimizer")  # not "program": symdisc funnel writes its text there
_MEAN_KEYS = ("test_mean", "mean")
_STDERR_KEYS = ("test_stderr", "test_se", "stderr", "se", "standard_error")
_BASELINE_KINDS = ("baseline", "reference")


def _first(row: dict, keys: tuple[str, ...]):
    return next((row[k] for k in keys if row.get(k) is not None), None)


def _test_estimate(row: dict) -> tuple[float | None, float]:
    """A row's test mean (None if absent or failed) and standard error (0 if absent)."""
    test = row.get("test")
    source = test if isinstance(test, dict) else row  # {"test": {"mean", "se"}} or flat keys
    mean = _first(source, _MEAN_KEYS)
    stderr = _first(source, _STDERR_KEYS)
    return (None if mean is None else float(mean)), (0.0 if stderr is None else float(stderr))


def _row_label(row: dict, runs: int) -> str:
    """``#id`` for a searched program (with its run's name when a stage mixes runs), else its name."""
    individual = _first(row, _ID_KEYS)
    if individual is None:
        return str(_first(row, _NAME_KEYS) or row.get("label") or "?")
    run = row.get("run")
    return f"{Path(str(run)).name} #{individual}" if runs > 1 and run else f"#{individual}"


def read_funnel(source: str | Path | list | dict) -> list[dict]:
    """A funnel report as ``[{"title", "labels", "means", "stderrs", "baseline", "left_out"}]``.

    One dict per stage with a drawable row; ``left_out`` counts its rows without a test mean.

    Raises:
      FunnelError: if the file is unreadable or holds no stage with a drawable row.
    """
    data = source
    if isinstance(source, (str, Path)):
        try:
            data = json.loads(Path(source).read_text())
        except (OSError, ValueError) as error:
            raise FunnelError(f"{source}: cannot read the funnel report: {error}") from None
    if isinstance(data, dict):
        data = data.get("stages")
    if not isinstance(data, list):
        raise FunnelError(f"{source}: expected a list of stages (or {{'stages': [...]}})")
    stages = []
    for number, stage in enumerate(data, 1):
        if not isinstance(stage, dict):
            raise FunnelError(f"{source}: stage {number} is not an object")
        names = [str(stage[k]) for k in ("stage", "name", "task") if stage.get(k) is not None]
        title = " / ".join(dict.fromkeys(names)) or f"stage {number}"
        rows = [
            r
            for r in list(stage.get("rows") or []) + list(stage.get("baselines") or [])
            if isinstance(r, dict)
        ]
        runs = len({r["run"] for r in rows if r.get("run") is not None})
        labels, means, stderrs, baseline, left_out = [], [], [], [], 0
        for row in rows:
            mean, stderr = _test_estimate(row)
            if mean is None:  # not evaluated on test, or failed
                left_out += 1
                continue
            labels.append(_row_label(row, runs))
            means.append(mean)
            stderrs.append(stderr)
            baseline.append(row.get("kind") in _BASELINE_KINDS or _first(row, _ID_KEYS) is None)
        if labels:
            stages.append(
                {
                    "title": title,
                    "labels": labels,
                    "means": means,
                    "stderrs": stderrs,
                    "baseline": baseline,
                    "left_out": left_out,
                }
            )
    if not stages:
        raise FunnelError(f"{source}: no stage has a row with a test mean")
    return stages


def plot_funnel(stages: list[dict], path: str | Path) -> dict:
    """One panel per funnel stage: test mean +- standard error of each program and baseline.

    Returns:
      the stages drawn, as ``read_funnel`` gives them.
    """
    bars_in_all = sum(len(s["labels"]) for s in stages)
    figure = Figure(figsize=(max(8.0, 2.0 + 0.8 * bars_in_all), 5.2))
    axes = np.atleast_1d(figure.subplots(1, len(stages), width_ratios=[len(s["labels"]) for s in stages]))
    for ax, stage in zip(axes, stages, strict=True):
        positions = np.arange(len(stage["labels"]))
        means, stderrs = np.array(stage["means"]), np.array(stage["stderrs"])
        colors = ["tab:grey" if b else "tab:blue" for b in stage["baseline"]]
        bars = ax.bar(positions, means, yerr=stderrs, capsize=4, color=colors, edgecolor="black")
        for bar, is_baseline in zip(bars, stage["baseline"], strict=True):
            if is_baseline:
                bar.set_hatch("//")
        ax.set_xticks(positions, stage["labels"], rotation=45, ha="right", fontsize=8)
        low, high = float(np.min(means - stderrs)), float(np.max(means + stderrs))
        margin = 0.15 * max(high - low, 1e-6)
        ax.set_ylim(low - margin, high + margin)
        missing = f"\n({stage['left_out']} without a test result)" if stage["left_out"] else ""
        ax.set_title(stage["title"] + missing, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("test fitness, mean ± standard error over seeds\n(the axis does not start at 0)")
    figure.suptitle(
        "Funnel selection, held-out test fitness:\nsearched programs (blue) and tuned baselines (grey, hatched)"
    )
    figure.tight_layout()
    _save(figure, path)
    return {"stages": stages}
