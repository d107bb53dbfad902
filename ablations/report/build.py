"""One study's report, written to `<out>/<study>/` and, when read from MLflow, logged under `report/` of
its parent run: computed once (`analysis.analyse`), then written by writers that only read it: the Parquet
files (`parquet`: runs, history, summary, comparisons), each figure of the registry that applies (PNG +
CSV), README.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ablations.messages import one_line, writing_to
from ablations.report import figures, race
from ablations.report.analysis import Analysis, analyse
from ablations.report.parquet import write_tables
from ablations.report.readme import render_readme, with_analysis
from ablations.report.records import ReportError, StudyRecords, call_store
from ablations.report.specs import FIGURES
from ablations.stats.verdicts import Verdict


@dataclass
class Written:
    """What a study's report wrote, for the command to print."""

    paths: list[Path] = field(default_factory=list)
    readings: dict[str, list[str]] = field(default_factory=dict)  # figure name -> two lines
    verdict: Verdict | None = None


def write_figures(study: Analysis, figures_dir: Path) -> Written:
    """Every figure of the registry that applies to the study, PNG and CSV, with the README's readings."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    for spec in FIGURES:  # figures of an earlier report that no longer apply must not linger
        for suffix in (".png", ".csv"):
            (figures_dir / f"{spec.stem}{suffix}").unlink(missing_ok=True)
    out = Written(verdict=study.verdict)
    for spec in FIGURES:
        if spec.applies(study):  # the analysis holds its statistics
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
    analysis = analyse(records, FIGURES)  # everything computed before anything is written
    study_dir = study_dir or study_dir_for(out_dir, records, replace)
    study_dir.mkdir(parents=True, exist_ok=True)
    with writing_to(study_dir):  # a full disk names the report's folder
        written = _write(analysis, study_dir)
    if client is not None:
        _log_to_parent(client, records, written.paths, study_dir)
    return written


def _write(analysis: Analysis, study_dir: Path) -> Written:
    """The writers, each reading the analysis: Parquet, figures (with their README readings), README."""
    table_paths = write_tables(analysis, study_dir)
    written = write_figures(analysis, study_dir / "figures")
    readme = study_dir / "README.md"
    text = render_readme(analysis, written.readings)
    if analysis.race is not None:
        text += "\n" + "\n".join(race.section(analysis.race, analysis.records.pair, analysis.records.unfinished))
    readme.write_text(with_analysis(text, study_dir))
    written.paths = table_paths + [readme] + written.paths
    return written


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
