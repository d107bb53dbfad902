"""The study's verdict as the README says it: the parts, the contrasts (open ones first), their per-seed
values, the model's checks, the untrained floor beside it and the method. It formats what
`ablations.report.analysis` computed and computes nothing itself.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ablations.report.analysis import Floor
from ablations.design.plan import cell_name
from ablations.stats.inference import DECISIONS, MIN_SEEDS, Estimate
from ablations.stats.verdicts import Verdict


def _interval(e: Estimate) -> str:
    if math.isnan(e.low):
        return "n/a"
    return f"[{e.low * 100:+.2f}, {e.high * 100:+.2f}]"


# Where the paper's value lies against an interval (`Estimate.margin_relation`), as the README tables say it.
MARGIN_WORDS = {"includes": "inside", "excludes (below the paper)": "**excluded** (below)",
                "excludes (above the paper)": "**excluded** (above)"}


def _margin(e: Estimate) -> str:
    if e.contrast.margin is None:
        return "no figure"
    relation = e.margin_relation
    if e.contrast.margin_kind == "at least":  # the paper states a bound ("more than 10 points")
        word = {"includes": "not excluded (the interval reaches it)",
                "excludes (below the paper)": "**excluded** (below)"}.get(relation, relation)
        return f"more than {e.contrast.margin * 100:+.1f}: {word}"
    return f"{e.contrast.margin * 100:+.1f}: {MARGIN_WORDS.get(relation, relation)}"


def comparison_rows(verdict: Verdict, limit: int = 60) -> list[str]:
    """The contrasts as README table rows (percentage points), open ones first."""
    rows = ["| part | contrast | n | estimate | simultaneous 95 % interval | basis | P(above 0) over seeds | "
            "decision | paper's value: in the interval? |",
            "|---|---|---|---|---|---|---|---|---|"]
    order = sorted(((p, e) for p in verdict.parts for e in p.estimates),
                   key=lambda pe: (pe[1].decided, -abs(pe[1].estimate) if pe[1].decided else 0))
    for part, e in order[:limit]:
        decision = e.decision + (f" (about {e.seeds_needed} seeds per cell if this held)" if e.seeds_needed else "")
        rows.append(f"| {part.name} | {e.contrast.name} | {e.n} | {e.estimate * 100:+.2f} | {_interval(e)} | "
                    f"{e.basis} | {e.p_improvement:.2f} | {decision} | {_margin(e)} |")
    if len(order) > limit:
        rows.append(f"| … {len(order) - limit} more in `comparisons.parquet` | | | | | | | | |")
    return rows


def part_rows(verdict: Verdict) -> list[str]:
    """One row per part: its status and how many of its contrasts are decided each way."""
    rows = ["| part | status | contrasts: above / below / open / at the edge / too few seeds |", "|---|---|---|"]
    for part in verdict.parts:
        counts = {d: sum(e.decision == d for e in part.estimates) for d in DECISIONS}
        rows.append(f"| {part.name} | **{part.status}** | {counts['above']} / {counts['below']} / "
                    f"{counts['undecided']} / {counts['at the edge']} / {counts['too few seeds']} |")
    return rows


def per_seed_rows(verdict: Verdict, limit: int = 8) -> list[str]:
    """The per-seed view of the contrasts that are open or decided against (and, when none is, the
    closest decided ones): each seed's value, points."""
    chosen = [e for e in verdict.estimates if e.decision != "above"]
    if not chosen:
        chosen = sorted(verdict.estimates, key=lambda e: abs(e.estimate))[:3]
    chosen = chosen[:limit]
    seeds = sorted({seed for e in chosen for seed in e.per_seed.index})
    if not seeds:
        return []
    rows = ["| contrast | " + " | ".join(f"seed {s}" for s in seeds) + " | paired 95 % interval (this contrast alone) |",
            "|---|" + "---|" * (len(seeds) + 1)]
    for e in chosen:
        paired = e.paired
        cells = [f"{e.per_seed[s] * 100:+.2f}" if s in e.per_seed.index else "" for s in seeds]
        interval = f"[{paired.low * 100:+.2f}, {paired.high * 100:+.2f}]" if paired.n >= 2 else "n/a"
        rows.append(f"| {e.contrast.name} | " + " | ".join(cells) + f" | {interval} |")
    return rows


def checks_lines(verdict: Verdict) -> list[str]:
    """The block model's checks, and what they mean for the verdict."""
    checks = verdict.checks
    if checks is None:
        return []
    def p(value: float) -> str:
        return "not tested" if math.isnan(value) else f"p = {value:.3g}"

    equal = ("cells with fewer than 3 runs cannot be tested" if math.isnan(checks.bartlett_p) else
             "holds" if checks.equal_variance else "**fails**: the pool understates some cells' noise")
    table = checks.cell_sd.sort_values("own_sd", ascending=False)
    def sds(column: str) -> str:
        text = ", ".join(f"{cell_name(c)} {sd * 100:.2f}" for c, sd in zip(table["cell"], table[column]) if pd.notna(sd))
        return text if len(text) < 600 else text[:600].rsplit(",", 1)[0] + ", …"

    own, moderated = table["own_sd"].dropna(), table["moderated_sd"].dropna()
    if math.isinf(checks.prior_df):
        moderation = ("the cells' variances spread no more than chance makes them (prior df infinite): every cell "
                      f"gets the pooled SD, {checks.prior_sd * 100:.2f} points on {checks.df} df")
    else:
        own_df = table["own_df"]
        moderation = (f"prior {checks.prior_sd * 100:.2f} points on {checks.prior_df:.1f} df, each cell's own "
                      f"variance on {own_df.min():.2f}" + (f" to {own_df.max():.2f}" if np.ptp(own_df) > 0.005 else "")
                      + f" df: own SDs {own.min() * 100:.2f} to {own.max() * 100:.2f} points become "
                      f"{moderated.min() * 100:.2f} to {moderated.max() * 100:.2f} (on at most {checks.df} df)")
    return [
        f"- Model: residual SD pooled over all {len(table)} cells {checks.sigma * 100:.2f} points on {checks.df} "
        "degrees of freedom (cell + seed block model, one variance for every cell; shown for reference).",
        f"- Moderated cell variances (what the contrasts use): {moderation}.",
        f"- Equal variance over cells: Bartlett {p(checks.bartlett_p)}, Levene (median) {p(checks.levene_p)}: "
        f"{equal}. Rank correlation of cell SD with cell mean: "
        + ("n/a" if math.isnan(checks.sd_mean_spearman) else f"{checks.sd_mean_spearman:+.2f}") + ".",
        f"- Additivity of cell and seed (Tukey's one-degree-of-freedom test): {p(checks.tukey_p)}"
        + ("" if math.isnan(checks.tukey_p) or checks.additive else
           ": **fails**: seeds do not shift every cell alike, so pooling across cells is doubtful") + ".",
        "- Own residual SD per cell, points, largest first: " + sds("own_sd") + ".",
        "- Moderated SD per cell, points, in the same order: " + sds("moderated_sd") + ".",
    ]


def floor_line(floor: Floor | None, best_mean: float | None) -> str:
    if floor is None:
        return ("No untrained floor was run with this study (`floor: true` in the study file adds one): "
                "how much of each accuracy training added is not measured here.")
    spread = f" ± {floor.std * 100:.1f}" if floor.n >= 2 else ""
    above = f"; the best configuration is {(best_mean - floor.mean) * 100:+.1f} points above it" \
        if best_mean is not None else ""
    return (f"Untrained floor (the same encoder at train.epochs 0, the same probe): probe_h "
            f"{floor.mean * 100:.1f}{spread} % (n = {floor.n}){above}.")


METHOD_TEXT = (
    "Method (`ablations/stats/inference.py`): the study's trained runs as a randomized complete block design, "
    "probe_h = cell + seed + error, the means fitted by least squares, each cell with its own "
    "variance moderated towards the study's by empirical Bayes (Smyth 2004, limma's squeezeVar: a prior fitted "
    "to all the cells' variances, each cell's posterior weighing its own evidence against the prior's, on their "
    "summed degrees of freedom), so a comparison borrows strength from the whole study without a noisy cell's "
    "noise being hidden by the pool. Each contrast's variance comes from its cells' moderated variances, with "
    "Welch-Satterthwaite degrees of freedom. The rule's contrasts are one family: simultaneous 95 % intervals "
    "from the maximum of the contrasts' multivariate t (single-step max-t, Hothorn, Bretz & Westfall 2008; "
    "Dunnett's test for many-to-one), computed from a fixed set of Monte Carlo draws so the same data always give "
    "the same decision; a contrast whose |t| lies within the draws' 99.9 % error of the critical value is "
    "\"at the edge\", not decided. A contrast between two metrics of one cell (h − z) has no model and is "
    "judged on its own per-seed values with Bonferroni's share. A contrast is decided when its interval excludes "
    f"0, and never on fewer than {MIN_SEEDS} seeds per side. The method's error rate under nulls shaped like "
    "this project's studies is measured in benchmarks/RESULTS.md (calibration). Beside each contrast: whether "
    "the interval includes the paper's value of the same contrast (a bound the paper states, \"more than "
    "10\", is compared as a bound), and the per-seed values (P(above 0) is the share of seeds where it was).")
