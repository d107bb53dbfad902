"""A study's README.md: the evidence header (hardware, versions, runs, wall time, budget), a reading of
each table and figure, the verdict on SimCLR's crop-plus-colour finding for pair studies, and the
hand-written ANALYSIS.md kept beside it. Every number comes from the tables, the statistics or the
figures' readings; nothing here computes a statistic of its own.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from importlib import metadata  # MLflow's version without importing it (--from-parquet needs no store)
from pathlib import Path

import matplotlib
import pandas as pd
import seaborn

from ablations.messages import duration
from ablations.report.formatting import n_text, pct, pct_spread
from ablations.report.records import PAIR_KEYS, StudyRecords, shared_param
from ablations.stats.reference import PAPER_BATCH_SIZE, PAPER_EPOCHS
from ablations.report.specs import FIGURES
from ablations.report.tables import OBJECTIVE, Tables
from ablations.report.analysis import ALL_PAIRS_UP_TO, Analysis, differences_compared
from ablations.report.verdict import (
    MARGIN_WORDS, METHOD_TEXT, checks_lines, comparison_rows, floor_line, part_rows, per_seed_rows,
)
from ablations.stores.errors import store_label
from ablations.design.plan import PIPELINE_KEY, cell_name
from ablations.stats.verdicts import RULES, Verdict

# Budget keys worth stating in the header when constant over a study's runs.
BUDGET_KEYS = ("data.dataset", "data.train_subset", "data.test_subset", "model.encoder", "model.width",
               "model.head", "train.epochs", "train.batch_size", "train.optimizer", "train.lr",
               "train.weight_decay", "train.temperature", "augment.protocol", "augment.base_crop",
               "augment.color_strength")
# A hand-written reading of a study's results, kept beside its README and included in it on every rebuild.
ANALYSIS_NAME = "ANALYSIS.md"


def render_readme(analysis: Analysis, readings: dict[str, list[str]]) -> str:
    """The README's text; `readings` holds two lines per figure drawn, by stem."""
    records, tables, verdict = analysis.records, analysis.tables, analysis.verdict
    budget = _budget(records, tables)
    lines = _header(records, tables, budget) + _tables_section(tables)
    best = tables.summary[f"{OBJECTIVE}_mean"].max() if len(tables.summary) else None
    if verdict is not None:
        lines += _verdict_section(verdict, budget, floor_line(analysis.floor, best), records.unfinished)
    elif analysis.differences is not None:
        lines += _differences_section(analysis.differences, floor_line(analysis.floor, best), records.unfinished)
    lines += _figures_section(readings)
    return "\n".join(lines).rstrip() + "\n"


def with_analysis(text: str, study_dir: Path) -> str:
    """The README text with the study's ANALYSIS.md appended, when there is one."""
    analysis = study_dir / ANALYSIS_NAME
    if not analysis.exists():
        return text
    return text + (f"\n## Analysis\n\nFrom [`{ANALYSIS_NAME}`]({ANALYSIS_NAME}), written by hand after reading "
                   "the figures above; the report includes it again whenever it is rebuilt.\n\n"
                   + analysis.read_text())


def _header(records: StudyRecords, tables: Tables, budget: str) -> list[str]:
    """Title, provenance and the evidence table (lesson 10: hardware, versions and wall time)."""
    runs, kept = tables.runs, tables.counted
    statuses = Counter(runs["status"])
    devices = Counter(d for d in runs["device"] if isinstance(d, str))
    hardware = "; ".join(f"{device} ({count} runs)" for device, count in devices.most_common())
    torch_versions = sorted({v for v in runs["torch_version"] if isinstance(v, str)})
    commits = sorted({c for c in runs["git_commit"] if isinstance(c, str)})
    dirty = records.parent_tags.get("git_dirty")
    left_out = sum(tables.left_out.values())
    if records.from_mlflow:
        built = (f"Built by `python -m ablations.report --study {records.name}` on "
                 f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from MLflow `{store_label(records.source)}`, experiment "
                 f"`{records.name}`")
    else:
        built = (f"Built by `python -m ablations.report --from-parquet {records.source}` on "
                 f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from the study's saved records "
                 "(`runs.parquet`, every run with the floor's, and `history.parquet`), with no MLflow store")
    lines = [
        f"# {records.name}: report",
        "",
        f"{built}, parent run `{records.parent_run_id}` ({records.parent_status}). The report trains nothing: "
        "every number below is read from the runs' records.",
    ]
    lines += ["", *(f"Note: {note}" for note in records.notes)] if records.notes else []
    description = records.parent_tags.get("mlflow.note.content")
    if description and description != records.name:
        lines += ["", f"> {description}"]
    lines += [
        "",
        "| | |",
        "|---|---|",
        f"| hardware | {hardware or 'not recorded'} |",
        f"| libraries | runs: torch {', '.join(torch_versions) or 'not recorded'}; report: pandas {pd.__version__}, "
        f"mlflow {metadata.version('mlflow')}, seaborn {seaborn.__version__}, matplotlib {matplotlib.__version__} |",
        f"| code | git {', '.join(c[:12] for c in commits) or 'not recorded'}"
        + (f" (working tree dirty: {dirty})" if dirty else "") + " |",
        f"| runs | {len(runs)}: " + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
        + (f" ({tables.left_out.get('pruned', 0)} of them pruned)" if tables.left_out.get("pruned") else "")
        + f"; {left_out} left out of the summary |",
        _wall_time_row(runs, kept),
        f"| dates | runs started {runs['start_time'].min():%Y-%m-%d %H:%M} UTC to "
        f"{runs['start_time'].max():%Y-%m-%d %H:%M} UTC |",
        f"| budget | {budget or 'see the runs’ params'} |",
        _probe_row(records, kept),
        _phases_row(kept),
        f"| varied | {_varied_text(tables)}; seeds {sorted(set(int(s) for s in runs['seed'].dropna()))} |",
    ]
    if records.earlier_parents:
        lines += ["", f"Note: {records.earlier_parents} earlier parent run(s) of a study with this name are in the "
                      "experiment; only the latest study's runs are reported."]
    return lines


def _probe_row(records: StudyRecords, kept: pd.DataFrame) -> str:
    """Which images the final linear probe was fitted on and scored on."""
    if {"train_images", "test_images"} <= set(kept.columns) and kept["train_images"].notna().any():
        train = sorted({int(n) for n in kept["train_images"].dropna()})
        test = sorted({int(n) for n in kept["test_images"].dropna()})
        sizes = (f"fitted on the frozen features of all {', '.join(f'{n:,}' for n in train)} training images "
                 f"of each run, scored on {', '.join(f'{n:,}' for n in test)} test images")
    else:  # runs recorded before the image counts were logged: the subsets as configured
        train, test = shared_param(records, "data.train_subset"), shared_param(records, "data.test_subset")
        sizes = (f"fitted on the frozen features of {'all' if train in (None, 'null') else 'the first ' + train} "
                 f"training images, scored on {'all' if test in (None, 'null') else 'the first ' + test} test images "
                 f"of {shared_param(records, 'data.dataset') or 'the data set'}")
    return f"| probe | linear probe (L-BFGS on standardised features, h and z) {sizes} |"


def _phases_row(kept: pd.DataFrame) -> str:
    """Where the finished runs' time went, summed (RunResult.phase_seconds, logged as <phase>_s; data_s and
    preview_s are the runner getting the data set and making the preview before train(), tracking_s its
    MLflow calls)."""
    outside = ("data", "preview")
    phases = [p for p in (*outside, "setup", "train", "knn", "probe") if f"{p}_s" in kept.columns]
    if not any(kept[f"{p}_s"].notna().any() for p in phases):
        return "| time by phase | not recorded by these runs |"
    totals = {p: float(kept[f"{p}_s"].sum(skipna=True)) for p in phases}
    tracking = float(kept["tracking_s"].sum(skipna=True)) if "tracking_s" in kept.columns else 0.0
    whole = float(kept["wall_time_s"].sum(skipna=True)) + tracking + sum(totals.get(p, 0.0) for p in outside)
    parts = [f"{p} {duration(t)} ({100 * t / whole:.0f} %)" for p, t in totals.items()]
    parts.append(f"tracking {duration(tracking)} ({100 * tracking / whole:.0f} %)")
    return f"| time by phase | summed over the finished runs: {', '.join(parts)} |"


def _wall_time_row(runs: pd.DataFrame, kept: pd.DataFrame) -> str:
    """Training time summed over the runs, the runs' whole MLflow durations, and the median finished run."""
    wall = float(runs["wall_time_s"].sum(skipna=True))
    if not (len(kept) and kept["wall_time_s"].notna().any()):
        return f"| wall time | {duration(wall)} in all (sum of the runs' wall_time_s) |"
    run_time = float(runs["duration_s"].sum(skipna=True))
    return (f"| wall time | {duration(wall)} in all (sum of the runs' wall_time_s); {duration(run_time)} summed over "
            "the MLflow runs' start-to-end durations (data loading and tracking included); median "
            f"{duration(float(kept['wall_time_s'].median()))} per finished run |")


def _tables_section(tables: Tables) -> list[str]:
    """What runs.parquet and summary.parquet hold, their extremes, and the runs left out and why."""
    runs, summary, kept = tables.runs, tables.summary, tables.counted
    left_out = sum(tables.left_out.values())
    lines = ["", "## Tables", "", "### `runs.parquet`: one row per trial run", ""]
    if len(kept) and kept[OBJECTIVE].notna().any():
        top, bottom = kept.loc[kept[OBJECTIVE].idxmax()], kept.loc[kept[OBJECTIVE].idxmin()]
        lines += [f"{len(runs)} runs of {runs['cell'].nunique()} configurations; {len(kept)} finished. "
                  f"probe_h ranges from {pct(bottom[OBJECTIVE])} (`{bottom['run_name']}`) to "
                  f"{pct(top[OBJECTIVE])} (`{top['run_name']}`).  ",
                  _seed_line(kept, tables.config_keys)]
    else:
        lines += [f"{len(runs)} runs of {runs['cell'].nunique()} configurations; {len(kept)} finished with a probe "
                  "result.  ", "No finished run has probe_h, so no configuration can be compared."]
    lines += ["", "### `summary.parquet`: one row per configuration, mean, SD and n over seeds", ""]
    if summary[f"{OBJECTIVE}_mean"].notna().any():
        best = summary.loc[summary[f"{OBJECTIVE}_mean"].idxmax()]
        worst = summary.loc[summary[f"{OBJECTIVE}_mean"].idxmin()]
        lines += [f"{len(summary)} configurations, {_n_range(kept, tables.config_keys)}. Best probe_h_mean: "
                  f"{_config_name(best, tables)} {pct_spread(best[f'{OBJECTIVE}_mean'], best[f'{OBJECTIVE}_std'])} "
                  f"(n = {int(best['n'])}); worst: "
                  f"{_config_name(worst, tables)} {pct(worst[f'{OBJECTIVE}_mean'])}.  ",
                  f"{left_out} run(s) left out (status other than FINISHED, pruned, or a duplicate): "
                  + (", ".join(f"{count} {reason}" for reason, count in tables.left_out.items()) or "none")
                  + "; the count is in the file's metadata (`ablations.left_out`)."]
    else:
        lines += ["No configuration has a finished run.  ", f"{left_out} run(s) left out."]
    if left_out:
        lines += ["", "| run | trial | status | why |", "|---|---|---|---|"]
        finished = set(zip(kept["cell"], kept["seed"]))
        for _, row in runs[~runs.index.isin(kept.index)].head(20).iterrows():
            why = _why_left_out(row, finished)
            lines.append(f"| `{row['run_name']}` | {row['trial']} | {row['status']}"
                         f"{' (pruned)' if row['pruned'] else ''} | {why.replace('|', '/')[:200]} |")
    return lines


def _why_left_out(row: pd.Series, finished: set[tuple[str, int]]) -> str:
    """Why a run is not counted: its recorded error or reason, or what its status says."""
    if isinstance(row["error"], str):
        return row["error"]
    if row["status"] == "FINISHED" and not row["pruned"]:
        return "duplicate: its configuration and seed finished in an earlier run; not counted in n"
    if row["status"] == "KILLED":  # a pause by Ctrl-C, say, before interrupted runs recorded why
        return "interrupted (recorded before runs said why)" + (
            "; its configuration and seed finished in a later run" if (row["cell"], row["seed"]) in finished else "")
    return ""


def _verdict_section(verdict: Verdict, budget: str, floor: str, unfinished: str | None = None) -> list[str]:
    """The study's claim, its rule and parts, the verdict, the contrasts it rests on, the per-seed view,
    the model's checks and the floor; provisional while the study has not finished (`unfinished` says why):
    a rule judges the cells it is given, so a grid half run could hold on the half."""
    lines = ["", f"## Verdict: {verdict.claim}", ""]
    if unfinished:
        lines += [f"**Provisional**: {unfinished}. What follows is judged on the runs recorded so far, cells "
                  "not yet run left out, and may change when the study ends.", ""]
    lines += [f"**{verdict.status}** (rule `{verdict.rule}`, chosen in the "
              "study file before it ran). " + verdict.sentence, "", f"- {floor}"]
    if verdict.regime:
        lines.append(f"- Regime: {verdict.regime}.")
    if verdict.candidates:
        lines.append("- Cells that could still be the best (Hsu's multiple comparisons with the best, 95 %): "
                     + ", ".join(cell_name(c) for c in verdict.candidates) + ".")
    lines += [f"- {METHOD_TEXT}",
              "- Rule: " + RULES[verdict.rule].text + ".",
              "- Table: [`comparisons.parquet`](comparisons.parquet); figure: `paired_differences` below."]
    if verdict.status in ("does not hold", "holds in part"):
        lines += [f"- Reported as measured, not tuned away: the budget ({budget or 'see above'}) is far below "
                  f"the paper's (ImageNet, ResNet-50, batch {PAPER_BATCH_SIZE}, {PAPER_EPOCHS} epochs)."]
    if verdict.note:
        return lines
    lines += ["", "### Parts", "", *part_rows(verdict), "", "### Contrasts (percentage points)", "",
              *comparison_rows(verdict)]
    seeds = per_seed_rows(verdict)
    if seeds:
        heading = ("the contrasts that are not decided above 0"
                   if any(e.decision != "above" for e in verdict.estimates) else
                   "every contrast is decided above 0; the closest to 0")
        lines += ["", f"### Per seed (percentage points): {heading}", "", *seeds]
    lines += ["", "### Checks of the model", "", *checks_lines(verdict)]
    return lines


def _differences_section(differences: pd.DataFrame, floor: str, unfinished: str | None) -> list[str]:
    """A study without a rule: its configurations compared with intervals, said as estimates, not a verdict."""
    compared = differences_compared(differences)
    what = ("every pair of configurations, the higher mean first, judged together as one family by the "
            "study-wide inference (the method below, as for a verdict; max-t over the pairs)"
            if compared == "every pair" else
            f"each configuration with the best (more than {ALL_PAIRS_UP_TO} are too many to list in pairs), by the "
            "study-wide inference (the method below, as for a verdict); the best is the data's choice, so each "
            "interval takes Bonferroni's share of the family of every pair, which covers that choice")
    lines = ["", "## Differences between configurations (estimates: the study named no rule)", ""]
    if unfinished:
        lines += [f"**Provisional**: {unfinished}. These are of the runs recorded so far.", ""]
    lines += [f"The study file named no `verdict:`, so no claim was fixed before the run and nothing here is a "
              f"verdict. It compares {what}, in percentage points of probe_h: simultaneous 95 % intervals, so an "
              "interval that excludes 0 says the two differ at this budget whichever of the comparisons one reads. "
              "Beside each, "
              "the paper's difference of the same two cells where Figure 5 has both.", "", f"- {floor}",
              f"- {METHOD_TEXT}", "- Table: [`differences.parquet`](differences.parquet).", "",
              "| contrast | n | estimate | simultaneous 95 % interval | differs? | its own paired 95 % (uncorrected) | "
              "paper's value: in the interval? |",
              "|---|---|---|---|---|---|---|"]
    for row in differences.itertuples():
        differs = {"above": "yes", "below": "yes (reversed)"}.get(row.decision, row.decision)
        seeds = (f"[{row.paired_low * 100:+.2f}, {row.paired_high * 100:+.2f}]"
                 if not pd.isna(row.paired_low) else "")
        interval = "no interval" if pd.isna(row.ci_low) else f"[{row.ci_low * 100:+.2f}, {row.ci_high * 100:+.2f}]"
        paper = ("" if pd.isna(row.paper_margin) else
                 f"{row.paper_margin * 100:+.1f}: {MARGIN_WORDS.get(row.margin_relation, row.margin_relation)}")
        lines.append(f"| {row.contrast} | {row.n} | {row.estimate * 100:+.2f} | {interval} | {differs} | {seeds} | "
                     f"{paper} |")
    return lines


def _figures_section(readings: dict[str, list[str]]) -> list[str]:
    """A heading, the image, its CSV and two lines of reading per figure drawn, in the registry's order."""
    lines = ["", "## Figures", "", "Each PNG has its plotted data as CSV beside it (accuracies in percent there, "
             "as in the paper). They are logged to the parent run under `report/figures`.", ""]
    for spec in FIGURES:
        if spec.stem not in readings:
            continue
        reading = readings[spec.stem]
        lines += [f"### {spec.title}", "", f"![{spec.stem}](figures/{spec.stem}.png)", "",
                  f"Data: [`figures/{spec.stem}.csv`](figures/{spec.stem}.csv).", "",
                  reading[0] + "  ", reading[1], ""]
    return lines


def _varied_text(tables: Tables) -> str:
    keys = [k for k in tables.config_keys if k not in PAIR_KEYS]
    parts = ([f"{PIPELINE_KEY} as ordered pairs (columns first, second)"] if tables.pair else []) + keys
    return ", ".join(parts) or "nothing but the seed"


def _seed_line(kept: pd.DataFrame, config_keys: list[str]) -> str:
    """How much the seed moves a configuration's probe accuracy."""
    keys = config_keys or ["cell"]
    spread = kept.groupby(keys, dropna=False)[OBJECTIVE].agg(["std", "count"])
    spread = spread[spread["count"] >= 2]["std"].dropna()
    if spread.empty:
        return "One seed per configuration: the seed-to-seed spread is unknown."
    return (f"Across seeds, a configuration's probe_h varies by a median SD of {spread.median() * 100:.2f} points "
            f"(largest {spread.max() * 100:.2f}).")


def _budget(records: StudyRecords, tables: Tables) -> str:
    """The training budget: the BUDGET_KEYS params the runs share."""
    parts = []
    for key in BUDGET_KEYS:
        if key in tables.config_keys:
            continue
        value = shared_param(records, key)
        if value is not None:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def _config_name(row: pd.Series, tables: Tables) -> str:
    """A summary row's configuration as MLflow and the terminal name it (plan.cell_name)."""
    return cell_name(row["cell"])


def _n_range(kept: pd.DataFrame, config_keys: list[str]) -> str:
    """n per configuration over the included runs: `n = 2`, `n = 1 to 2`."""
    return n_text(kept.groupby(config_keys or ["cell"], dropna=False).size()) if len(kept) else "n = 0"
