"""One study's report, written to `<out>/<study>/` and, when read from MLflow, logged under `report/` of
its parent run: runs.parquet (every run, the floor's included) and history.parquet (what a rebuild from
Parquet reads), summary.parquet, comparisons.parquet (the verdict's contrasts), each figure of the
registry that applies (PNG + CSV), README.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ablations.messages import one_line, writing_to
from ablations.report import figures, race, saved
from ablations.report.readme import render_readme, with_analysis
from ablations.report.records import ReportError, StudyRecords, call_store
from ablations.report.specs import FIGURES, FigureInput
from ablations.report.tables import Tables, build_tables, write_parquet
from ablations.report.verdict import floor_of, judge, rule_for, write_comparisons
from ablations.stats.verdicts import Verdict


@dataclass
class Written:
    """What a study's report wrote, for the command to print."""

    paths: list[Path] = field(default_factory=list)
    readings: dict[str, list[str]] = field(default_factory=dict)  # figure name -> two lines
    verdict: Verdict | None = None


def write_figures(study: FigureInput, figures_dir: Path) -> Written:
    """Every figure of the registry that applies to the study, PNG and CSV, with the README's readings."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    for spec in FIGURES:  # figures of an earlier report that no longer apply must not linger
        for suffix in (".png", ".csv"):
            (figures_dir / f"{spec.stem}{suffix}").unlink(missing_ok=True)
    out = Written(verdict=study.verdict)
    for spec in FIGURES:
        if spec.applies(study):
            drawn = spec.draw(study)
            out.paths += figures.save(drawn.figure, drawn.data, figures_dir / spec.stem, index=spec.index)
            out.readings[spec.stem] = drawn.reading
    return out


def study_dir_for(out_dir: Path, records: StudyRecords, replace: bool = False) -> Path:
    """`<out>/<study>/`, unless it holds the report of another study run of the same name (another parent
    run: another --tracking-uri or --storage, a committed result of a real run): that one is kept and this
    report goes to `<out>/<study>-<first 8 of its parent run id>/`. `replace` writes over it instead."""
    study_dir = out_dir / records.name
    parent_id = records.parent_run_id
    existing = study_dir / "runs.parquet"
    if replace or not existing.exists():
        return study_dir
    try:
        metadata = pq.read_schema(existing).metadata or {}
        previous = metadata.get(b"ablations.parent_run_id", b"").decode().strip('"') or None
    except (OSError, ValueError, pa.ArrowException):  # unreadable: not a report this one can claim
        previous = "unknown"
    if previous in (None, parent_id):
        return study_dir
    return out_dir / f"{records.name}-{parent_id[:8]}"


def build_report(records: StudyRecords, out_dir: Path, *, client=None, replace: bool = False,
                 study_dir: Path | None = None) -> Written:
    """runs.parquet, history.parquet, summary.parquet, figures and README.md for one study, in
    `study_dir` or `<out_dir>/<study>/` (see study_dir_for); logged to its parent run where `client` (an
    MlflowClient on its store) is given."""
    tables = build_tables(race.last_rung(records) if race.is_race(records) else records)
    study_dir = study_dir or study_dir_for(out_dir, records, replace)
    study_dir.mkdir(parents=True, exist_ok=True)
    with writing_to(study_dir):  # a full disk names the report's folder
        written = _write(records, tables, study_dir)
    if client is not None:
        _log_to_parent(client, records, written.paths, study_dir)
    return written


def _write(records: StudyRecords, tables: Tables, study_dir: Path) -> Written:
    # A race is reported at its last rung (`race.last_rung`), its every run kept in runs.parquet, and the
    # race itself in a section of the README.
    full, records = records, race.last_rung(records) if race.is_race(records) else records
    table_paths = saved.save(full, study_dir) + [_write_summary(records, tables, study_dir)]
    verdict = judge(records, tables)
    if verdict is not None:
        table_paths.append(write_comparisons(verdict, study_dir / "comparisons.parquet", {
            "study": records.name, "parent_run_id": records.parent_run_id}))
    else:  # a comparisons table of an earlier report must not outlive its verdict
        (study_dir / "comparisons.parquet").unlink(missing_ok=True)
    floor = floor_of(tables)
    study = FigureInput(records, tables, records.histories, verdict, floor.mean * 100 if floor else None)
    written = write_figures(study, study_dir / "figures")
    readme = study_dir / "README.md"
    text = render_readme(records, tables, written.verdict, written.readings, floor)
    if full is not records and rule_for(full):
        text += "\n" + "\n".join(race.section(race.analyse(full, rule_for(full)), full.pair))
    readme.write_text(with_analysis(text, study_dir))
    written.paths = table_paths + [readme] + written.paths
    return written


def _write_summary(records: StudyRecords, tables: Tables, study_dir: Path) -> Path:
    meta = {"study": records.name, "parent_run_id": records.parent_run_id, "config_keys": tables.config_keys}
    return write_parquet(tables.summary, study_dir / "summary.parquet", {
        **meta, "left_out": sum(tables.left_out.values()), "left_out_by_reason": tables.left_out,
        "included": int(tables.summary["n"].sum())})


def _log_to_parent(client, records: StudyRecords, paths: list[Path], study_dir: Path) -> None:
    """Each file under report/ (figures under report/figures), so the MLflow UI shows the report."""
    parent_id = records.parent_run_id
    try:
        for path in paths:
            artifact_dir = "report/figures" if path.parent.name == "figures" else "report"
            call_store(client.log_artifact, parent_id, str(path), artifact_dir)
    except Exception as error:
        raise ReportError(f"wrote {study_dir}, but could not log it to parent run {parent_id}: "
                          f"{one_line(error)} (--no-log to skip)") from None
