"""The study's verdict in its report: which rule applies, the paired comparisons it rests on
(`comparisons.parquet`), and the untrained floor beside it.

The rule is the one the study file named (`verdict:`, recorded on the parent run as the tag
`ablations.verdict`); a study recorded before that tag existed gets the rule its varied keys imply
(pairs -> crop_color_best, colour strength -> color_strength_rises, head -> head_order, temperature x
batch size -> temperature_half_best). The statistics are `ablations.paired`'s, the rules
`ablations.verdicts`'; this module only picks the inputs and writes the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ablations import paired
from ablations.report.records import StudyRecords
from ablations.report.tables import OBJECTIVE, Tables, included, write_parquet
from ablations.tracking import VERDICT_TAG, cell_name
from ablations.verdicts import REQUIRES, RULES, Verdict


@dataclass(frozen=True)
class Floor:
    """The same encoder untrained (train.epochs 0) under the same probe: what training adds to."""

    mean: float
    std: float  # NaN with one seed
    n: int


def rule_for(records: StudyRecords, tables: Tables) -> str | None:
    """The study's verdict rule: its recorded tag, else the one its varied keys imply, else None."""
    tagged = records.parent.data.tags.get(VERDICT_TAG)
    if tagged in RULES:
        return tagged
    if tables.pair:
        return "crop_color_best"
    # A rule whose varied keys (verdicts.REQUIRES) are exactly the study's.
    return next((rule for rule, keys in REQUIRES.items() if set(keys) == set(tables.config_keys)), None)


def judge(records: StudyRecords, tables: Tables) -> Verdict | None:
    """The verdict of the study's rule on its finished runs; None where no rule applies."""
    rule = rule_for(records, tables)
    if rule is None or not tables.has_results:
        return None
    return RULES[rule](included(tables.runs).dropna(subset=[OBJECTIVE]))


def floor_of(tables: Tables) -> Floor | None:
    """The untrained floor's probe over its seeds, where the study ran one (`floor: true`)."""
    if tables.floor is None:
        return None
    kept = included(tables.floor).dropna(subset=[OBJECTIVE])
    if kept.empty:
        return None
    return Floor(float(kept[OBJECTIVE].mean()), float(kept[OBJECTIVE].std(ddof=1)), len(kept))


def write_comparisons(verdict: Verdict, path: Path, metadata: dict) -> Path:
    """comparisons.parquet: one row per paired comparison of the verdict (reports/README.md)."""
    frame = paired.table(verdict.comparisons)
    return write_parquet(frame, path, {**metadata, "verdict_rule": verdict.rule, "verdict": verdict.status,
                                       "claim": verdict.claim})


def comparison_rows(verdict: Verdict, limit: int = 60) -> list[str]:
    """The comparisons as README table rows (percentage points), most uncertain first."""
    rows = ["| better | worse | n | mean difference | 95 % interval | P(better > worse) | p (Holm) | decision |",
            "|---|---|---|---|---|---|---|---|"]
    def openness(c: paired.Comparison) -> tuple[bool, float]:
        return c.decided, -(1.0 if math.isnan(c.p_corrected) else c.p_corrected)

    order = sorted(verdict.comparisons, key=openness)
    for c in order[:limit]:
        interval = (f"[{c.low * 100:+.2f}, {c.high * 100:+.2f}]" if c.n >= 2 else "n/a (one seed)")
        p = "n/a" if math.isnan(c.p_corrected) else f"{c.p_corrected:.3g}"
        decision = c.decision + (f" (about {c.seeds_needed} seeds would decide)" if c.seeds_needed else "")
        rows.append(f"| {cell_name(c.better)} | {cell_name(c.worse)} | {c.n} | {c.mean * 100:+.2f} | {interval} | "
                    f"{c.p_improvement:.2f} | {p} | {decision} |")
    if len(order) > limit:
        rows.append(f"| … {len(order) - limit} more in `comparisons.parquet` | | | | | | | |")
    return rows


def floor_line(floor: Floor | None, best_mean: float | None) -> str:
    if floor is None:
        return ("No untrained floor was run with this study (`floor: true` in the study file adds one): "
                "how much of each accuracy training added is not measured here.")
    spread = f" ± {floor.std * 100:.1f}" if floor.n >= 2 else ""
    above = f"; the best configuration is {(best_mean - floor.mean) * 100:+.1f} points above it" \
        if best_mean is not None else ""
    return (f"Untrained floor (the same encoder at train.epochs 0, the same probe): probe_h "
            f"{floor.mean * 100:.1f}{spread} % (n = {floor.n}){above}.")
