"""The report's figure registry: one declarative entry per figure, and the functions that draw them.

A FigureSpec says which studies a figure applies to (a predicate on the study's tables and records),
its README heading, and the function that draws it: that function takes the figure's statistics from
`stats`, plots them with a function of `figures` (matplotlib lives there) and writes the figure's two
README lines. Adding a figure is one entry in FIGURES and one `draw_*` function (with its plot in
`figures`); `build.write_figures` loops over FIGURES, and the README lists the figures in its order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ablations.stats import inference
from ablations.report import contrast_figures, figures
from ablations.report.analysis import Analysis
from ablations.report.formatting import (
    n_text, nan_to_zero, ordinal, pair_name, pct, strength_label, value_text,
)
from ablations.report.records import shared_param
from ablations.stats.reference import (
    FIGURE5, FIGURE5_OPS, HEAD_H_OVER_Z, HEAD_NONLINEAR_OVER_LINEAR, PAPER_BATCH_SIZE, TABLE1_SIMCLR,
    TABLE5_TEMPERATURE,
)
from ablations.report.stats import cell_stats, is_monotonic, spearman
from ablations.report.tables import OBJECTIVE, PAIR_KEYS, included


def _scope(study: Analysis, used: list[str], stats: pd.DataFrame) -> str:
    """`n = 2`, or `n = 8; averaged over model.head` when the figure pools other varied keys."""
    rest = [k for k in study.tables.config_keys if k not in used]
    return n_text(stats["n"]) + (f"; averaged over {', '.join(rest)}" if rest else "")


def _pooled(study: Analysis, used: list[str]) -> str:
    """` (averaged over model.head)` for a reading that pools other varied keys, else nothing."""
    rest = [k for k in study.tables.config_keys if k not in used]
    return f" (averaged over {', '.join(rest)})" if rest else ""


def _label(study: Analysis, suffix: str = "") -> str:
    """`this study (cifar10)` + suffix: how a legend names the study beside the paper; the data set
    only when every run used the same one."""
    dataset = shared_param(study.records, "data.dataset")
    return f"this study ({dataset}){suffix}" if dataset else "this study"


@dataclass(frozen=True)
class Drawn:
    """A figure drawn, with the data it plots and its reading."""

    figure: Any  # matplotlib Figure
    data: pd.DataFrame  # the plotted data, written as CSV beside the PNG
    reading: list[str]  # two lines for the README


@dataclass(frozen=True)
class FigureSpec:
    """One figure of the report: its file stem, README heading, when it applies and how it is drawn."""

    stem: str  # figures/<stem>.png and .csv
    title: str  # the README heading
    applies: Callable[[Analysis], bool]
    draw: Callable[[Analysis], Drawn]
    index: bool = False  # whether the CSV keeps the data's index (the pair grid's row labels)


def op_order(runs: pd.DataFrame) -> list[str]:
    """The pair grid's ops: the paper's Figure 5 order when they are all among its seven, else the
    order of first appearance in the study (its `pairs` list: cells run first-op outermost)."""
    seen = list(dict.fromkeys(op for first, second in zip(runs["first"], runs["second"]) for op in (first, second)
                              if isinstance(op, str)))
    if set(seen) <= set(FIGURE5_OPS):
        return [op for op in FIGURE5_OPS if op in seen]
    return seen


# ----------------------------------------------------------------------------------------------------
# Which studies a figure applies to


def _has_pairs(study: Analysis) -> bool:
    return study.tables.pair and study.tables.has_results


def _shares_paper_cells(study: Analysis) -> bool:
    return _has_pairs(study) and len(_paper_cells(cell_stats(study.tables.runs, PAIR_KEYS))) > 0


def _varies(*keys: str) -> Callable[[Analysis], bool]:
    """Applies when the study varies every one of `keys` and some value of them has a finished probe_h."""
    def applies(study: Analysis) -> bool:
        return set(keys) <= set(study.tables.config_keys) and len(cell_stats(study.tables.runs, list(keys))) > 0
    return applies


def _varies_head(study: Analysis) -> bool:
    return "model.head" in study.tables.config_keys and bool(_head_stats(study))


def _has_comparisons(study: Analysis) -> bool:
    return study.verdict is not None and len(study.verdict.estimates) > 0


def _has_gaps(study: Analysis) -> bool:
    return study.gaps is not None


def _has_history(study: Analysis) -> bool:
    return len(study.history) > 0


# ----------------------------------------------------------------------------------------------------
# Drawing, with the README's two lines


def _paper_cells(stats: pd.DataFrame) -> pd.DataFrame:
    """The pair cells that the paper's Figure 5 also has."""
    return stats[[f in FIGURE5 and s in FIGURE5_OPS for f, s in zip(stats["first"], stats["second"])]]


def _grid_stats(study: Analysis) -> tuple[pd.DataFrame, str, str]:
    """The pair cells' statistics for the grid figures, the budget they are read at ("" where the study
    does not vary it) and the scope their titles state. A study that varies training length draws its grid
    at the longest budget: averaged over budgets, a cell would mix 6 and 24 epochs, and a cell missing at
    one budget would be averaged over the others."""
    runs = study.tables.runs
    if "train.epochs" not in study.tables.config_keys:
        stats = cell_stats(runs, PAIR_KEYS)
        return stats, "", _scope(study, PAIR_KEYS, stats)
    longest = included(runs).dropna(subset=[OBJECTIVE])["train.epochs"].max()
    stats = cell_stats(runs[runs["train.epochs"] == longest], PAIR_KEYS)
    budget = f"at the longest budget, train.epochs = {longest:g}"
    return stats, budget, f"{budget}; " + _scope(study, PAIR_KEYS + ["train.epochs"], stats)


def draw_pair_grid(study: Analysis) -> Drawn:
    stats, budget, scope = _grid_stats(study)
    title = f"{study.records.name}: linear probe on h, test top-1 %, mean ± SD over seeds ({scope})"
    figure, data = figures.pair_grid(stats, op_order(study.tables.runs), title, floor_percent=study.floor_percent)
    best = stats.loc[stats["mean"].idxmax()]
    row_means = data[figures.ROW_MEAN].dropna()
    diagonal = stats[stats["first"] == stats["second"]]
    best_single = diagonal.loc[diagonal["mean"].idxmax()] if not diagonal.empty else None
    return Drawn(figure, data, [
        f"Best cell{' ' + budget if budget else ''}: {pair_name((best['first'], best['second']))} at "
        f"{pct(best['mean'])}"
        + (f"; best single transformation (diagonal): {best_single['first']} at {pct(best_single['mean'])}"
           if best_single is not None else "") + ".",
        f"Row means (first transformation, averaged over the second): highest {row_means.idxmax()} "
        f"({row_means.max():.1f} %), lowest {row_means.idxmin()} ({row_means.min():.1f} %)."
        if len(row_means) > 1 else
        f"One row: every cell starts with {row_means.index[0]} (its mean {row_means.iloc[0]:.1f} %)."
        if len(row_means) else "No row has a finished cell.",
    ])


def draw_paper_comparison(study: Analysis) -> Drawn:
    stats, budget, _ = _grid_stats(study)
    budget = f" ({budget})" if budget else ""
    common = _paper_cells(stats)
    rho = spearman(common["mean"], [FIGURE5[f][s] for f, s in zip(common["first"], common["second"])])
    figure, data = figures.paper_comparison(
        stats, op_order(study.tables.runs), rho, len(common), f"{study.records.name}{budget} against SimCLR Figure 5",
        study_label=_label(study, ", mean ± SD over seeds"), floor_percent=study.floor_percent)
    paper_best = data.loc[data["paper_rank"].idxmin()]
    here_best = data.loc[data["study_rank"].idxmin()]
    rho_text = f"{rho:.2f}" if math.isfinite(rho) else "undefined (under 3 cells, or a constant side)"
    return Drawn(figure, data, [
        f"Spearman rank correlation with the paper's ImageNet grid over the {len(common)} shared cells{budget}: "
        f"{rho_text}.",
        f"The paper's best shared cell, {pair_name((paper_best['first'], paper_best['second']))} "
        f"({paper_best['paper_percent']:.1f} % there), ranks {ordinal(paper_best['study_rank'])} here; "
        f"this study's best, {pair_name((here_best['first'], here_best['second']))}, ranks "
        f"{ordinal(here_best['paper_rank'])} in the paper.",
    ])


def draw_temperature_batch(study: Analysis) -> Drawn:
    used = ["train.temperature", "train.batch_size"]
    stats = cell_stats(study.tables.runs, used)
    figure, data = figures.temperature_batch(
        stats, f"{study.records.name}: linear probe on h, top-1 %, mean ± SD ({_scope(study, used, stats)})")
    best = data.loc[data["mean_percent"].idxmax()]
    best_tau = data.loc[data.groupby("train.batch_size")["mean_percent"].idxmax()]
    paper_best = max(TABLE5_TEMPERATURE, key=TABLE5_TEMPERATURE.get)
    return Drawn(figure, data, [
        f"Best: τ = {value_text(best['train.temperature'])}, batch {value_text(best['train.batch_size'])} "
        f"at {best['mean_percent']:.1f} ± {nan_to_zero(best['std_percent']):.1f} % (n = {int(best['n'])})"
        f"{_pooled(study, used)}.",
        "Best τ per batch size: " + ", ".join(
            f"{value_text(b)}: {value_text(t)}" for b, t in zip(best_tau["train.batch_size"],
                                                               best_tau["train.temperature"]))
        + f" (paper, ImageNet batch {PAPER_BATCH_SIZE}: τ = {paper_best} best of {min(TABLE5_TEMPERATURE)}-"
          f"{max(TABLE5_TEMPERATURE)}, Table 5).",
    ])


def draw_color_strength(study: Analysis) -> Drawn:
    used = ["augment.color_strength"]
    stats = cell_stats(study.tables.runs, used)
    figure, data = figures.color_strength(
        stats, f"{study.records.name}: linear probe on h against colour strength ({_scope(study, used, stats)})",
        study_label=_label(study), floor_percent=study.floor_percent)
    low, high = data.iloc[0], data.iloc[-1]
    best = data.loc[data["mean_percent"].idxmax()]
    weakest, strongest = min(TABLE1_SIMCLR), max(TABLE1_SIMCLR)
    return Drawn(figure, data, [
        f"From s = {value_text(low['augment.color_strength'])} to s = {value_text(high['augment.color_strength'])} "
        f"the probe goes from {low['mean_percent']:.1f} % to {high['mean_percent']:.1f} % "
        f"({high['mean_percent'] - low['mean_percent']:+.1f} points); best s = "
        f"{value_text(best['augment.color_strength'])} at {best['mean_percent']:.1f} %{_pooled(study, used)}.",
        f"The paper (ImageNet, Table 1) rises monotonically from {TABLE1_SIMCLR[weakest]} % at "
        f"s = {strength_label(weakest)} to {TABLE1_SIMCLR[strongest]} % at s = {strength_label(strongest)}; "
        + ("here too." if is_monotonic(data["mean_percent"]) else "here the curve is not monotonic."),
    ])


def _head_stats(study: Analysis) -> list[pd.DataFrame]:
    """Per head, the probe on h and the probe on z (each where some run that counts recorded it)."""
    kept = included(study.tables.runs)
    return [cell_stats(study.tables.runs, ["model.head"], metric).assign(representation=representation)
            for metric, representation in ((OBJECTIVE, "h"), ("probe_z", "z")) if kept[metric].notna().any()]


def draw_projection_head(study: Analysis) -> Drawn:
    used = ["model.head"]
    stats = pd.concat(_head_stats(study), ignore_index=True)[["model.head", "representation", "mean", "std", "n"]]
    figure, data = figures.projection_head(
        stats, f"{study.records.name}: linear probe on h and z by projection head, mean ± SD "
               f"({_scope(study, used, stats)})", floor_percent=study.floor_percent)
    h = data[data["representation"] == "h"].set_index("model.head")["mean_percent"]
    z = data[data["representation"] == "z"].set_index("model.head")["mean_percent"]
    gaps = (h - z).dropna()
    return Drawn(figure, data, [
        f"Best head on h: {h.idxmax()} at {h.max():.1f} %; " + ", ".join(
            f"{head} {value:.1f} %" for head, value in h.items()) + f"{_pooled(study, used)}.",
        ("h minus z: " + ", ".join(f"{head} {gap:+.1f}" for head, gap in gaps.items())
         + f" points (paper: h beats z by more than {HEAD_H_OVER_Z:g} %, a nonlinear head beats a linear one by "
           f"about {HEAD_NONLINEAR_OVER_LINEAR:g} %).")
        if len(gaps) else "probe_z was not recorded (probe.probe_z: false), so h and z cannot be compared.",
    ])


def draw_paired_differences(study: Analysis) -> Drawn:
    verdict, table = study.verdict, study.comparisons
    figure, data = contrast_figures.paired_differences(
        table, f"{study.records.name}: {verdict.rule}, {len(table)} contrasts judged together; each interval "
               "is simultaneous; colour and line show the decision")
    counts = data["decision"].value_counts()
    excluded = int(data["margin_relation"].str.startswith("excludes").sum())
    with_margin = int(data["paper_margin_points"].notna().sum())
    return Drawn(figure, data, [
        f"{len(data)} contrasts for the rule {verdict.rule}: "
        + ", ".join(f"{counts.get(d, 0)} {d}" for d in inference.DECISIONS)
        + f" (simultaneous 95 %); the paper's value lies outside {excluded} of the {with_margin} intervals that have one.",
        f"Verdict: {verdict.sentence}",
    ])


def draw_training_curves(study: Analysis) -> Drawn:
    history = study.history
    highlight = study.highlighted
    temperatures_differ = "train.temperature" in study.tables.config_keys
    # The figure's first panel (figures.training_curves): where tau varies, the loss's scale does too, so
    # it draws the contrastive top-1 instead; the caption describes what is drawn.
    metric = "contrastive_acc" if temperatures_differ and "contrastive_acc" in history \
        and history["contrastive_acc"].notna().any() else "loss"
    shown = "contrastive top-1 (the loss's scale changes with τ)" if metric == "contrastive_acc" else "NT-Xent loss"
    figure, data = figures.training_curves(
        history, f"{study.records.name}: per-epoch training curves ({shown}), one line per configuration",
        highlight=highlight, temperatures_differ=temperatures_differ)
    curves = history.dropna(subset=[metric]).sort_values("epoch")
    last, first = curves.groupby("run_id").last(), curves.groupby("run_id").first()
    knn_line = "No kNN accuracy was logged (probe.knn_every: 0)."
    if "knn_acc" in history and history["knn_acc"].notna().any():
        knn = history.dropna(subset=["knn_acc"]).sort_values("epoch").groupby("run_id")["knn_acc"].last()
        knn_line = f"Last kNN accuracy: {pct(knn.min())} to {pct(knn.max())} (median {pct(knn.median())})."
    if metric == "loss":
        trend = (f"loss from a median {first['loss'].median():.3f} at the first epoch to "
                 f"{last['loss'].median():.3f} at the last"
                 + (" (every run's loss fell)." if (last["loss"] < first["loss"]).all() else
                    f" ({int((last['loss'] >= first['loss']).sum())} runs did not lower their loss)."))
    else:
        rose = last[metric] > first[metric]
        trend = (f"contrastive top-1 from a median {pct(first[metric].median())} at the first epoch to "
                 f"{pct(last[metric].median())} at the last"
                 + (" (it rose in every run)." if rose.all() else f" ({int((~rose).sum())} runs did not raise it)."))
    return Drawn(figure, data, [
        f"{last.shape[0]} finished runs of {history['configuration'].nunique()} configurations over up to "
        f"{int(history['epoch'].max())} epochs: " + trend,
        knn_line,
    ])


def draw_gaps(study: Analysis) -> Drawn:
    gaps = study.gaps
    figure, data = contrast_figures.gaps_by_length(
        gaps, f"{study.records.name}: crop+color's lead against training length, simultaneous 95 % intervals "
              f"over the {len(gaps)} gap{'s' if len(gaps) != 1 else ''} shown (a description beside the verdict, not its rule)")
    lines = []
    for name in dict.fromkeys(gaps["gap"]):
        part = gaps[gaps["gap"] == name].sort_values("epochs")
        lines.append(f"{name}: " + ", ".join(f"{int(r.epochs)} epochs {r.estimate * 100:+.1f} "
                                             f"[{r.ci_low * 100:+.1f}, {r.ci_high * 100:+.1f}]" for r in part.itertuples())
                     + (f" (paper {part['paper_gap'].iloc[0] * 100:+.1f})" if part["paper_gap"].notna().any() else ""))
    return Drawn(figure, data, ["; ".join(lines[:1]) + ".", "; ".join(lines[1:]) + "." if len(lines) > 1 else ""])


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("pair_grid", "Pair grid in the layout of SimCLR Figure 5", _has_pairs, draw_pair_grid, index=True),
    FigureSpec("pair_grid_vs_paper", "Pair grid beside the paper's Figure 5 (ImageNet)", _shares_paper_cells,
               draw_paper_comparison),
    FigureSpec("temperature_batch", "Temperature × batch size", _varies("train.temperature", "train.batch_size"),
               draw_temperature_batch),
    FigureSpec("color_strength", "Colour-distortion strength", _varies("augment.color_strength"),
               draw_color_strength),
    FigureSpec("projection_head", "Projection head, probe on h and on z", _varies_head, draw_projection_head),
    FigureSpec("gaps_by_length", "crop+color's lead against training length", _has_gaps, draw_gaps),
    FigureSpec("paired_differences", "Contrasts behind the verdict, with their simultaneous intervals",
               _has_comparisons, draw_paired_differences),
    FigureSpec("training_curves", "Training curves", _has_history, draw_training_curves),
)
