"""Statistics of the report's tables, as pure functions: mean, SD and n per cell, the pooled seed-to-seed
SD, the verdict on SimCLR Figure 5's crop-plus-colour finding, Spearman's rank correlation, and whether
a curve rises. The README and the figure readings only format what these return.

Accuracies are fractions in [0, 1]; SDs are sample SDs (ddof 1) over seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from ablations.report.formatting import pair_name, pct
from ablations.report.tables import OBJECTIVE, PAIR_KEYS, Tables, included

# Figure 5's finding: crop composed with colour distortion, in either order, beats every other pair.
CROP_COLOR_CELLS = frozenset({("crop", "color"), ("color", "crop")})
# A margin in pooled standard deviations that a cell must exceed to count as a clear win.
MARGIN_SD = 2.0


def cell_stats(runs: pd.DataFrame, keys: list[str], metric: str = OBJECTIVE) -> pd.DataFrame:
    """Mean, SD (ddof 1) and n of `metric` over the included runs of each combination of `keys`
    (averaging over any other varied key), in trial order."""
    kept = included(runs).dropna(subset=[metric])
    grouped = kept.groupby(keys, sort=False)[metric]
    stats = grouped.agg(mean="mean", std="std", n="count").reset_index()
    stats["n"] = stats["n"].astype("int64")
    return stats


def pooled_sd(stats: pd.DataFrame) -> tuple[float, int]:
    """sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1)) over cells with n >= 2: the seed-to-seed spread of one
    run, pooled over cells; and its degrees of freedom. NaN, 0 when no cell has two runs."""
    usable = stats[(stats["n"] >= 2) & stats["std"].notna()]
    dof = int((usable["n"] - 1).sum())
    if dof == 0:
        return math.nan, 0
    return math.sqrt(float(((usable["n"] - 1) * usable["std"] ** 2).sum()) / dof), dof


@dataclass
class Verdict:
    """SimCLR Figure 5's finding on this study: crop with colour (either order) is the best cell and
    beats every cell that does not combine them by more than MARGIN_SD pooled standard deviations."""

    holds: bool | None  # None: cannot be judged
    sentence: str  # "The crop-plus-color finding holds at this budget." (or does not hold / cannot be judged)
    reasons: list[str]  # why, from the data
    best: tuple[str, str] | None = None
    best_mean: float = math.nan
    best_other: tuple[str, str] | None = None  # the best cell that is not crop with colour
    best_other_mean: float = math.nan
    best_crop_color: tuple[str, str] | None = None
    best_crop_color_mean: float = math.nan
    pooled_sd: float = math.nan
    margin_sd: float = math.nan  # (best crop+colour - best other) / pooled SD


def study_verdict(tables: Tables) -> Verdict | None:
    """The verdict of a pair study with a finished result; None for any other study."""
    if not (tables.pair and tables.has_results):
        return None
    return pair_verdict(cell_stats(tables.runs, PAIR_KEYS))


def pair_verdict(stats: pd.DataFrame) -> Verdict:
    """The verdict from per-pair statistics (columns first, second, mean, std, n; accuracies as fractions)."""
    stats = stats.dropna(subset=["mean"])
    if stats.empty:
        return Verdict(None, "The crop-plus-color finding cannot be judged at this budget: no pair cell has a "
                             "finished run.", ["no finished runs"])
    means = {(first, second): mean for first, second, mean in zip(stats["first"], stats["second"], stats["mean"])}
    best = max(means, key=means.get)
    crop_color = [cell for cell in means if cell in CROP_COLOR_CELLS]
    others = [cell for cell in means if cell not in CROP_COLOR_CELLS]
    sd, dof = pooled_sd(stats)
    verdict = Verdict(None, "", [], best=best, best_mean=means[best], pooled_sd=sd)
    if others:
        verdict.best_other = max(others, key=means.get)
        verdict.best_other_mean = means[verdict.best_other]
    if crop_color:
        verdict.best_crop_color = max(crop_color, key=means.get)
        verdict.best_crop_color_mean = means[verdict.best_crop_color]
    if not crop_color or not others:
        missing = "no crop-with-colour cell (the study needs crop and color in its pairs)" if not crop_color \
            else "no cell without crop-with-colour to compare against"
        verdict.sentence = f"The crop-plus-color finding cannot be judged at this budget: {missing}."
        verdict.reasons.append(missing)
        return verdict
    gap = verdict.best_crop_color_mean - verdict.best_other_mean
    if dof:
        verdict.margin_sd = gap / sd if sd > 0 else (math.inf if gap > 0 else -math.inf if gap < 0 else 0.0)
    _judge(verdict, gap, dof)
    return verdict


def _judge(verdict: Verdict, gap: float, dof: int) -> None:
    """holds, sentence and reasons of a verdict that has both crop-with-colour cells and other cells."""
    best, other = pair_name(verdict.best), pair_name(verdict.best_other)
    if verdict.best not in CROP_COLOR_CELLS:
        verdict.holds = False
        verdict.reasons.append(
            f"the best cell is {best} ({pct(verdict.best_mean)}), not crop with colour; the best "
            f"crop-with-colour cell, {pair_name(verdict.best_crop_color)}, reaches {pct(verdict.best_crop_color_mean)}")
        if dof:
            verdict.reasons.append(f"{pair_name(verdict.best_crop_color)} trails {other} by "
                                   f"{-verdict.margin_sd:.1f} pooled SD ({pct(-gap, sign=False)} points)")
        verdict.sentence = "The crop-plus-color finding does not hold at this budget."
    elif not dof:
        verdict.reasons.append(f"{best} is the best cell, but no cell has two finished seeds, so the "
                               "margin over the other cells cannot be judged against the seed-to-seed spread")
        verdict.sentence = ("The crop-plus-color finding cannot be judged at this budget: the margin needs at "
                            "least two seeds per cell.")
    elif verdict.margin_sd > MARGIN_SD:
        verdict.holds = True
        verdict.reasons.append(
            f"{best} is the best cell ({pct(verdict.best_mean)}) and beats the best cell without crop "
            f"and colour, {other} ({pct(verdict.best_other_mean)}), by "
            f"{verdict.margin_sd:.1f} pooled SD (> {MARGIN_SD:g})")
        verdict.sentence = "The crop-plus-color finding holds at this budget."
    else:
        verdict.holds = False
        verdict.reasons.append(
            f"{best} is the best cell ({pct(verdict.best_mean)}), but its margin over "
            f"{other} ({pct(verdict.best_other_mean)}) is {verdict.margin_sd:.1f} pooled SD, "
            f"not more than {MARGIN_SD:g}: within the seed-to-seed spread")
        verdict.sentence = "The crop-plus-color finding does not hold at this budget."


def spearman(a, b) -> float:
    """Spearman rank correlation: Pearson correlation of average ranks (no SciPy needed); NaN under 3
    pairs or when either side is constant."""
    frame = pd.DataFrame({"a": list(a), "b": list(b)}).dropna()
    if len(frame) < 3 or frame["a"].nunique() < 2 or frame["b"].nunique() < 2:
        return math.nan
    return float(frame["a"].rank().corr(frame["b"].rank(), method="pearson"))


def is_monotonic(values) -> bool:
    """Every value at least the one before it (a non-decreasing curve)."""
    values = list(values)
    return all(b >= a for a, b in zip(values, values[1:]))
