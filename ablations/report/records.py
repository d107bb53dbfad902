"""Reading what a study left in MLflow: its experiment, its latest parent run, its trial runs and their
per-epoch histories, as `ablations.tracking` and `ablations.run` write them (see tracking's docstring).

Nothing here builds a table or writes a file; every MLflow call of the report goes through `call_store`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from ablations.messages import one_line
from ablations.tracking import EPOCH_METRICS, retry

PARENT_ROLE, TRIAL_ROLE = "parent", "trial"


class ReportError(RuntimeError):
    """Input this report cannot use; the message says which and what to do."""


@dataclass
class StudyRecords:
    """What one study left in MLflow."""

    name: str
    uri: str
    experiment_id: str
    parent: Any  # mlflow.entities.Run
    trials: list[Any]  # child runs, by trial number
    earlier_parents: int = 0  # parent runs of earlier starts of this study name (not reported)


def open_client(uri: str) -> MlflowClient:
    """An MlflowClient on an existing store; a missing SQLite file is an error, not a new empty store."""
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        path = Path(uri[len(prefix):]).expanduser()
        if not path.is_file():
            raise ReportError(f"no MLflow store at {path} (tracking URI {uri}); run a study first "
                              "(python -m ablations.run studies/<file>.yaml) or pass --tracking-uri")
    for name in ("mlflow", "alembic"):  # table checks and migrations log at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
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
                               f"tags.`ablations.role` = '{PARENT_ROLE}'")
    except ReportError:
        raise
    except Exception as error:
        raise ReportError(f"tracking store {uri!r}: {one_line(error)}") from None
    names = {e.experiment_id: e.name for e in experiments}
    return sorted({names[run.info.experiment_id] for run in parents if run.info.experiment_id in names})


def read_study(client, uri: str, name: str) -> StudyRecords:
    """The study's latest parent run and its trial runs; ReportError if there are none."""
    try:
        experiment = call_store(client.get_experiment_by_name, name)
        if experiment is None or experiment.lifecycle_stage == "deleted":
            available = list_studies(client, uri)
            there = f"studies there: {', '.join(available)}" if available else \
                "no studies there yet (python -m ablations.run studies/<file>.yaml)"
            state = "is deleted" if experiment is not None else "not found"
            raise ReportError(f"study {name!r} {state} in {uri}; {there}")
        parents = _search_runs(client, [experiment.experiment_id], f"tags.`ablations.role` = '{PARENT_ROLE}'",
                               order_by=["attributes.start_time DESC"])
        if not parents:
            raise ReportError(f"experiment {name!r} in {uri} has no parent run tagged ablations.role=parent; "
                              "was it made by python -m ablations.run?")
        parent = parents[0]
        trials = _search_runs(client, [experiment.experiment_id],
                              f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' "
                              f"and tags.`ablations.role` = '{TRIAL_ROLE}'")
    except ReportError:
        raise
    except Exception as error:
        raise ReportError(f"tracking store {uri!r}: {one_line(error)}") from None
    if not trials:
        raise ReportError(f"study {name!r} in {uri} has no trial runs yet; run it first "
                          f"(python -m ablations.run studies/{name}.yaml)")
    trials.sort(key=lambda run: (as_int(run.data.tags.get("optuna.trial")) or 0, run.info.start_time or 0))
    return StudyRecords(name, uri, experiment.experiment_id, parent, trials, earlier_parents=len(parents) - 1)


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
    values = {run.data.params.get(key) for run in records.trials}
    return values.pop() if len(values) == 1 else None


def as_int(value: Any) -> int | None:
    """A tag or param as an int (MLflow holds them as strings); None when it is not one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
