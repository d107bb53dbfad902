"""The study's verdict in its report: the rule its study file named, the contrasts it rests on
(`comparisons.parquet`), the model's checks, and the untrained floor beside it.

The rule is the one the study file named (`verdict:`, recorded on the parent run as the tag
`ablations.verdict`); a study that named none gets no verdict at all. The statistics are
`ablations.stats.inference`'s, the rules `ablations.stats.verdicts'`; this module picks the inputs and writes the
tables and the README's rows.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ablations.stats.inference import DECISIONS, MIN_SEEDS, Estimate
from ablations.stats.paired import compare
from ablations.report.records import StudyRecords, as_int
from ablations.report.tables import OBJECTIVE, Tables, included, results, write_parquet
from ablations.spec.plan import cell_name
from ablations.stores.tracking import VERDICT_TAG
from ablations.stats.verdicts import RULES, Verdict, decide


@dataclass(frozen=True)
class Floor:
    """The same encoder untrained (train.epochs 0) under the same probe: what training adds to."""

    mean: float
    std: float  # NaN with one seed
    n: int


def rule_for(records: StudyRecords) -> str | None:
    """The rule the study file named (the parent's tag), or None: a study without one gets no verdict."""
    tagged = records.parent_tags.get(VERDICT_TAG)
    return tagged if tagged in RULES else None


def judge(records: StudyRecords, tables: Tables) -> Verdict | None:
    """The verdict of the study's rule on its finished runs; None where it named no rule."""
    rule = rule_for(records)
    if rule is None or not tables.has_results:
        return None
    epochs = None if "train.epochs" in tables.config_keys else as_int(records.params.get("train.epochs"))
    return decide(rule, results(tables), epochs)


def floor_of(tables: Tables) -> Floor | None:
    """The untrained floor's probe over its seeds, where the study ran one (`floor: true`)."""
    if tables.floor is None:
        return None
    kept = included(tables.floor).dropna(subset=[OBJECTIVE])
    if kept.empty:
        return None
    return Floor(float(kept[OBJECTIVE].mean()), float(kept[OBJECTIVE].std(ddof=1)), len(kept))


COLUMNS = ["part", "part_status", "contrast", "better", "worse", "basis", "n", "estimate", "se", "df", "ci_low",
           "ci_high", "critical", "critical_low", "critical_high", "p_adjusted", "p_is_bound", "decision",
           "paper_margin", "paper_margin_kind", "margin_relation", "own_sd", "implied_sd", "p_improvement",
           "paired_low", "paired_high", "per_seed", "seeds_needed"]


def comparisons_table(verdict: Verdict) -> pd.DataFrame:
    """One row per contrast of the verdict, the columns documented in reports/README.md
    (`comparisons.parquet`); accuracies and differences as fractions."""
    rows = []
    for part in verdict.parts:
        for e in part.estimates:
            paired = compare(e.per_seed.to_numpy()) if len(e.per_seed) else None
            rows.append({
                "part": part.name, "part_status": part.status, "contrast": e.contrast.name,
                "better": e.contrast.better, "worse": e.contrast.worse, "basis": e.basis, "n": e.n,
                "estimate": e.estimate, "se": e.se, "df": e.df, "ci_low": e.low, "ci_high": e.high,
                "critical": e.critical, "critical_low": e.critical_low, "critical_high": e.critical_high,
                "p_adjusted": e.p_adjusted, "p_is_bound": e.p_bound, "decision": e.decision,
                "paper_margin": math.nan if e.contrast.margin is None else e.contrast.margin,
                "paper_margin_kind": "" if e.contrast.margin is None else e.contrast.margin_kind,
                "margin_relation": e.margin_relation, "own_sd": e.own_sd, "implied_sd": e.implied_sd,
                "p_improvement": e.p_improvement,
                "paired_low": paired.low if paired else math.nan, "paired_high": paired.high if paired else math.nan,
                "per_seed": json.dumps({str(seed): round(float(v), 6) for seed, v in e.per_seed.items()}),
                "seeds_needed": pd.NA if e.seeds_needed is None else e.seeds_needed,
            })
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype({"n": "int64", "seeds_needed": "Int64", "p_is_bound": "bool"})


def write_comparisons(verdict: Verdict, path: Path, metadata: dict) -> Path:
    """comparisons.parquet: one row per contrast of the verdict (reports/README.md)."""
    checks = verdict.checks
    return write_parquet(comparisons_table(verdict), path, {
        **metadata, "verdict_rule": verdict.rule, "verdict": verdict.status, "claim": verdict.claim,
        "sentence": verdict.sentence, "best_candidates": verdict.candidates,
        "model_sigma": checks.sigma if checks else None, "model_df": checks.df if checks else None})


def _interval(e: Estimate) -> str:
    if math.isnan(e.low):
        return "n/a"
    return f"[{e.low * 100:+.2f}, {e.high * 100:+.2f}]"


def _margin(e: Estimate) -> str:
    if e.contrast.margin is None:
        return "no figure"
    relation = e.margin_relation
    if e.contrast.margin_kind == "at least":  # the paper states a bound ("more than 10 points")
        word = {"includes": "not excluded (the interval reaches it)",
                "excludes (below the paper)": "**excluded** (below)"}.get(relation, relation)
        return f"more than {e.contrast.margin * 100:+.1f}: {word}"
    word = {"includes": "inside", "excludes (below the paper)": "**excluded** (below)",
            "excludes (above the paper)": "**excluded** (above)"}.get(relation, relation)
    return f"{e.contrast.margin * 100:+.1f}: {word}"


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
        paired = compare(e.per_seed.to_numpy())
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
