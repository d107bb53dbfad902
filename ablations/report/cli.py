"""`python -m ablations.report`: parse the command line, report every study asked for, print what was
written. The work is in `records` (reading MLflow) and `build` (writing one study's report); errors of
input (an unknown study, a study without trial runs, a store that cannot be read) end as one line
`error: ...` and exit status 2, through `ablations.messages.run_command`.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from ablations.messages import EXIT_BAD_INPUT, run_command
from ablations.report.build import Written, build_report
from ablations.report.records import ReportError, list_studies, open_client, read_study
from ablations.tracking import TrackingError, resolve_tracking_uri


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ablations.report",
        description="Tables (Parquet), figures (PNG + CSV) and a README from what a study recorded in MLflow. "
                    "Trains nothing.",
        epilog="The columns of runs.parquet and summary.parquet are documented in reports/README.md.",
    )
    parser.add_argument("--study", default=None,
                        help="the study (MLflow experiment) to report; default: every experiment with a study's "
                             "parent run")
    parser.add_argument("--out", default="reports",
                        help="output folder; each study gets <out>/<study>/ (default reports)")
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
    """The report of --study, or of every study in the store (skipping, with a line, those it cannot read)."""
    uri = resolve_tracking_uri(args.tracking_uri)
    client = open_client(uri)
    names = [args.study] if args.study else list_studies(client, uri)
    if not names:
        raise ReportError(f"no studies in {uri} (no run tagged ablations.role=parent); run one first "
                          "(python -m ablations.run studies/<file>.yaml) or pass --tracking-uri")
    for name in names:
        try:
            report_study(client, uri, name, Path(args.out), log=not args.no_log, replace=args.replace)
        except ReportError as error:
            if args.study:
                raise
            print(f"skipped {name}: {error}", file=sys.stderr)
    return 0


def report_study(client, uri: str, name: str, out: Path, *, log: bool = True, replace: bool = False) -> Written:
    """One study's report, with a line per file written and the verdict; ReportError where the study
    cannot be read."""
    records = read_study(client, uri, name)
    written = build_report(client, records, out, log_artifacts=log, replace=replace)
    statuses = Counter(run.info.status for run in records.trials)
    print(f"{name}: {len(records.trials)} runs ("
          + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())) + ")")
    for path in written.paths:
        print(f"  wrote {path}")
    if written.verdict is not None:
        print(f"  {written.verdict.sentence}")
    if log:
        print(f"  logged to MLflow parent run {records.parent.info.run_id} under report/")
    return written
