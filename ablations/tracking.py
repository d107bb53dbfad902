"""MLflow side of a study: one experiment per study, a parent run, one nested child run per trial.

What a study leaves in MLflow (the report module reads exactly this):
- experiment `<study name>`;
- parent run named `<study name>`, tags `ablations.role=parent`, `ablations.study`;
- per trial a child run (tag `mlflow.parentRunId`) named after its varied values (`crop+color seed=1`),
  tags `ablations.role=trial`, `ablations.study`, `optuna.study`, `optuna.trial`, `ablations.cell`,
  `ablations.varied` (JSON, train.seed included), `ablations.seed`, `ablations.first`/`second` (pair
  studies), `git_commit`, `torch_version`, `device`; params = every resolved config value under its
  dotted key; metrics `loss`, `contrastive_acc`, `knn_acc`, `lr`, `images_per_s` with step = epoch,
  then `probe_h`, `probe_z`, `wall_time_s`; artifacts `config.yaml`, `augment_preview.png`,
  `encoder.pt` (with tracking.log_model). A failed trial's run ends FAILED with `ablations.error`,
  a killed or interrupted one KILLED.

Optuna is the source of truth for a trial's fate; `sweep` brings MLflow in line with it (a run whose
process died is still RUNNING in MLflow until a later process marks it KILLED).

Every call is retried a few times: an SQLite store shared by several worker processes answers
"database is locked" now and then.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
EPOCH_METRICS = ("loss", "contrastive_acc", "knn_acc", "lr", "images_per_s")
# MLflow's limits per log_batch call.
MAX_PARAMS_PER_BATCH = 100
# Errors that retrying cannot fix.
PERMANENT_ERRORS = {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST",
                    "BAD_REQUEST", "PERMISSION_DENIED", "UNAUTHENTICATED"}
T = TypeVar("T")


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message says which and why."""


def resolve_tracking_uri(cli_value: str | None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else MLflow 3's own default, sqlite:///mlflow.db."""
    return cli_value or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def ui_command(uri: str) -> str:
    """The command that opens the MLflow UI on this store."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


def retry(call: Callable[..., T], *args: Any, attempts: int = 6, **kwargs: Any) -> T:
    """call(*args, **kwargs), retried with jittered backoff on transient store errors."""
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except Exception as error:
            code = getattr(error, "error_code", None)
            if code in PERMANENT_ERRORS or attempt == attempts - 1:
                raise
            time.sleep(min(8.0, 0.2 * 2 ** attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def git_state(path: Path) -> tuple[str, bool | None]:
    """(commit SHA or 'none', dirty?) of the git checkout holding `path`."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit or "none", (bool(status) if status is not None else None)


class Tracker:
    """One study's experiment in one tracking store."""

    def __init__(self, uri: str, study_name: str):
        from mlflow import MlflowClient

        # After the import, which sets MLflow's own level: table creation and migrations log at INFO.
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)

        self.uri = uri
        self.study_name = study_name
        try:
            self.client = MlflowClient(uri)
        except Exception as error:
            raise TrackingError(f"tracking store {uri!r}: {_one_line(error)}") from None
        self._experiment_id: str | None = None

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            self._experiment_id = self._ensure_experiment()
        return self._experiment_id

    def _ensure_experiment(self) -> str:
        try:
            experiment = retry(self.client.get_experiment_by_name, self.study_name)
        except Exception as error:
            raise TrackingError(f"tracking store {self.uri!r}: {_one_line(error)}") from None
        if experiment is None:
            try:
                return retry(self.client.create_experiment, self.study_name,
                             artifact_location=self._artifact_location(),
                             tags={"ablations.study": self.study_name})
            except Exception as error:
                if getattr(error, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                    raise TrackingError(f"tracking store {self.uri!r}: {_one_line(error)}") from None
                experiment = retry(self.client.get_experiment_by_name, self.study_name)  # another worker won
        if experiment.lifecycle_stage == "deleted":
            raise TrackingError(f"MLflow experiment {self.study_name!r} is deleted in {self.uri}; restore it "
                                "(mlflow experiments restore) or rename the study")
        return experiment.experiment_id

    def _artifact_location(self) -> str | None:
        """Next to an SQLite store: <db folder>/mlartifacts/<study>, where `mlflow server` would put
        them; other stores choose for themselves."""
        prefix = "sqlite:///"
        if not self.uri.startswith(prefix):
            return None
        database = Path(self.uri[len(prefix):]).expanduser().absolute()
        return str(database.parent / "mlartifacts" / self.study_name)

    # -- the parent run ------------------------------------------------------------------------------

    def find_parent(self, study_uid: str) -> str | None:
        runs = retry(self.client.search_runs, [self.experiment_id],
                     filter_string=(f"tags.`ablations.role` = 'parent' and tags.`ablations.study_uid` = '{study_uid}'"),
                     order_by=["attributes.start_time ASC"], max_results=1)
        return runs[0].info.run_id if runs else None

    def parent_run(self, study_uid: str, tags: dict[str, str]) -> str:
        """The study's parent run, created on first use; it survives resumes and serves all workers."""
        run_id = self.find_parent(study_uid)
        if run_id is None:
            run = retry(self.client.create_run, self.experiment_id, run_name=self.study_name, tags={
                "ablations.role": "parent", "ablations.study": self.study_name,
                "ablations.study_uid": study_uid, **tags,
            })
            run_id = run.info.run_id
        return run_id

    def set_status(self, run_id: str, status: str) -> None:
        """RUNNING reopens a run; FINISHED, FAILED and KILLED end it."""
        if status == "RUNNING":
            retry(self.client.update_run, run_id, status="RUNNING")
        else:
            retry(self.client.set_terminated, run_id, status=status)

    def run_status(self, run_id: str) -> str:
        return retry(self.client.get_run, run_id).info.status

    def log_artifact(self, run_id: str, path: Path | str, artifact_path: str | None = None) -> None:
        retry(self.client.log_artifact, run_id, str(path), artifact_path)

    # -- trial runs ----------------------------------------------------------------------------------

    def start_trial(self, parent_run_id: str, run_name: str, tags: dict[str, str],
                    params: dict[str, str]) -> TrialRun:
        from mlflow.entities import Param

        run = retry(self.client.create_run, self.experiment_id, run_name=run_name,
                    tags={"mlflow.parentRunId": parent_run_id, **tags})
        run_id = run.info.run_id
        items = [Param(key, value) for key, value in params.items()]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            retry(self.client.log_batch, run_id, params=items[start:start + MAX_PARAMS_PER_BATCH])
        return TrialRun(self, run_id)

    def sweep(self, study_uid: str, trials: Iterable[Any]) -> int:
        """End every child run left RUNNING whose Optuna trial is no longer running in that run:
        FINISHED for a COMPLETE or PRUNED trial, FAILED for one with an error, else KILLED."""
        from optuna.trial import TrialState

        by_number = {t.number: t for t in trials}
        runs = retry(self.client.search_runs, [self.experiment_id], filter_string=(
            "attributes.status = 'RUNNING' and tags.`ablations.role` = 'trial' "
            f"and tags.`ablations.study_uid` = '{study_uid}'"), max_results=5000)
        ended = 0
        for run in runs:
            trial = by_number.get(int(run.data.tags.get("optuna.trial", -1)))
            if trial is not None and trial.state in (TrialState.RUNNING, TrialState.WAITING) and \
                    trial.user_attrs.get("mlflow_run_id") in (None, run.info.run_id):
                continue  # still being worked on
            if trial is not None and trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
                status = "FINISHED"
            elif trial is not None and trial.state == TrialState.FAIL and "error" in trial.user_attrs:
                status = "FAILED"
                retry(self.client.set_tag, run.info.run_id, "ablations.error", trial.user_attrs["error"])
            else:
                status = "KILLED"
                retry(self.client.set_tag, run.info.run_id, "ablations.killed",
                      "its worker died or was interrupted; the cell is run again in another trial")
            retry(self.client.set_terminated, run.info.run_id, status=status)
            ended += 1
        return ended


class TrialRun:
    """A child run. Per-epoch metrics go out as one log_batch call per epoch (5 values, one
    round trip), and the time spent in MLflow is kept so the cost of tracking can be checked."""

    def __init__(self, tracker: Tracker, run_id: str):
        self.tracker = tracker
        self.client = tracker.client
        self.run_id = run_id
        self.seconds = 0.0  # wall time spent in tracking calls

    def log_metrics(self, values: dict[str, float | None], step: int = 0) -> None:
        from mlflow.entities import Metric

        started = time.perf_counter()
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step) for key, value in values.items() if value is not None]
        if metrics:
            retry(self.client.log_batch, self.run_id, metrics=metrics)
        self.seconds += time.perf_counter() - started

    def log_epoch(self, metrics: Any) -> None:
        """One EpochMetrics, step = epoch."""
        self.log_metrics({key: getattr(metrics, key) for key in EPOCH_METRICS}, step=metrics.epoch)

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        retry(self.client.log_batch, self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def log_artifact(self, path: Path | str) -> None:
        started = time.perf_counter()
        retry(self.client.log_artifact, self.run_id, str(path))
        self.seconds += time.perf_counter() - started

    def end(self, status: str, error: str | None = None) -> None:
        if error:
            self.set_tags({"ablations.error": error})
        retry(self.client.set_terminated, self.run_id, status=status)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:300] + ("..." if len(text) > 300 else "")
