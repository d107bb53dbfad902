"""The report a finished study ends with: `python -m ablations.report` for its parent run, from MLflow
alone, called in-process; the terminal is told the command that rebuilds it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ablations.messages import describe_os_error, one_line, redact
from ablations.stores.ui_view import command_path

if TYPE_CHECKING:
    from ablations.run.session import Session


def write_report(session: Session) -> Path | None:
    """The study's report (tables, figures, README under reports/<study>/), built from MLflow alone
    by ablations.report; its failure is reported, not raised: the study itself is done."""
    try:
        # Here, not at the top: a checkout without the report module still runs studies.
        from ablations import report
    except ImportError:
        return None
    command = ["--study", session.spec.name, "--parent", session.parent_run_id, "--tracking-uri", session.tracker.uri]
    python = command_path(Path(sys.executable).name)
    print(f"\nReport ({python} -m ablations.report {redact(' '.join(command))}):")
    try:
        uri = session.tracker.uri
        written = report.report_study(report.open_client(uri), uri, session.spec.name, Path("reports"),
                                      parent_id=session.parent_run_id)
    except Exception as error:  # ReportError, or a store failing: the study's records are complete anyway
        why = (describe_os_error(error) if isinstance(error, OSError) and error.filename
               else one_line(error, limit=500, with_type=True))
        print(f"warning: the report failed ({why}); the study's records "
              "are complete: rerun the report with the command above", file=sys.stderr)
        return None
    return next((path for path in written.paths if path.name == "README.md"), None)
