"""Tables and figures from what a study recorded in MLflow: `python -m ablations.report [--study NAME]`.

Reads the records `ablations.run` leaves (see `ablations.stores.tracking`) and writes, per study, into
`reports/<study>/`: `runs.parquet` (one row per trial run), `summary.parquet` (one row per configuration,
mean, SD and n over seeds), `figures/*.png` with their data as `*.csv`, and `README.md`; all of it is
also logged to the study's parent run under `report/`. It never trains and never changes a run. The
schema users script against is in reports/README.md.

Computed once, then written. `records` reads MLflow, `saved` reads a report back from its Parquet (both
into one `StudyRecords`); `tables` builds the tables, `stats` computes descriptive statistics of them,
`analysis` computes everything else the report says (the verdict of the study's rule and its contrasts,
the floor, crop+color's lead against training length, the per-epoch history). The writers only read that
`Analysis`: `parquet` writes every Parquet file, `specs` is the figure registry over the drawing functions
in `figures` (`contrast_figures` draws a verdict's contrasts), `verdict` and `readme` write the README,
`race` the section of a race (every rung's grid, the audit, the cost); `build` runs them for one study,
`cli` is the command.
"""

from ablations.report.build import build_report
from ablations.report.cli import main, report_study
from ablations.report.records import ReportError, open_client

__all__ = ["ReportError", "build_report", "main", "open_client", "report_study"]
