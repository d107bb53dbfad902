"""The report's figures of a verdict's contrasts (`paired_differences`) and of gaps against training
length (`gaps_by_length`): each estimate with its simultaneous interval, coloured by the decision its table
records, the paper's value or bound beside it. Drawn from prepared tables like every figure
(`ablations.report.figures` has the conventions and the helpers); they compute nothing.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd

from ablations.stats import reference
from ablations.report.figures import percent, wrapped


DECISION_COLOURS = {"above": "C2", "below": "C3", "undecided": "C7", "at the edge": "C4", "too few seeds": "C1"}
# Not decided whatever the interval shows: drawn dashed with a hollow marker, so an interval that excludes
# 0 is not read as a decision.
NOT_DECIDED = ("undecided", "at the edge", "too few seeds")


def paired_differences(comparisons: pd.DataFrame, title: str) -> tuple[plt.Figure, pd.DataFrame]:
    """The verdict's contrasts: the estimate with its simultaneous 95 % interval (the interval that
    decides: a contrast is decided exactly when it excludes 0), in percentage points, one row each,
    coloured by the decision, with the paper's value of the same contrast marked where it has one.

    comparisons: ablations.report.analysis.comparisons_table() (fractions). data: the same in points."""
    data = comparisons.copy()
    for column in ("estimate", "ci_low", "ci_high", "paper_margin"):
        data[f"{column}_points"] = percent(data[column])
    data = data.drop(columns=["estimate", "ci_low", "ci_high", "paper_margin", "se", "own_sd", "implied_sd",
                              "paired_low", "paired_high"]).iloc[::-1].reset_index(drop=True)
    height = 1.9 + 0.28 * len(data)
    figure, ax = plt.subplots(figsize=(8.0, height))
    kinds = data["paper_margin_kind"] if "paper_margin_kind" in data else pd.Series("value", index=data.index)
    for row, (label, mean, low, high, decision, margin, kind) in enumerate(zip(
            data["contrast"], data["estimate_points"], data["ci_low_points"], data["ci_high_points"],
            data["decision"], data["paper_margin_points"], kinds)):
        colour = DECISION_COLOURS.get(decision, "C7")
        open_ = decision in NOT_DECIDED
        own = data["basis"].iloc[row] == "own"
        if np.isfinite(low):
            ax.plot([low, high], [row, row], color=colour, linewidth=2.2 if not open_ else 1.6,
                    linestyle="--" if open_ else "-", solid_capstyle="butt")
        ax.plot([mean], [row], marker="s" if own else "o", color=colour, markersize=5,
                markerfacecolor="white" if open_ else colour)
        if np.isfinite(margin):  # a bound the paper states ("more than 10") points the way it holds
            bound = kind == "at least"
            ax.plot([margin], [row], marker=5 if bound else "|", color="black", markersize=7 if bound else 11,
                    markeredgewidth=1.6)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(data)), data["contrast"], fontsize=7)
    ax.set_xlabel("contrast in linear-probe top-1 (percentage points): estimate and simultaneous 95 % interval")
    handles = [plt.Line2D([], [], color=c, marker="o", linestyle="--" if d in NOT_DECIDED else "-",
                          markerfacecolor="white" if d in NOT_DECIDED else c, label=d)
               for d, c in DECISION_COLOURS.items() if d in set(data["decision"])]
    if (data["basis"] == "own").any():
        handles.append(plt.Line2D([], [], color="0.3", marker="s", linestyle="",
                                  label="own per-seed values (no model: Bonferroni)"))
    for bound, marker, size, label in ((False, "|", 11, "the paper's value"), (True, 5, 7, "the paper's bound (more than)")):
        if (data["paper_margin_points"].notna() & ((kinds == "at least") == bound)).any():
            handles.append(plt.Line2D([], [], color="black", marker=marker, linestyle="", markersize=size,
                                      markeredgewidth=1.6, label=label))
    ax.set_ylim(-0.7, len(data) - 0.3)
    # The legend in a strip of its own under the axis label, the same height whatever the number of rows.
    figure.legend(handles=handles, fontsize=7, loc="lower center", ncol=len(handles), frameon=False,
                  title="colour: the decision (above / below: the interval excludes 0, on 3 seeds or more, "
                        "clear of the critical value's error); dashed: not decided", title_fontsize=7)
    ax.set_title(wrapped(title, figure), fontsize=9)
    figure.tight_layout(rect=(0, 0.55 / height, 1, 1))
    return figure, data.round(6)


GAP_COLOURS = ("C0", "C3", "C2", "C4")


def gaps_by_length(gaps: pd.DataFrame, title: str) -> tuple[plt.Figure, pd.DataFrame]:
    """Each gap (crop+color minus another cell) against training length: estimate and simultaneous 95 %
    interval per budget, and the paper's gap (ImageNet, 100 epochs) as a dashed line of the same colour.

    gaps: columns gap, epochs, estimate, ci_low, ci_high, n, decision, paper_gap (fractions)."""
    data = gaps.copy()
    for column in ("estimate", "ci_low", "ci_high", "paper_gap"):
        data[f"{column}_points"] = percent(data[column])
    figure, ax = plt.subplots(figsize=(6.8, 4.0))
    names = list(dict.fromkeys(data["gap"]))
    offsets = np.linspace(-0.04, 0.04, len(names)) if len(names) > 1 else [0.0]
    for name, colour, offset in zip(names, GAP_COLOURS, offsets):
        part = data[data["gap"] == name].sort_values("epochs")
        x = part["epochs"].to_numpy(dtype=float) * 2 ** offset  # side by side on the log axis
        ax.errorbar(x, part["estimate_points"], yerr=[part["estimate_points"] - part["ci_low_points"],
                                                      part["ci_high_points"] - part["estimate_points"]],
                    marker="o", capsize=3, color=colour, label=f"{name} (this study)")
        paper = part["paper_gap_points"].dropna()
        if len(paper):
            ax.axhline(paper.iloc[0], color=colour, linestyle="--", linewidth=1,
                       label=f"{name}: the paper's gap ({paper.iloc[0]:.1f}, ImageNet, {reference.PAPER_EPOCHS} epochs)")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xscale("log", base=2)
    epochs = sorted(set(data["epochs"].astype(int)))
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(epochs))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("training length (epochs)")
    ax.set_ylabel("gap in linear-probe top-1 (points)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    ax.set_title(wrapped(title, figure), fontsize=9)
    figure.tight_layout()
    return figure, data.round(6)
