"""`python -m ablations.report`: parse the command line, report every study asked for, print what was
written. The work is in `records` (reading MLflow), `saved` (reading a report's own runs.parquet) and
`build` (writing one study's report); errors of input (an unknown study, a study without trial runs, a
store or file that cannot be read) end as one line `error: ...` and exit status 2, through
`ablations.messages.run_command`.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from ablations.messages import EXIT_BAD_INPUT, run_command
from ablations.report import saved
from ablations.report.build import Written, build_report
from ablations.report.records import ReportError, StudyRecords, list_studies, open_client, read_study
from ablations.report.tables import duplicates
from ablations.stores.tracking_store import TrackingError, resolve_tracking_uri


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ablations.report",
        description="Tables (Parquet), figures (PNG + CSV) and a README from what a study recorded in MLflow, "
                    "or from a report's own runs.parquet (--from-parquet). Trains nothing.",
        epilog="Rebuild a committed report without its MLflow store: python -m ablations.report --from-parquet "
               "reports/aug_pairs (its runs.parquet and history.parquet; the report is written back to "
               "reports/aug_pairs unless --out says otherwise). The columns of runs.parquet, summary.parquet "
               "and comparisons.parquet are documented in reports/README.md.",
    )
    parser.add_argument("--from-parquet", metavar="PATH", default=None,
                        help="build from a report folder (or its runs.parquet) instead of MLflow: every run, the "
                             "floor's included, and the study's identity are in that file, the per-epoch curves in "
                             "history.parquet beside it")
    parser.add_argument("--study", default=None,
                        help="the study (MLflow experiment) to report; default: every experiment with a study's "
                             "parent run")
    parser.add_argument("--out", default=None,
                        help="output folder; each study gets <out>/<study>/ (default reports; with --from-parquet, "
                             "the folder it reads)")
    parser.add_argument("--parent", default=None, metavar="RUN_ID",
                        help="the parent run to report, where a study name has several (one per start under "
                             "another --storage, or started over); with --study")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    parser.add_argument("--replace", action="store_true",
                        help="write over <out>/<study>/ even when it holds the report of another run of a study "
                             "with this name (by default that one is kept and this report goes to "
                             "<out>/<study>-<parent run id>/)")
    parser.add_argument("--no-log", action="store_true",
                        help="do not log the report to the study's parent run (a read-only store, say)")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, report_studies, {ReportError: EXIT_BAD_INPUT, TrackingError: EXIT_BAD_INPUT,
                                                              OSError: EXIT_BAD_INPUT})


def report_studies(args: argparse.Namespace) -> int:
    """The report of --study, or of every study in the store (skipping, with a line, those it cannot read);
    with --from-parquet, of the study saved there."""
    if args.from_parquet:
        if args.study or args.tracking_uri or args.parent:
            raise ReportError("--from-parquet reads one saved study; leave out --study, --parent and --tracking-uri")
        records = saved.read(args.from_parquet)
        source = Path(args.from_parquet)
        folder = source if source.is_dir() else source.parent
        target = Path(args.out) / records.name if args.out else folder
        _print_written(records, build_report(records, target.parent, study_dir=target, replace=True), log=False)
        return 0
    if args.parent and not args.study:
        raise ReportError("--parent names a parent run of one study; pass --study NAME with it")
    uri = resolve_tracking_uri(args.tracking_uri)
    client = open_client(uri)
    names = [args.study] if args.study else list_studies(client, uri)
    if not names:
        raise ReportError(f"no studies in {uri} (no run tagged ablations.role=parent); run one first "
                          "(python -m ablations.run studies/<file>.yaml) or pass --tracking-uri")
    for name in names:
        try:
            report_study(client, uri, name, Path(args.out or "reports"), log=not args.no_log, replace=args.replace,
                         parent_id=args.parent)
        except ReportError as error:
            if args.study:
                raise
            print(f"skipped {name}: {error}", file=sys.stderr)
    return 0


def report_study(client, uri: str, name: str, out: Path, *, log: bool = True, replace: bool = False,
                 parent_id: str | None = None) -> Written:
    """One study's report (of its parent run `parent_id`, where it has several), with a line per file
    written and the verdict; ReportError where the study cannot be read."""
    records = read_study(client, uri, name, parent_id)
    written = build_report(records, out, client=client if log else None, replace=replace)
    _print_written(records, written, log)
    return written


def _print_written(records: StudyRecords, written: Written, log: bool) -> None:
    statuses = Counter(records.runs["status"])
    print(f"{records.name}: {len(records.runs)} runs ("
          + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())) + ")")
    repeated = duplicates(records.runs[(records.runs["status"] == "FINISHED") & ~records.runs["pruned"]])
    if len(repeated):
        print(f"  {len(repeated)} duplicate run(s) left out of n (their configuration and seed finished in an "
              "earlier run): " + ", ".join(f"{name} ({run_id[:8]})" for name, run_id in
                                           zip(repeated["run_name"], repeated["run_id"])))
    for path in written.paths:
        print(f"  wrote {path}")
    if written.verdict is not None:
        print(f"  {written.verdict.sentence}")
        if records.unfinished:
            print(f"  provisional: {records.unfinished}")
    if log:
        print(f"  logged to MLflow parent run {records.parent_run_id} under report/")
