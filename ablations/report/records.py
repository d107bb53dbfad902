"""Reading what a study left: from MLflow (its experiment, its latest parent run, its trial runs and
their per-epoch histories, as `ablations.stores.tracking` and `ablations.run` write them; see tracking's
docstring), or from a report's own `runs.parquet` and `history.parquet` (`ablations.report.saved`), into
one `StudyRecords` that the rest of the report reads, whatever the source.

Nothing here writes a file; every MLflow call of the report goes through `call_store`.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ablations.messages import one_line
from ablations.design.plan import SEED_KEY, cell_name, configuration_keys, table_value
from ablations.stores.errors import retry, sqlite_path
from ablations.stores.tracking import (
    EPOCH_METRICS, FLOOR_ROLE, FLOOR_TAG, GIT_COMMIT_TAG, GIT_DIRTY_TAG, NOTE_TAG, PARENT_ROLE, ROLE_TAG,
    SPREAD_METRICS, TRIAL_ROLE, VERDICT_TAG, phase_column,
)

# Final metrics every runs.parquet has (NaN where a run did not log them); others the runs logged follow.
FINAL_METRICS = ("probe_h", "probe_z", "knn_acc", "loss", "wall_time_s")
# The columns of a pair study's configuration: SimCLR Figure 5's first and second transformation.
PAIR_KEYS = ["first", "second"]
# The parent run's tags a report reads (kept in runs.parquet's metadata, so a rebuild has them).
if TYPE_CHECKING:  # MLflow loads only where a store is read: --from-parquet builds without it
    from mlflow import MlflowClient

PARENT_TAGS = (VERDICT_TAG, NOTE_TAG, GIT_DIRTY_TAG, GIT_COMMIT_TAG)


class ReportError(RuntimeError):
    """Input this report cannot use; the message says which and what to do."""


@dataclass
class StudyRecords:
    """What one study left, from either source: everything its report is built from."""

    name: str
    source: str  # where it was read: the tracking URI or the runs.parquet path, as the user gave it
    parent_run_id: str
    parent_status: str
    parent_tags: dict[str, str]  # PARENT_TAGS the parent run has
    params: dict[str, str]  # params every trial run has with one value (as MLflow holds them: strings)
    runs: pd.DataFrame  # one row per trial run, the floor's included (column `role`); see runs_table
    config_keys: list[str]  # the columns that name a configuration
    pair: bool  # a Figure 5 pair study (first/second columns)
    histories: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)  # run_id -> metric -> epoch -> value
    earlier_parents: int = 0  # parent runs of earlier starts of this study name (not reported)
    trials: list[Any] = field(default_factory=list)  # the MLflow runs, by trial number (MLflow source only)
    from_mlflow: bool = True
    notes: list[str] = field(default_factory=list)  # what the source says of itself (a saved report's notes)

    @property
    def unfinished(self) -> str | None:
        """Why the study is not finished, from its parent run's status (None once it is FINISHED): a report
        of an interrupted or running study is of the runs recorded so far, and its verdict may change."""
        if self.parent_status == "FINISHED":
            return None
        why = {"KILLED": "it was interrupted; rerunning its command resumes it",
               "RUNNING": "it is running, or stopped without ending its records",
               "FAILED": "its workers stopped with work left; rerunning its command resumes it"}
        return (f"the study has not finished (parent run {self.parent_status}: "
                f"{why.get(self.parent_status, 'not ended')})")


def open_client(uri: str) -> MlflowClient:
    """An MlflowClient on an existing store; a missing SQLite file is an error, not a new empty store."""
    database = sqlite_path(uri)
    if database is not None:
        path = Path(database).expanduser()
        if not path.is_file():
            raise ReportError(f"no MLflow store at {path} (tracking URI {uri}); run a study first "
                              "(python -m ablations.run studies/<file>.yaml) or pass --tracking-uri")
    for name in ("mlflow", "alembic"):  # table checks and migrations log at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    from mlflow import MlflowClient

    try:
        return MlflowClient(uri)
    except Exception as error:
        raise ReportError(f"tracking store {uri!r}: {one_line(error)}") from None


def call_store(call, *args, **kwargs):
    """tracking.retry on SQLite stores, where a study's workers may hold the write lock; other stores are
    called once (MLflow's HTTP client retries by itself, and retries on retries would make an unreachable
    server take many minutes to report)."""
    uri = str(getattr(getattr(call, "__self__", None), "tracking_uri", ""))
    return retry(call, *args, attempts=6 if uri.startswith("sqlite") else 1, **kwargs)


def _all_pages(call, *args, **kwargs) -> list:
    """Every item a paged MLflow search returns, page by page."""
    items, token = [], None
    while True:
        page = call_store(call, *args, max_results=1000, page_token=token, **kwargs)
        items.extend(page)
        token = page.token
        if not token:
            return items


def _search_runs(client, experiment_ids: list[str], filter_string: str, order_by: list[str] | None = None) -> list:
    return _all_pages(client.search_runs, experiment_ids, filter_string=filter_string, order_by=order_by)


def list_studies(client, uri: str) -> list[str]:
    """Names of the experiments that hold a study's parent run."""
    try:
        experiments = _all_pages(client.search_experiments)
        if not experiments:
            return []
        parents = _search_runs(client, [e.experiment_id for e in experiments],
                               f"tags.`{ROLE_TAG}` = '{PARENT_ROLE}'")
    except ReportError:
        raise
    except Exception as error:
        raise ReportError(f"tracking store {uri!r}: {one_line(error)}") from None
    names = {e.experiment_id: e.name for e in experiments}
    return sorted({names[run.info.experiment_id] for run in parents if run.info.experiment_id in names})


def read_study(client, uri: str, name: str, parent_id: str | None = None) -> StudyRecords:
    """The study's parent run (`parent_id`, or its only one) and its trial runs; ReportError if there are
    none, or if the study has several parent runs and `parent_id` does not say which."""
    try:
        experiment = call_store(client.get_experiment_by_name, name)
        if experiment is None or experiment.lifecycle_stage == "deleted":
            available = list_studies(client, uri)
            there = f"studies there: {', '.join(available)}" if available else \
                "no studies there yet (python -m ablations.run studies/<file>.yaml)"
            state = "is deleted" if experiment is not None else "not found"
            raise ReportError(f"study {name!r} {state} in {uri}; {there}")
        parents = _search_runs(client, [experiment.experiment_id], f"tags.`{ROLE_TAG}` = '{PARENT_ROLE}'",
                               order_by=["attributes.start_time DESC"])
        if not parents:
            raise ReportError(f"experiment {name!r} in {uri} has no parent run tagged ablations.role=parent; "
                              "was it made by python -m ablations.run?")
        parent = _chosen_parent(parents, name, uri, parent_id)
        trials = _search_runs(client, [experiment.experiment_id],
                              f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' "
                              f"and tags.`{ROLE_TAG}` = '{TRIAL_ROLE}'")
    except ReportError:
        raise
    except Exception as error:
        raise ReportError(f"tracking store {uri!r}: {one_line(error)}") from None
    if not trials:
        raise ReportError(f"study {name!r} in {uri} has no trial runs yet; run it first "
                          f"(python -m ablations.run studies/{name}.yaml)")
    trials.sort(key=lambda run: (as_int(run.data.tags.get("optuna.trial")) or 0, run.info.start_time or 0))
    runs, config_keys, pair = runs_table(trials)
    finished = [run for run in trials if run.info.status == "FINISHED"]
    try:
        histories = read_histories(client, finished)
    except Exception as error:
        raise ReportError(f"tracking store {uri!r}: {one_line(error)}") from None
    return StudyRecords(
        name=name, source=uri, parent_run_id=parent.info.run_id, parent_status=parent.info.status,
        parent_tags={key: parent.data.tags[key] for key in PARENT_TAGS if key in parent.data.tags},
        params=_shared_params(trials), runs=runs, config_keys=config_keys, pair=pair, histories=histories,
        earlier_parents=len(parents) - 1, trials=trials)


def _chosen_parent(parents: list[Any], name: str, uri: str, parent_id: str | None) -> Any:
    """The parent run asked for, or the only one. Two parents are two starts of one name (another
    --storage, a study started over): which one is meant is the user's to say, not the newest's."""
    if parent_id is not None:
        chosen = [run for run in parents if run.info.run_id == parent_id]
        if not chosen:
            raise ReportError(f"study {name!r} in {uri} has no parent run {parent_id}; its parent runs: "
                              f"{_parents_text(parents)}")
        return chosen[0]
    if len(parents) > 1:
        raise ReportError(f"study {name!r} in {uri} has {len(parents)} parent runs, one per start of a study with "
                          f"this name: {_parents_text(parents)}; pass --parent RUN_ID to say which to report")
    return parents[0]


def _parents_text(parents: list[Any]) -> str:
    from datetime import datetime, timezone

    return ", ".join(
        f"{run.info.run_id} (started {datetime.fromtimestamp((run.info.start_time or 0) / 1000, timezone.utc):%Y-%m-%d %H:%M} "
        f"UTC, Optuna storage {run.data.tags.get('optuna.storage', 'not recorded')})" for run in parents)


def _shared_params(trials: list[Any]) -> dict[str, str]:
    """The params every trial run (the floor's aside, which differ in train.epochs) has with one value."""
    configs = [run for run in trials if run.data.tags.get(FLOOR_TAG) != "true"] or trials
    if not configs:
        return {}
    shared = dict(configs[0].data.params)
    for run in configs[1:]:
        shared = {key: value for key, value in shared.items() if run.data.params.get(key) == value}
    return dict(sorted(shared.items()))


def read_histories(client, runs: list[Any],
                   keys: tuple[str, ...] = EPOCH_METRICS) -> dict[str, dict[str, dict[int, float]]]:
    """run_id -> metric -> {epoch: value} (the last value logged at each step)."""
    histories: dict[str, dict[str, dict[int, float]]] = {}
    for run in runs:
        per_metric = {}
        for key in keys:
            if key in run.data.metrics:
                points = sorted(call_store(client.get_metric_history, run.info.run_id, key),
                                key=lambda m: (m.step, m.timestamp))
                per_metric[key] = {m.step: m.value for m in points}
        histories[run.info.run_id] = per_metric
    return histories


def shared_param(records: StudyRecords, key: str) -> str | None:
    """A param's value when every trial run has the same one (as MLflow holds it: a string)."""
    return records.params.get(key)


def as_int(value: Any) -> int | None:
    """A tag or param as an int (MLflow holds them as strings); None when it is not one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def runs_table(trials: list[Any]) -> tuple[pd.DataFrame, list[str], bool]:
    """One row per trial run: identity, role (trial or floor), configuration, outcome, final metrics,
    provenance. Returns (table, configuration keys, whether it is a pair study)."""
    varied_keys: list[str] = []
    metric_keys: list[str] = list(FINAL_METRICS)
    pair = any("ablations.first" in run.data.tags for run in trials)
    rows = []
    for run in trials:
        row, varied = _run_row(run)
        if row["role"] != FLOOR_ROLE:  # the floor varies train.epochs, which is no configuration key
            varied_keys += [key for key in configuration_keys(varied, pair) if key not in varied_keys]
        metric_keys += [key for key in sorted(_metrics(run)) if key not in metric_keys]
        rows.append(row)
    table = _typed_columns(rows, pair, varied_keys, metric_keys)
    return table, (PAIR_KEYS if pair else []) + varied_keys, pair


def _run_row(run) -> tuple[dict[str, Any], dict[str, Any]]:
    """One run as a flat row (varied values under `varied:`, metrics under `metric:`), and its varied dict."""
    tags, info = run.data.tags, run.info
    varied = _json(tags.get("ablations.varied")) or {}
    seed = as_int(tags.get("ablations.seed"))
    if seed is None:
        seed = as_int(varied.get(SEED_KEY, run.data.params.get(SEED_KEY)))
    end = info.end_time if info.status != "RUNNING" else None
    row = {
        "run_id": info.run_id,
        "run_name": info.run_name,
        "role": FLOOR_ROLE if tags.get(FLOOR_TAG) == "true" else TRIAL_ROLE,
        "trial": as_int(tags.get("optuna.trial")),
        "status": info.status,
        "pruned": "ablations.pruned" in tags,
        "seed": seed,
        "cell": tags.get("ablations.cell"),
        "config": cell_name(tags["ablations.cell"]) if "ablations.cell" in tags else None,
        "first": tags.get("ablations.first"),
        "second": tags.get("ablations.second"),
        "rung": as_int(tags.get("ablations.rung")),  # a race's training length (stores.tracking.RUNG_TAG)
        "race": tags.get("ablations.race"),
        **{f"varied:{key}": table_value(value) for key, value in varied.items()},
        **{f"metric:{key}": value for key, value in _metrics(run).items()},
        "duration_s": (end - info.start_time) / 1000.0 if end and info.start_time else math.nan,
        "start_time": info.start_time,
        "device": tags.get("device"),
        "git_commit": tags.get("git_commit"),
        "torch_version": tags.get("torch_version"),
        "error": tags.get("ablations.error") or tags.get("ablations.killed") or tags.get("ablations.pruned"),
    }
    return row, varied


def _metrics(run) -> dict[str, float]:
    """A run's final metrics under the tables' names: phases as `probe_s` whether logged so (before the
    rename) or as `seconds/probe`; the per-configuration spread, which the summary computes itself, left
    out."""
    return {phase_column(key): value for key, value in run.data.metrics.items() if key not in SPREAD_METRICS}


def _typed_columns(rows: list[dict[str, Any]], pair: bool, varied_keys: list[str],
                   metric_keys: list[str]) -> pd.DataFrame:
    """The runs table in its documented column order, each column with its documented dtype."""
    def column(name: str, dtype: str | None = None, default: Any = None):
        values = [r.get(name, default) for r in rows]
        return _typed(values) if dtype is None else pd.Series(values, dtype=dtype)

    columns: dict[str, Any] = {"run_id": column("run_id", "str"), "run_name": column("run_name", "str"),
                               "role": column("role", "str"), "trial": column("trial"),
                               "status": column("status", "str"), "seed": column("seed")}
    if pair:
        columns["first"], columns["second"] = column("first", "str"), column("second", "str")
    for key in varied_keys:  # the floor's rows leave them empty: it is no configuration
        columns[key] = _typed([None if r["role"] == FLOOR_ROLE else r.get(f"varied:{key}") for r in rows])
    columns["cell"] = column("cell", "str")
    columns["config"] = column("config", "str")
    if any(r.get("rung") is not None for r in rows):  # a race: each run's rung and role (survivor, audit)
        columns["rung"], columns["race"] = column("rung", "Int64"), column("race", "str")
    for key in metric_keys:
        columns[key] = column(f"metric:{key}", "float64", default=math.nan)
    columns["duration_s"] = column("duration_s", "float64")
    columns["start_time"] = pd.to_datetime(column("start_time", "float64"), unit="ms", utc=True)
    for key in ("device", "git_commit", "torch_version", "error"):
        columns[key] = column(key, "str")
    columns["pruned"] = column("pruned", "bool")
    return pd.DataFrame(columns)


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _typed(values: list[Any]) -> pd.Series:
    """A column typed by its values: bool, int64 (Int64 with gaps), float64, else str."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="boolean" if len(present) < len(values) else "bool")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="Int64" if len(present) < len(values) else "int64")
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.Series([math.nan if v is None else float(v) for v in values], dtype="float64")
    return pd.Series([None if v is None else str(v) for v in values], dtype="str")
