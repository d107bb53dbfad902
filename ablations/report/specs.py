"""The report's figure registry: one declarative entry per figure, and the functions that compute and
draw them.

A FigureSpec names the figure's file and README heading, the statistics it shows (a function of the
study's `Analysis`, run by `analysis.analyse` with everything else the report computes; None where the
figure does not apply) and the function that draws it from them: it plots them with a function of
`figures` (matplotlib lives there) and writes the figure's two README lines, computing nothing. Adding a
figure is one entry in FIGURES, its statistics function and one `draw_*` function (with its plot in
`figures`); `build.write_figures` draws those the analysis holds, and the README lists them in FIGURES' order.
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
    n_text, nan_to_zero, ordinal, pair_name, pct, value_text,
)
from ablations.report.records import PAIR_KEYS, shared_param
from ablations.stats.reference import (
    FIGURE5, FIGURE5_OPS, HEAD_H_OVER_Z, HEAD_NONLINEAR_OVER_LINEAR, PAPER_BATCH_SIZE, TABLE1_SIMCLR,
    TABLE5_TEMPERATURE, strength_label,
)
from ablations.report.stats import cell_stats, is_monotonic, spearman
from ablations.report.tables import OBJECTIVE, included


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
    """One figure of the report: its file stem, README heading, the statistics it shows (computed with
    the study's analysis, before anything is drawn; None where the figure does not apply to the study) and
    how it is drawn from them."""

    stem: str  # figures/<stem>.png and .csv
    title: str  # the README heading
    compute: Callable[[Analysis], Any]
    plot: Callable[[Analysis, Any], Drawn]
    index: bool = False  # whether the CSV keeps the data's index (the pair grid's row labels)

    def applies(self, study: Analysis) -> bool:
        return self.stem in study.figures

    def draw(self, study: Analysis) -> Drawn:
        """The figure and its reading, from the statistics its analysis holds."""
        return self.plot(study, study.figures[self.stem])


def op_order(runs: pd.DataFrame) -> list[str]:
    """The pair grid's ops: the paper's Figure 5 order when they are all among its seven, else the
    order of first appearance in the study (its `pairs` list: cells run first-op outermost)."""
    seen = list(dict.fromkeys(op for first, second in zip(runs["first"], runs["second"]) for op in (first, second)
                              if isinstance(op, str)))
    if set(seen) <= set(FIGURE5_OPS):
        return [op for op in FIGURE5_OPS if op in seen]
    return seen


# ----------------------------------------------------------------------------------------------------
# Each figure's statistics (None: the figure does not apply)


def _has_pairs(study: Analysis) -> bool:
    return study.tables.pair and study.tables.has_results


def _pair_grid_stats(study: Analysis) -> tuple[pd.DataFrame, str, str] | None:
    return _grid_stats(study) if _has_pairs(study) else None


def _paper_stats(study: Analysis) -> tuple[pd.DataFrame, str, pd.DataFrame, float] | None:
    """The grid's statistics, its budget, the cells the paper's Figure 5 shares and the rank correlation
    with it; where the study shares some cell with the paper."""
    if not (_has_pairs(study) and len(_paper_cells(cell_stats(study.tables.runs, PAIR_KEYS))) > 0):
        return None
    stats, budget, _ = _grid_stats(study)
    common = _paper_cells(stats)
    rho = spearman(common["mean"], [FIGURE5[f][s] for f, s in zip(common["first"], common["second"])])
    return stats, budget, common, rho


def _varies(*keys: str) -> Callable[[Analysis], pd.DataFrame | None]:
    """The statistics over `keys` where the study varies every one of them and some value of them has a
    finished probe_h."""
    def compute(study: Analysis) -> pd.DataFrame | None:
        if not set(keys) <= set(study.tables.config_keys):
            return None
        stats = cell_stats(study.tables.runs, list(keys))
        return stats if len(stats) > 0 else None
    return compute


def _color_stats(study: Analysis) -> tuple[pd.DataFrame, bool] | None:
    """The statistics per colour strength, and whether the mean rises with strength."""
    stats = _varies("augment.color_strength")(study)
    if stats is None:
        return None
    return stats, is_monotonic(figures.percent(stats.sort_values("augment.color_strength")["mean"]))


def _head_stats(study: Analysis) -> pd.DataFrame | None:
    """Per head, the probe on h and the probe on z (each where some run that counts recorded it)."""
    if "model.head" not in study.tables.config_keys:
        return None
    kept = study.tables.counted
    parts = [cell_stats(study.tables.runs, ["model.head"], metric).assign(representation=representation)
             for metric, representation in ((OBJECTIVE, "h"), ("probe_z", "z")) if kept[metric].notna().any()]
    if not parts:
        return None
    return pd.concat(parts, ignore_index=True)[["model.head", "representation", "mean", "std", "n"]]


def _comparisons(study: Analysis) -> pd.DataFrame | None:
    return study.comparisons if study.verdict is not None and len(study.verdict.estimates) > 0 else None


@dataclass(frozen=True)
class Curves:
    """What the training-curves reading says: the metric of the first panel, each run's first and last
    value of it, and each run's last kNN accuracy (None where none was logged)."""

    metric: str
    first: pd.DataFrame
    last: pd.DataFrame
    knn: pd.Series | None


def _curves(study: Analysis) -> Curves | None:
    history = study.history
    if len(history) == 0:
        return None
    # The figure's first panel (figures.training_curves): where tau varies, the loss's scale does too, so
    # it draws the contrastive top-1 instead; the caption describes what is drawn.
    metric = "contrastive_acc" if "train.temperature" in study.tables.config_keys and "contrastive_acc" in history \
        and history["contrastive_acc"].notna().any() else "loss"
    curves = history.dropna(subset=[metric]).sort_values("epoch")
    knn = None
    if "knn_acc" in history and history["knn_acc"].notna().any():
        knn = history.dropna(subset=["knn_acc"]).sort_values("epoch").groupby("run_id")["knn_acc"].last()
    return Curves(metric, curves.groupby("run_id").first(), curves.groupby("run_id").last(), knn)


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


def draw_pair_grid(study: Analysis, grid: tuple[pd.DataFrame, str, str]) -> Drawn:
    stats, budget, scope = grid
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


def draw_paper_comparison(study: Analysis, paper: tuple[pd.DataFrame, str, pd.DataFrame, float]) -> Drawn:
    stats, budget, common, rho = paper
    budget = f" ({budget})" if budget else ""
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


def draw_temperature_batch(study: Analysis, stats: pd.DataFrame) -> Drawn:
    used = ["train.temperature", "train.batch_size"]
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


def draw_color_strength(study: Analysis, color: tuple[pd.DataFrame, bool]) -> Drawn:
    used = ["augment.color_strength"]
    stats, rises = color
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
        + ("here too." if rises else "here the curve is not monotonic."),
    ])


def draw_projection_head(study: Analysis, stats: pd.DataFrame) -> Drawn:
    used = ["model.head"]
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


def draw_paired_differences(study: Analysis, table: pd.DataFrame) -> Drawn:
    verdict = study.verdict
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


def draw_training_curves(study: Analysis, curves: Curves) -> Drawn:
    history, metric, first, last = study.history, curves.metric, curves.first, curves.last
    highlight = study.highlighted
    temperatures_differ = "train.temperature" in study.tables.config_keys
    shown = "contrastive top-1 (the loss's scale changes with τ)" if metric == "contrastive_acc" else "NT-Xent loss"
    figure, data = figures.training_curves(
        history, f"{study.records.name}: per-epoch training curves ({shown}), one line per configuration",
        highlight=highlight, temperatures_differ=temperatures_differ)
    knn_line = "No kNN accuracy was logged (probe.knn_every: 0)."
    if curves.knn is not None:
        knn = curves.knn
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


def draw_gaps(study: Analysis, gaps: pd.DataFrame) -> Drawn:
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
    FigureSpec("pair_grid", "Pair grid in the layout of SimCLR Figure 5", _pair_grid_stats, draw_pair_grid,
               index=True),
    FigureSpec("pair_grid_vs_paper", "Pair grid beside the paper's Figure 5 (ImageNet)", _paper_stats,
               draw_paper_comparison),
    FigureSpec("temperature_batch", "Temperature × batch size", _varies("train.temperature", "train.batch_size"),
               draw_temperature_batch),
    FigureSpec("color_strength", "Colour-distortion strength", _color_stats, draw_color_strength),
    FigureSpec("projection_head", "Projection head, probe on h and on z", _head_stats, draw_projection_head),
    FigureSpec("gaps_by_length", "crop+color's lead against training length", lambda study: study.gaps, draw_gaps),
    FigureSpec("paired_differences", "Contrasts behind the verdict, with their simultaneous intervals",
               _comparisons, draw_paired_differences),
    FigureSpec("training_curves", "Training curves", _curves, draw_training_curves),
)
