"""The report of a race (issue 28): every rung's grid, what stopped where and why, the audit, and the cost
against the full grid at the last rung. Built from the runs table alone (its `rung` and `race` columns,
which runs.parquet keeps), so `--from-parquet` rebuilds it without the store.

A race's main report (tables, figures, verdict) is of its last rung: `last_rung` keeps the runs of the
cells that reached it (audited cells left out, as they did not reach it by the race) and the floor. This
module adds the section that shows the race itself; the statistics are `ablations.stats.race`'s.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import pandas as pd

from ablations.messages import duration
from ablations.report.records import FLOOR_ROLE, StudyRecords
from ablations.design.plan import cell_name
from ablations.stats.race import Agreement, audit_survivors, needed_cells, rank_agreement
from ablations.stats.verdicts import Verdict, cell_of, decide

RUNG, ROLE = "rung", "race"


def is_race(records: StudyRecords) -> bool:
    return RUNG in records.runs.columns and bool(records.runs[RUNG].notna().any())


def last_rung(records: StudyRecords) -> StudyRecords:
    """The records of the race's last rung reached: its survivors' runs and the floor (train.epochs set to it)."""
    runs = records.runs
    last = int(runs[RUNG].max())
    keep = (runs["role"] == FLOOR_ROLE) | ((runs[RUNG] == last) & (runs[ROLE] != "audit"))
    return dataclasses.replace(records, runs=runs[keep].reset_index(drop=True),
                               params={**records.params, "train.epochs": str(last)})


@dataclass
class Stop:
    cell: str
    epochs: int
    text: str  # why, from that rung's verdict: the contrast that decided it, or that it could not be best


@dataclass
class RaceReport:
    rungs: list[int]  # the rungs reached
    cells: list[str]  # every cell, in the order of the first rung's trials
    at: dict[int, list[str]]  # cells raced at each rung (audited ones aside)
    stops: list[Stop] = field(default_factory=list)
    audit: list[str] = field(default_factory=list)
    audit_needed: list[str] = field(default_factory=list)  # audited cells the rule needed at the last rung
    agreements: list[Agreement] = field(default_factory=list)
    means: dict[tuple[int, str], tuple[float, int]] = field(default_factory=dict)  # (rung, cell) -> mean, n
    last_verdict: str = ""  # the rule at the last rung on the cells that reached it, in a sentence
    spent_s: float = 0.0
    full_s: float = math.nan  # the full grid at the last rung (measured where run, else its mean)


def analyse(records: StudyRecords, rule: str) -> RaceReport:
    runs = records.runs[(records.runs["role"] != FLOOR_ROLE) & records.runs[RUNG].notna()]
    runs = runs.sort_values("trial", kind="stable")
    finished = runs[runs["status"] == "FINISHED"].dropna(subset=["probe_h"])
    rungs = sorted(int(r) for r in runs[RUNG].unique())
    first, last = rungs[0], rungs[-1]
    cells = list(dict.fromkeys(runs.loc[runs[RUNG] == first, "cell"]))
    survivors = runs[runs[ROLE] != "audit"]
    at = {r: [c for c in cells if c in set(survivors.loc[survivors[RUNG] == r, "cell"])] for r in rungs}
    report = RaceReport(rungs, cells, at)
    frame = finished.assign(**{RUNG: finished[RUNG].astype(int)})
    for (r, cell), group in frame.groupby([RUNG, "cell"]):
        report.means[(int(r), cell)] = (float(group["probe_h"].mean()), len(group))
    for r, following in zip(rungs, rungs[1:]):
        stopped = [c for c in at[r] if c not in at[following]]
        if not stopped:
            continue
        rung_runs = frame[(frame[RUNG] == r) & frame["cell"].isin(at[r]) & (frame[ROLE] != "audit")]
        _, verdict = needed_cells(rule, rung_runs)
        report.stops += [Stop(c, r, _why(verdict, c)) for c in stopped]
    reached = frame[(frame[RUNG] == last) & (frame[ROLE] != "audit")]
    if not reached.empty:
        report.last_verdict = decide(rule, reached, last).sentence
    report.audit = [c for c in cells if c in set(runs.loc[runs[ROLE] == "audit", "cell"])]
    last_runs = frame[frame[RUNG] == last]
    report.audit_needed = audit_survivors(rule, last_runs, report.audit)
    report.agreements = [a for r in rungs[:-1] if (a := rank_agreement(frame, r, last)) is not None]
    report.spent_s = float(runs["duration_s"].sum(skipna=True))
    last_times = runs.loc[runs[RUNG] == last].groupby("cell")["duration_s"].mean().dropna()
    if len(last_times):
        seeds = runs["seed"].nunique()
        report.full_s = float(sum(last_times.get(c, last_times.mean()) for c in cells) * seeds)
    return report


def _why(verdict: Verdict, cell: str) -> str:
    """The stopped cell's comparison at its rung (estimate, simultaneous interval, decision)."""
    for e in (e for part in verdict.parts for e in part.estimates):
        if cell in {cell_of(side) for side in e.contrast.cells}:
            return (f"{e.contrast.name} {e.estimate * 100:+.1f} points [{e.low * 100:+.1f}, {e.high * 100:+.1f}], "
                    f"{e.decision}")
    return "in no comparison the rule makes, and not among the cells that could be best"


def section(report: RaceReport, pair: bool, unfinished: str | None = None) -> list[str]:
    """The README's race section, in Markdown lines; `unfinished` says why the race is not over, if it is not."""
    lines = ["## The race", ""]
    if unfinished:
        lines += [f"**Not over**: {unfinished}. The rungs below are those reached so far, and the last of them "
                  "may not be complete nor the race's last: what is said of the last rung reached is provisional.", ""]
    lines += [f"Rungs reached: {', '.join(f'{r} epochs' for r in report.rungs)}. Every cell ran at the first rung; "
             "after each rung the cells the study's rule still needed (those that could be best by MCB, and those of "
             "its open contrasts, on that rung's runs alone) went on, the rest stopped there. The tables, figures "
             f"and verdict above are of the last rung, {report.rungs[-1]} epochs, on the cells that reached it; "
             "an eliminated cell is stated as eliminated, not as decided there.", ""]
    for r in report.rungs:
        lines += [f"### {r} epochs: {len(report.at[r])} cells", ""] + _grid(report, r, pair) + [""]
    if report.last_verdict:
        lines += [f"Verdict at {report.rungs[-1]} epochs, on the {len(report.at[report.rungs[-1]])} cell(s) that reached "
                  f"it: {report.last_verdict} The {len(report.stops)} eliminated cell(s) below are eliminated: each was "
                  f"decided at the rung where it stopped, not at {report.rungs[-1]} epochs.", ""]
    if report.stops:
        lines += ["Eliminated (at the rung they stopped, the comparison that decided it, 95 % simultaneous):", ""]
        lines += [f"- {cell_name(s.cell)}: stopped at {s.epochs} epochs: {s.text}" for s in report.stops] + [""]
    lines += [_audit_sentence(report), "", _cost_sentence(report), ""]
    return lines


def _grid(report: RaceReport, r: int, pair: bool) -> list[str]:
    """Mean probe_h in % (n seeds) of each cell run at rung r; `stopped at N` for a cell eliminated earlier."""
    stopped = {s.cell: s.epochs for s in report.stops}

    def entry(cell: str) -> str:
        if (r, cell) in report.means:
            mean, n = report.means[(r, cell)]
            return f"{mean * 100:.1f} (n={n})" + (" audit" if cell in report.audit and cell not in report.at[r] else "")
        return f"stopped at {stopped[cell]}" if cell in stopped and stopped[cell] < r else "·"

    if not pair:
        return ["| configuration | probe_h % |", "|---|---|"] + [f"| {cell_name(c)} | {entry(c)} |" for c in report.cells]
    names = {c: cell_name(c) for c in report.cells}
    ops = list(dict.fromkeys(op for c in report.cells for op in (names[c].split("+")[0], names[c].split("+")[-1])))
    by_pair = {(n.split("+")[0], n.split("+")[-1]): c for c, n in names.items()}
    lines = ["| first \\ second | " + " | ".join(ops) + " |", "|---" * (len(ops) + 1) + "|"]
    for first in ops:
        lines.append(f"| {first} | " + " | ".join(entry(by_pair[(first, second)]) if (first, second) in by_pair else ""
                                                 for second in ops) + " |")
    return lines


def _audit_sentence(report: RaceReport) -> str:
    last = report.rungs[-1]
    if not report.audit:
        return (f"Audit: no eliminated cell was run at {last} epochs (none drawn, or the race has not reached its "
                "last rung), so what elimination assumes is not measured here.")
    agreement = "; ".join(
        f"Spearman's rank correlation of the cells' means between {a.short} and {a.long} epochs is {a.rho:+.2f}"
        + (f" [{a.low:+.2f}, {a.high:+.2f}]" if a.low is not None else " (no interval)") + f" over {a.n} cells"
        for a in report.agreements) or "Too few cells ran at two rungs for a rank correlation"
    needed = (f"{', '.join(cell_name(c) for c in report.audit_needed)} would have survived at {last} epochs "
              "(the rule still needed it there): an elimination the last rung does not bear out"
              if report.audit_needed else f"none would have survived at {last} epochs")
    return (f"Audit: {len(report.audit)} eliminated cell(s) drawn at random ({', '.join(cell_name(c) for c in report.audit)}) "
            f"were run at {last} epochs too: {needed}. {agreement} (95 % interval by Fisher's z with Fieller's "
            "variance 1.06/(n-3); the cells that ran at both rungs are the survivors and the audited ones, not a "
            "random sample of the grid).")


def _cost_sentence(report: RaceReport) -> str:
    if math.isnan(report.full_s):
        return f"Cost: {duration(report.spent_s)} of trial time so far; no trial at the last rung yet to set it against."
    return (f"Cost: {duration(report.spent_s)} of trial time spent on the race (every rung, audit included), against "
            f"an estimated {duration(report.full_s)} for the full grid of {len(report.cells)} cells at "
            f"{report.rungs[-1]} epochs ({report.spent_s / report.full_s:.0%}): measured trial times where a cell ran "
            "there, their mean for the cells that did not (an estimate).")
