"""The report's figures: seaborn on matplotlib's Agg backend, drawn from prepared tables, never from MLflow.

Every function takes plain pandas frames of per-configuration statistics (accuracies as fractions in
[0, 1], spread = sample standard deviation over seeds) and returns `(figure, data)`: the matplotlib
Figure and the DataFrame it plots, in the units it shows (percent for accuracies, the paper's unit).
`save` writes both, PNG and CSV side by side, so every number in a picture can be scripted against.
Statistics (rank correlation, pooled spread, verdicts) are computed by `ablations.report.stats` and passed
in; which figure a study gets, and its title, is decided by the registry in `ablations.report.specs`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only; no display, no GUI toolkit on servers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ablations.stats import reference  # noqa: E402
from ablations.stats.reference import strength_label  # noqa: E402

DPI = 200  # print quality
ROW_MEAN = "row mean"
CMAP = "viridis"
# Above this many configurations a legend of the training curves would hide them.
MAX_LEGEND_ENTRIES = 12


def save(figure: plt.Figure, data: pd.DataFrame, path_stem: Path, index: bool = False) -> list[Path]:
    """`<stem>.png` at DPI and `<stem>.csv` with the plotted data; the figure is closed."""
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    png, csv = path_stem.with_suffix(".png"), path_stem.with_suffix(".csv")
    figure.savefig(png, dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    data.to_csv(csv, index=index, float_format="%.6g")
    return [png, csv]


def percent(values) -> np.ndarray:
    return np.asarray(values, dtype=float) * 100.0


def grid_matrices(cells: pd.DataFrame, ops: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Figure 5 layout from per-pair statistics (columns first, second, mean, std, n; fractions).

    Returns (mean %, sd %, n), rows the first op and columns the second in `ops` order; the mean frame
    has an extra `row mean` column: the mean of the row's cells, diagonal included, as in the paper.
    Cells without a finished run are NaN; a first op with no cell at all gets no row (a study of a few
    chosen pairs, crop+color, crop+sobel and crop, is one row, not three with two empty).
    """
    rows = [op for op in ops if op in set(cells["first"])] or ops

    def matrix(column: str) -> pd.DataFrame:
        frame = cells.pivot(index="first", columns="second", values=column)
        frame = frame.reindex(index=rows, columns=ops).astype(float)
        frame.index.name, frame.columns.name = "first", "second"
        return frame

    mean, sd, n = matrix("mean") * 100.0, matrix("std") * 100.0, matrix("n")
    mean[ROW_MEAN] = mean[ops].mean(axis=1, skipna=True)
    return mean, sd, n


def _grid_annotations(mean: pd.DataFrame, sd: pd.DataFrame, n: pd.DataFrame,
                      floor_percent: float | None = None) -> np.ndarray:
    """'56.3\\n±1.2' per cell (SD over seeds), '56.3\\nn=1' where a single seed finished, the row mean alone;
    a cell below the untrained floor marked '▼'."""
    text = np.full(mean.shape, "", dtype=object)
    floor = floor_percent if floor_percent is not None and np.isfinite(floor_percent) else -np.inf
    for i, first in enumerate(mean.index):
        for j, second in enumerate(mean.columns):
            value = mean.iat[i, j]
            if not np.isfinite(value):
                continue
            mark = "▼" if second != ROW_MEAN and value < floor else ""
            if second == ROW_MEAN:
                text[i, j] = f"{value:.1f}"
            elif n.at[first, second] >= 2:
                text[i, j] = f"{mark}{value:.1f}\n±{sd.at[first, second]:.1f}"
            else:
                text[i, j] = f"{mark}{value:.1f}\nn={int(n.at[first, second])}"
    return text


def wrapped(text: str, figure: plt.Figure, fontsize: float = 9, share: int = 1) -> str:
    """The text broken into lines that fit the width of one of `share` panels of the figure (small grids
    make narrow figures, where a one-line title would run into the labels beside it)."""
    width_points = figure.get_figwidth() * 72 / share * 0.6  # the axes, less its colour bar and labels
    columns = max(20, int(width_points / (0.55 * fontsize)))
    return "\n".join(textwrap.wrap(text, columns)) if len(text) > columns else text


def _draw_grid(ax: plt.Axes, mean: pd.DataFrame, annotations: np.ndarray, vmin: float, vmax: float,
               title: str, panels: int = 1, scale_label: str = "linear-probe top-1 (%)",
               floor_percent: float | None = None) -> None:
    sns.heatmap(mean, annot=annotations, fmt="", cmap=CMAP, vmin=vmin, vmax=vmax, square=False,
                linewidths=0.5, linecolor="white", annot_kws={"fontsize": 7}, ax=ax,
                cbar_kws={"label": scale_label, "shrink": 0.8})
    if floor_percent is not None and np.isfinite(floor_percent):
        colorbar = ax.collections[0].colorbar
        if vmin <= floor_percent <= vmax:  # the floor as a line on the colour bar, in the bar's own scale
            colorbar.ax.axhline(floor_percent, color="red", linewidth=2)
            colorbar.ax.text(-0.15, floor_percent, "floor", color="red", va="center", ha="right", fontsize=7,
                             transform=colorbar.ax.get_yaxis_transform())
    # The row mean is a summary, not a cell: set it apart as the paper does.
    ax.axvline(len(mean.columns) - 1, color="white", linewidth=4)
    ax.set_xlabel("2nd transformation")
    ax.set_ylabel("1st transformation")
    ax.set_title(wrapped(title, ax.figure, share=panels), fontsize=9)
    ax.tick_params(axis="x", labelrotation=45)
    ax.tick_params(axis="y", labelrotation=0)


def pair_grid(cells: pd.DataFrame, ops: list[str], title: str, floor_percent: float | None = None
              ) -> tuple[plt.Figure, pd.DataFrame]:
    """SimCLR Figure 5 layout: rows the 1st transformation, columns the 2nd, the diagonal the single op,
    an extra column with the row mean; each cell annotated with the mean and the SD over seeds.

    data: the mean matrix in percent (index `first`, columns the ops then `row mean`)."""
    mean, sd, n = grid_matrices(cells, ops)
    annotations = _grid_annotations(mean, sd, n, floor_percent)
    width = 1.0 + 0.85 * len(mean.columns) + 1.5
    # At least 3 inches high: a 1x1 or 2x2 grid's colour bar needs the room for its ticks and label.
    figure, ax = plt.subplots(figsize=(max(width, 4.0), max(3.0, 1.2 + 0.7 * len(mean.index))))
    vmin, vmax = _limits(mean)
    label = f"linear-probe top-1 (%), colour {vmin:.1f} to {vmax:.1f}"
    if floor_percent is not None and np.isfinite(floor_percent):
        label += f";\n▼ below the untrained floor ({floor_percent:.1f})"
    _draw_grid(ax, mean, annotations, vmin, vmax, title, scale_label=label, floor_percent=floor_percent)
    figure.tight_layout()
    return figure, mean.round(4)


def _limits(frame: pd.DataFrame) -> tuple[float, float]:
    """The colour scale: the range of the finite values (0 to 100 when there are none)."""
    values = frame.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 100.0)


def paper_comparison(cells: pd.DataFrame, ops: list[str], rho: float, n_common: int, title: str,
                     study_label: str = "this study", floor_percent: float | None = None
                     ) -> tuple[plt.Figure, pd.DataFrame]:
    """This study's pair grid beside the paper's Figure 5 restricted to the same ops, each with its own,
    labelled colour scale (the absolute levels differ: ImageNet ResNet-50 against a small CIFAR-10 budget;
    on one scale this study's 15-point spread would be one colour), this study's untrained floor marked
    on its scale and in its cells below it, and the Spearman rank correlation over the cells in both.

    data: one row per cell in both: first, second, this study's mean %, the paper's %, and both ranks
    (1 = best)."""
    mean, sd, n = grid_matrices(cells, ops)
    paper_ops = [op for op in ops if op in reference.FIGURE5]
    paper = pd.DataFrame({second: {first: reference.FIGURE5[first][second] for first in paper_ops}
                          for second in paper_ops}).reindex(index=mean.index, columns=ops).astype(float)
    paper.index.name, paper.columns.name = "first", "second"
    # Row means over the shown cells only, so that both panels average the same things; with all seven
    # ops shown, the paper's own printed column.
    paper[ROW_MEAN] = paper[ops].mean(axis=1, skipna=True)
    if set(ops) == set(reference.FIGURE5_OPS):
        paper[ROW_MEAN] = [reference.FIGURE5_ROW_MEAN[first] for first in mean.index]

    figure, axes = plt.subplots(1, 2, figsize=(2 * max(4.0, 1.0 + 0.85 * len(mean.columns) + 1.5),
                                               max(3.4, 1.6 + 0.7 * len(mean.index))))
    vmin, vmax = _limits(mean)
    floor_text = (f"; ▼ below the untrained floor ({floor_percent:.1f} %, red on the colour bar)"
                  if floor_percent is not None and np.isfinite(floor_percent) else "")
    _draw_grid(axes[0], mean, _grid_annotations(mean, sd, n, floor_percent), vmin, vmax,
               f"{study_label}; its own colour scale, {vmin:.1f} to {vmax:.1f} %{floor_text}", panels=2,
               scale_label="THIS STUDY: CIFAR-10 top-1 (%)", floor_percent=floor_percent)
    paper_text = np.where(np.isfinite(paper.to_numpy()), paper.map(lambda v: f"{v:.1f}").to_numpy(), "")
    paper_min, paper_max = _limits(paper)
    _draw_grid(axes[1], paper, paper_text, paper_min, paper_max,
               f"SimCLR Figure 5 (ImageNet, ResNet-50, {reference.PAPER_EPOCHS} epochs"
               + ("" if set(ops) == set(reference.FIGURE5_OPS) else "; row mean over the cells shown")
               + f"); its own colour scale, {paper_min:.1f} to {paper_max:.1f} %",
               panels=2, scale_label="PAPER: ImageNet top-1 (%)")
    rho_text = f"{rho:.2f}" if np.isfinite(rho) else "undefined"
    figure.suptitle(f"{title}. Two colour scales, one per panel: compare ranks, not colours across panels.\n"
                    f"Spearman rank correlation over the {n_common} cells in both: {rho_text}", fontsize=10)
    figure.tight_layout()

    long = pd.DataFrame({
        "first": [f for f in mean.index for _ in ops], "second": [s for _ in mean.index for s in ops],
        "study_percent": mean[ops].to_numpy().ravel(), "paper_percent": paper[ops].to_numpy().ravel(),
    }).dropna()
    long["study_rank"] = long["study_percent"].rank(ascending=False)
    long["paper_rank"] = long["paper_percent"].rank(ascending=False)
    return figure, long.reset_index(drop=True).round(4)


def temperature_batch(cells: pd.DataFrame, title: str) -> tuple[plt.Figure, pd.DataFrame]:
    """Heatmap of mean probe accuracy: rows the NT-Xent temperature, columns the batch size.

    cells: columns train.temperature, train.batch_size, mean, std, n (fractions).
    data: long form with mean and SD in percent and n."""
    data = cells.rename(columns={"mean": "mean_percent", "std": "std_percent"}).copy()
    data["mean_percent"] = percent(data["mean_percent"])
    data["std_percent"] = percent(data["std_percent"])
    mean = data.pivot(index="train.temperature", columns="train.batch_size", values="mean_percent").sort_index()
    sd = data.pivot(index="train.temperature", columns="train.batch_size", values="std_percent").reindex_like(mean)
    n = data.pivot(index="train.temperature", columns="train.batch_size", values="n").reindex_like(mean)
    text = np.full(mean.shape, "", dtype=object)
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            if np.isfinite(mean.iat[i, j]):
                spread = f"±{sd.iat[i, j]:.1f}" if n.iat[i, j] >= 2 else f"n={int(n.iat[i, j])}"
                text[i, j] = f"{mean.iat[i, j]:.1f}\n{spread}"
    figure, ax = plt.subplots(figsize=(2.4 + 1.1 * mean.shape[1], 1.6 + 0.8 * mean.shape[0]))
    vmin, vmax = _limits(mean)
    sns.heatmap(mean, annot=text, fmt="", cmap=CMAP, vmin=vmin, vmax=vmax, linewidths=0.5, linecolor="white", ax=ax,
                cbar_kws={"label": f"linear-probe top-1 (%)\ncolour from {vmin:.1f} to {vmax:.1f}"})
    ax.set_xlabel("batch size")
    ax.set_ylabel("temperature τ")
    ax.tick_params(axis="y", labelrotation=0)
    ax.set_title(wrapped(f"{title}; the colours span only {vmin:.1f}-{vmax:.1f} %", figure), fontsize=9)
    figure.tight_layout()
    return figure, data.sort_values(["train.temperature", "train.batch_size"]).reset_index(drop=True).round(4)


def color_strength(cells: pd.DataFrame, title: str, study_label: str = "this study",
                   floor_percent: float | None = None) -> tuple[plt.Figure, pd.DataFrame]:
    """Two panels, no second axis: (left) this study's mean probe accuracy against colour-distortion
    strength, error bars the SD over seeds, with the untrained floor; (right) the change from the weakest
    strength, in percentage points, for this study and the paper's Table 1 on one axis, so that a 3-point
    rise and a 5-point fall look as large as they are.

    cells: columns augment.color_strength, mean, std, n (fractions)."""
    data = cells.sort_values("augment.color_strength").rename(
        columns={"mean": "mean_percent", "std": "std_percent"}).reset_index(drop=True)
    data["mean_percent"] = percent(data["mean_percent"])
    data["std_percent"] = percent(data["std_percent"])
    data["paper_imagenet_percent"] = [reference.TABLE1_SIMCLR.get(float(s), np.nan)
                                      for s in data["augment.color_strength"]]
    data["change_points"] = data["mean_percent"] - data["mean_percent"].iloc[0]
    data["paper_change_points"] = data["paper_imagenet_percent"] - data["paper_imagenet_percent"].iloc[0]
    figure, (ax, change) = plt.subplots(1, 2, figsize=(10.0, 3.8))
    ax.errorbar(data["augment.color_strength"], data["mean_percent"], yerr=data["std_percent"].fillna(0),
                marker="o", capsize=3, color="C0", label=f"{study_label}, mean ± SD")
    floor_line(ax, floor_percent)
    ax.set_ylabel("linear-probe top-1 (%)")
    ax.set_title("this study", fontsize=9)
    change.plot(data["augment.color_strength"], data["change_points"], marker="o", color="C0", label=study_label)
    strengths = sorted(reference.TABLE1_SIMCLR)
    change.plot(strengths, [reference.TABLE1_SIMCLR[s] - reference.TABLE1_SIMCLR[strengths[0]] for s in strengths],
                linestyle="--", marker="s", color="C1", label="SimCLR Table 1 (ImageNet)")
    change.axhline(0, color="black", linewidth=0.8)
    change.set_ylabel(f"change from s = {strength_label(float(data['augment.color_strength'].iloc[0]))} (points)")
    change.set_title("change with strength, both on one scale", fontsize=9)
    ticks = sorted(set(data["augment.color_strength"].astype(float)) | set(reference.TABLE1_SIMCLR))
    for axis in (ax, change):
        axis.set_xscale("log", base=2)
        axis.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
        axis.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(strength_label))
        axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        axis.set_xlabel("colour distortion strength s")
        axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure, data.round(4)


def floor_line(ax: plt.Axes, floor_percent: float | None) -> None:
    """The study's untrained floor (the same encoder at train.epochs 0, the same probe) as a dashed line."""
    if floor_percent is not None and np.isfinite(floor_percent):
        ax.axhline(floor_percent, color="gray", linestyle=":", linewidth=1.2,
                   label=f"untrained floor ({floor_percent:.1f} %)")


def projection_head(cells: pd.DataFrame, title: str, floor_percent: float | None = None
                    ) -> tuple[plt.Figure, pd.DataFrame]:
    """Bars of mean probe accuracy per projection head, on h (before the head) and on z (after it);
    error bars the SD over seeds.

    cells: columns model.head, representation (h | z), mean, std, n (fractions)."""
    data = cells.rename(columns={"mean": "mean_percent", "std": "std_percent"}).reset_index(drop=True)
    data["mean_percent"] = percent(data["mean_percent"])
    data["std_percent"] = percent(data["std_percent"])
    heads = list(dict.fromkeys(data["model.head"]))
    representations = ["h", "z"]
    figure, ax = plt.subplots(figsize=(1.5 + 1.3 * len(heads), 3.6))
    width = 0.38
    palette = sns.color_palette(n_colors=2)
    for k, representation in enumerate(representations):
        part = data[data["representation"] == representation].set_index("model.head").reindex(heads)
        x = np.arange(len(heads)) + (k - 0.5) * width
        ax.bar(x, part["mean_percent"], width, yerr=part["std_percent"].fillna(0), capsize=3,
               color=palette[k], label=f"probe on {representation}")
        for xi, value, spread in zip(x, part["mean_percent"], part["std_percent"].fillna(0)):
            if np.isfinite(value):  # above the error bar, where it cannot hide it
                ax.annotate(f"{value:.1f}", (xi, value + spread), ha="center", va="bottom", fontsize=7,
                            xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(np.arange(len(heads)), heads)
    ax.set_xlabel("projection head (model.head)")
    ax.set_ylabel("linear-probe top-1 (%)")
    floor_line(ax, floor_percent)
    ax.set_ylim(top=ax.get_ylim()[1] * 1.08)  # room for the bars' value labels
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
    ax.set_title(title, fontsize=9)
    figure.tight_layout()
    return figure, data.round(4)


def training_curves(history: pd.DataFrame, title: str, highlight: list[str] | None = None,
                    temperatures_differ: bool = False) -> tuple[plt.Figure, pd.DataFrame]:
    """Per-epoch curves, one line per configuration: the mean over its seeds, a band from the lowest to
    the highest seed. Where there are more configurations than a legend can name, those in `highlight`
    (the verdict's cells, the best and the worst) are coloured and named, the rest drawn thin and grey.
    Panels: the NT-Xent loss, or, where the temperature varies (the loss's scale changes with tau), the
    contrastive accuracy; and the kNN monitor where runs logged it at two epochs or more.

    history: columns run_id, run_name, configuration, seed, epoch and the per-epoch metrics.
    data: one row per configuration and epoch: mean, lowest and highest over seeds, n."""
    configurations = list(dict.fromkeys(history["configuration"]))
    named = configurations if len(configurations) <= MAX_LEGEND_ENTRIES else \
        [c for c in configurations if c in (highlight or [])][:MAX_LEGEND_ENTRIES]
    colours = dict(zip(named, sns.color_palette("tab10" if len(named) <= 10 else "husl", n_colors=max(1, len(named)))))
    first = "contrastive_acc" if temperatures_differ else "loss"
    knn_points = history.dropna(subset=["knn_acc"]).groupby("run_id")["epoch"].nunique() if "knn_acc" in history \
        else pd.Series(dtype=int)
    panels = [m for m in (first, "knn_acc") if m in history and history[m].notna().any()
              and (m != "knn_acc" or (len(knn_points) and knn_points.max() >= 2))]
    labels = {"loss": "NT-Xent loss", "contrastive_acc": "contrastive top-1 (%)", "knn_acc": "kNN top-1 (%)"}
    summary = []
    figure, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.0 * max(1, len(panels)) + 2.2, 3.8),
                                squeeze=False)
    for ax, metric in zip(axes[0], panels):
        scale = 100.0 if metric in ("contrastive_acc", "knn_acc") else 1.0
        grouped = history.dropna(subset=[metric]).groupby(["configuration", "epoch"], sort=False)[metric]
        stats = grouped.agg(["mean", "min", "max", "count"]).reset_index()
        stats[["mean", "min", "max"]] *= scale
        summary.append(stats.assign(metric=metric))
        for configuration in sorted(configurations, key=lambda c: c in colours):  # named ones on top
            part = stats[stats["configuration"] == configuration].sort_values("epoch")
            colour = colours.get(configuration, "0.75")
            width = 1.6 if configuration in colours else 0.6
            ax.plot(part["epoch"], part["mean"], color=colour, linewidth=width, marker="o" if len(part) < 8 else None,
                    markersize=3, label=configuration if configuration in colours else None)
            if configuration in colours and (part["count"] > 1).any():
                ax.fill_between(part["epoch"], part["min"], part["max"], color=colour, alpha=0.2, linewidth=0)
        ax.set_ylabel(labels[metric])
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if named:
        axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=7,
                           title="configuration (mean, band: seeds' range)", title_fontsize=7)
    note = "" if len(named) == len(configurations) else \
        f" ({len(configurations)} configurations; {len(named)} named, the rest grey)"
    figure.suptitle(wrapped(title + note, figure, fontsize=9), fontsize=9)
    figure.tight_layout()
    data = pd.concat(summary, ignore_index=True) if summary else pd.DataFrame()
    return figure, data.rename(columns={"count": "n"}).round(6)
