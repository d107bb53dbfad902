"""A study's report computed once: its tables, the verdict of its rule with the contrasts' table and
their per-seed views, the untrained floor, crop+color's lead against training length, the per-epoch
history, the configurations a crowded figure names, and each figure's statistics (the figure registry,
`specs.FIGURES`, says what they are). The writers (`parquet`, `readme`, the figures of `specs`) only read an
`Analysis`; none of them computes a statistic.

The rule is the one the study file named (`verdict:`, recorded on the parent run as the tag
`ablations.verdict`); a study that named none gets no verdict at all. The statistics are
`ablations.stats`'; this module picks their inputs from the records.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from ablations.report import race
from ablations.report.formatting import pair_name
from ablations.report.race import RaceReport
from ablations.report.records import StudyRecords, as_int
from ablations.report.tables import (
    OBJECTIVE, Tables, build_tables, history_frame, included,
)
from ablations.design.plan import cell_name
from ablations.stats import inference
from ablations.stats.contrasts import Contrast
from ablations.stats.reference import FIGURE5
from ablations.stats.verdicts import RULES, Verdict, decide, pair_cells_by_epochs
from ablations.stores.tracking import VERDICT_TAG

CROP_COLOR = ("crop", "color")


@dataclass(frozen=True)
class Floor:
    """The same encoder untrained (train.epochs 0) under the same probe: what training adds to."""

    mean: float
    std: float  # NaN with one seed
    n: int


@dataclass
class Analysis:
    """Everything a study's report writes, computed by `analyse`."""

    records: StudyRecords
    tables: Tables
    verdict: Verdict | None = None  # the study's rule on its results; None where it named none
    comparisons: pd.DataFrame | None = None  # one row per contrast of the verdict (comparisons.parquet)
    floor: Floor | None = None
    gaps: pd.DataFrame | None = None  # crop+color's lead per training length, where the study has one
    differences: pd.DataFrame | None = None  # a study without a rule: its configurations compared (differences.parquet)
    history: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per epoch of each included run
    highlighted: list[str] = field(default_factory=list)  # configurations a crowded curve figure names
    figures: dict[str, Any] = field(default_factory=dict)  # figure stem -> the statistics it shows (`specs`)
    # A race is reported at its last rung (`records` are that rung's, `race.last_rung`); every run of it is
    # kept in runs.parquet (`saved`), and the race itself is said in a README section (`race`).
    saved: StudyRecords | None = None  # the records runs.parquet keeps (None: `records`)
    race: RaceReport | None = None

    @property
    def floor_percent(self) -> float | None:
        """The floor's mean probe on h, percent, for the figures' floor lines."""
        return self.floor.mean * 100 if self.floor else None


class FigureStatistics(Protocol):
    """A figure's entry as the analysis reads it (`ablations.report.specs.FigureSpec`): its stem, and the
    statistics it shows, computed from the rest of the analysis (None where it does not apply)."""

    stem: str

    def compute(self, analysis: Analysis) -> Any: ...


def analyse(records: StudyRecords, figures: Iterable[FigureStatistics] = ()) -> Analysis:
    """The study's analysis from its records, the statistics of each of `figures` (the report's registry,
    `specs.FIGURES`) included."""
    full, records = records, race.last_rung(records) if race.is_race(records) else records
    rule = rule_for(full)  # the parent's tag, which a race's last rung keeps
    tables = build_tables(records)
    analysis = analyse_tables(records, tables, judge(records, tables, rule), records.histories, figures)
    analysis.saved = full
    if full is not records and rule:
        analysis.race = race.analyse(full, rule)
    return analysis


def analyse_tables(records: StudyRecords, tables: Tables, verdict: Verdict | None,
                   histories: dict[str, dict[str, dict[int, float]]],
                   figures: Iterable[FigureStatistics] = ()) -> Analysis:
    """The analysis of tables whose verdict is given (the figures' tests build tables by hand);
    `histories`: run_id -> metric -> epoch -> value (`StudyRecords.histories`)."""
    labels = tables.labels
    analysis = Analysis(
        records, tables, verdict,
        comparisons=comparisons_table(verdict) if verdict is not None else None,
        floor=floor_of(tables), gaps=gaps_table(tables),
        differences=differences_table(tables) if verdict is None else None,
        history=history_frame(tables.runs, histories, labels),
        highlighted=highlighted(tables, verdict, labels))
    for figure in figures:  # each from what is above, in the registry's order
        statistics = figure.compute(analysis)
        if statistics is not None:
            analysis.figures[figure.stem] = statistics
    return analysis


def rule_for(records: StudyRecords) -> str | None:
    """The rule the study file named (the parent's tag), or None: a study without one gets no verdict."""
    tagged = records.parent_tags.get(VERDICT_TAG)
    return tagged if tagged in RULES else None


def judge(records: StudyRecords, tables: Tables, rule: str | None) -> Verdict | None:
    """The verdict of `rule` (the study's, `rule_for`) on its finished runs; None where it named no rule."""
    if rule is None or not tables.has_results:
        return None
    epochs = None if "train.epochs" in tables.config_keys else as_int(records.params.get("train.epochs"))
    return decide(rule, tables.results, epochs)


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
            view = e.paired
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
                "paired_low": view.low if view.n else math.nan, "paired_high": view.high if view.n else math.nan,
                "per_seed": json.dumps({str(seed): round(float(v), 6) for seed, v in e.per_seed.items()}),
                "seeds_needed": pd.NA if e.seeds_needed is None else e.seeds_needed,
            })
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype({"n": "int64", "seeds_needed": "Int64", "p_is_bound": "bool"})


def gaps_table(tables: Tables) -> pd.DataFrame | None:
    """crop+color's lead over every other pair at each training length, judged together (simultaneous 95 %
    intervals): a description beside the verdict, not its rule. None unless the study has crop+color and
    another pair at two lengths or more."""
    runs = tables.counted.dropna(subset=[OBJECTIVE])
    if not (tables.pair and "train.epochs" in tables.config_keys) or runs.empty:
        return None
    cells = pair_cells_by_epochs(runs)
    pairs = {pair for pair, _ in cells}
    if not (CROP_COLOR in pairs and len(pairs) > 1 and len({e for _, e in cells}) > 1):
        return None
    budgets = sorted({e for _, e in cells})
    others = [pair for pair in dict.fromkeys(p for p, _ in cells) if pair != CROP_COLOR]
    contrasts, keys = [], []
    for first, second in others:
        paper = (FIGURE5["crop"]["color"] - FIGURE5[first][second]
                 if first in FIGURE5 and second in FIGURE5[first] else None)
        name = f"{pair_name(CROP_COLOR)} − {pair_name((first, second))}"
        for epochs in budgets:
            if (CROP_COLOR, epochs) in cells and ((first, second), epochs) in cells:
                contrasts.append(Contrast.pair(cells[(CROP_COLOR, epochs)], cells[((first, second), epochs)],
                                               name, None if paper is None else paper / 100))
                keys.append((name, epochs))
    judged = inference.judge(runs, contrasts)
    return pd.DataFrame([{"gap": name, "epochs": epochs, "estimate": e.estimate, "ci_low": e.low, "ci_high": e.high,
                          "n": e.n, "basis": e.basis, "decision": e.decision,
                          "paper_gap": e.contrast.margin if e.contrast.margin is not None else math.nan}
                         for (name, epochs), e in zip(keys, judged)])


# Above this many configurations a study without a rule shows each compared with the best only (k - 1 rows
# instead of every pair's k(k-1)/2: 1,176 for a 49-cell grid, too many to read); the best is chosen by the
# data, so their intervals still take the family of every pair (Bonferroni: max-t draws over 1,176 contrasts
# would need gigabytes).
ALL_PAIRS_UP_TO = 12
DIFFERENCE_COLUMNS = ["contrast", "better", "worse", "basis", "n", "estimate", "se", "df", "ci_low", "ci_high",
                      "critical", "p_adjusted", "p_is_bound", "decision", "paper_margin", "margin_relation",
                      "paired_low", "paired_high", "per_seed"]


def differences_table(tables: Tables) -> pd.DataFrame | None:
    """A study that named no rule still gets estimates with intervals: its configurations compared, every
    pair of them, the higher mean first, judged together by the study-wide inference as one family
    (simultaneous 95 % intervals, max-t); where there are more than ALL_PAIRS_UP_TO, only each against the
    best is shown, its intervals still of the family of every pair (Bonferroni). No claim was
    fixed before the run, so these describe and decide nothing; the paper's difference of the same two
    cells is set beside where Figure 5 has both. None where fewer than two configurations have results."""
    runs = tables.results
    if runs.empty or "cell" not in runs.columns:
        return None
    means = runs.dropna(subset=[OBJECTIVE]).groupby("cell", sort=False)[OBJECTIVE].mean().sort_values(ascending=False)
    cells = list(means.index)
    if len(cells) < 2:
        return None
    pairs = ([(a, b) for i, a in enumerate(cells) for b in cells[i + 1:]] if len(cells) <= ALL_PAIRS_UP_TO
             else [(cells[0], b) for b in cells[1:]])
    pair_of = ({c: (f, s) for c, f, s in zip(runs["cell"], runs["first"], runs["second"])}
               if {"first", "second"} <= set(runs.columns) else {})

    def paper(a: str, b: str) -> float | None:
        (fa, sa), (fb, sb) = pair_of.get(a, ("", "")), pair_of.get(b, ("", ""))
        if sa in FIGURE5.get(fa, {}) and sb in FIGURE5.get(fb, {}):
            return (FIGURE5[fa][sa] - FIGURE5[fb][sb]) / 100
        return None

    contrasts = [Contrast.pair(a, b, f"{cell_name(a)} − {cell_name(b)}", paper(a, b)) for a, b in pairs]
    k = len(cells)
    judged = (inference.judge(runs, contrasts) if k <= ALL_PAIRS_UP_TO
              else inference.judge_within(runs, contrasts, family=k * (k - 1) // 2))
    rows = []
    for e in judged:
        view = e.paired
        rows.append({
            "contrast": e.contrast.name, "better": e.contrast.better, "worse": e.contrast.worse, "basis": e.basis,
            "n": e.n, "estimate": e.estimate, "se": e.se, "df": e.df, "ci_low": e.low, "ci_high": e.high,
            "critical": e.critical, "p_adjusted": e.p_adjusted, "p_is_bound": e.p_bound, "decision": e.decision,
            "paper_margin": math.nan if e.contrast.margin is None else e.contrast.margin,
            "margin_relation": e.margin_relation,
            "paired_low": view.low if view.n else math.nan, "paired_high": view.high if view.n else math.nan,
            "per_seed": json.dumps({str(seed): round(float(v), 6) for seed, v in e.per_seed.items()})})
    return pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS).astype({"n": "int64", "p_is_bound": "bool"})


def differences_compared(differences: pd.DataFrame) -> str:
    """Which comparisons `differences_table` made: "every pair" or "each with the best"."""
    cells = set(differences["better"]) | set(differences["worse"])
    return "every pair" if len(cells) <= ALL_PAIRS_UP_TO else "each with the best"


def highlighted(tables: Tables, verdict: Verdict | None, labels: list[str]) -> list[str]:
    """The configurations a crowded curve figure names: the best, those that could still be best, those
    in the verdict's contrasts that are not decided above 0, and the worst two."""
    runs = tables.counted.dropna(subset=[OBJECTIVE])
    if "cell" not in runs.columns:
        return []
    by_cell = dict(zip(tables.runs["cell"], labels))
    means = runs.groupby("cell")[OBJECTIVE].mean().sort_values()
    chosen: list[str] = list(means.index[-1:])
    if verdict is not None:
        chosen += list(verdict.candidates)
        chosen += [c for e in verdict.estimates if e.decision != "above" for c in e.contrast.cells]
    chosen += list(means.index[:2])
    return list(dict.fromkeys(by_cell[c] for c in chosen if c in by_cell))

