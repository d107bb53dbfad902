"""MLflow side of a study: one experiment per study, a parent run, one nested child run per trial.

What a study leaves in MLflow (the report module reads exactly this):
- experiment `<study name>`;
- parent run named `<study name>`, tags `ablations.role=parent`, `ablations.study`;
- per trial a child run (tag `mlflow.parentRunId`) named after its varied values (`crop+color seed=1`),
  tags `ablations.role=trial`, `ablations.study`, `optuna.study`, `optuna.trial`, `ablations.cell`,
  `ablations.config` (the cell's short name: the run name without its seed), `ablations.varied` (JSON, train.seed included),
  `ablations.seed`, `ablations.first`/`second` (pair studies), `git_commit`, `torch_version`, `device`;
  params = every resolved config value under its dotted key; metrics `loss`, `contrastive_acc`,
  `knn_acc`, `lr`, `images_per_s` with step = epoch, then `probe_h`, `probe_z`, `wall_time_s` and the
  phases in seconds (`seconds/data`, `seconds/preview`, `seconds/setup`, `seconds/train`, `seconds/knn`,
  `seconds/probe`, `seconds/tracking`; before 2026-12 `data_s` .. `tracking_s`), every value rounded
  (`rounded`); per configuration, on each of its runs, its mean and spread over seeds (`probe_h_mean`,
  `probe_h_sd`, `probe_z_mean`, `probe_z_sd`, `n_seeds`: SPREAD_METRICS); artifacts `config.yaml`, `augment_preview.png`, `encoder.pt`
  (with tracking.log_model). A failed trial's run ends FAILED with `ablations.error`, a killed or
  interrupted one KILLED;
- experiment tags `mlflow.note.content` (the study's description and how to reach its runs) and
  `mlflow.sharedViewState.ablations-runs`: the runs view the printed URL opens on (ablations.stores.ui_view).

Optuna is the source of truth for a trial's fate; `sweep` brings MLflow in line with it (a run whose
process died is still RUNNING in MLflow until a later process marks it KILLED).

Every call goes through `errors.retry`: an SQLite store shared by several worker processes answers
"database is locked" now and then, and a tracking server shared by many machines may restart. Over
HTTP, MLflow's own retries are turned off (unless MLFLOW_HTTP_REQUEST_MAX_RETRIES is set) so that
one policy, with one bound (--retry-for), decides how long a worker waits for a lost server.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from ablations.messages import remember_secrets
from ablations.design.plan import cell_name
from ablations.stores.errors import (
    StoreUnavailable, check_tracking_server, describe, mask_url, retry, sqlite_path,
)
from ablations.stores.tracking_store import StoreFile, TrackingError, open_sqlite_store

EPOCH_METRICS = ("loss", "contrastive_acc", "knn_acc", "lr", "images_per_s")
# Where a trial's time went, in seconds, logged as `seconds/<phase>`: named apart from the accuracies, so
# that typing `probe_` in the MLflow UI finds accuracies only, and drawn in a section of their own (the
# chart view groups metrics by the prefix before a slash). Runs recorded before carry `<phase>_s`, the
# name the report's tables keep (`phase_column`).
PHASES = ("data", "preview", "setup", "train", "knn", "probe", "tracking")
PHASE_PREFIX = "seconds/"
# A configuration's mean, SD and n over its seeds, logged on each of its runs (the same values on each):
# the runs view's group row shows the average of its runs' values, which is then the value itself, as
# logged (the UI's own average of the seeds' probe_h is a float sum: 0.28905000000000003).
SPREAD_METRICS = ("probe_h_mean", "probe_h_sd", "probe_z_mean", "probe_z_sd", "n_seeds")
# Metrics are logged with 4 decimals: accuracies are fractions, so 0.01 points (0.399, not 0.39899998).
DECIMALS = 4
# Unrounded: a learning rate late in a cosine schedule is below 1e-4.
EXACT_METRICS = {"lr"}
# MLflow's limits per log_batch call.
MAX_PARAMS_PER_BATCH = 100
# A tag that makes a retried create_run idempotent (see Tracker._create_run).
REQUEST_TAG = "ablations.request"
# MLflow 3's UI opens an experiment by its kind: without this tag a new experiment opens on the GenAI
# "Overview" (traces, evaluations) and its training runs are a click away.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# The record layout, written here and read by ablations.report.records: every run of a study carries its
# role (the study's parent run, a configuration's trial; the untrained floor is a trial run with FLOOR_TAG)
# and its study's name; runs.parquet names a row's role TRIAL_ROLE or FLOOR_ROLE.
ROLE_TAG, STUDY_TAG = "ablations.role", "ablations.study"
PARENT_ROLE, TRIAL_ROLE, FLOOR_ROLE = "parent", "trial", "floor"
# On the parent run: the code's commit and whether its tree had uncommitted changes (run.session).
GIT_COMMIT_TAG, GIT_DIRTY_TAG = "git_commit", "git_dirty"
# On the parent run: the study's verdict rule (ablations.stats.verdicts.RULES), as its file named it.
VERDICT_TAG = "ablations.verdict"
# On the parent run of a finished study: holds / does not hold / undecided.
VERDICT_STATUS_TAG = "ablations.verdict_status"
# On a trial run: "true" for the study's untrained floor (train.epochs 0), kept apart from its cells.
FLOOR_TAG = "ablations.floor"
# On a trial run: its configuration's short name, the run name without the seed (`crop+color`,
# `temperature=0.1`, `floor`); the saved runs view groups seeds by it.
CONFIG_TAG = "ablations.config"
# On a trial run added by the confirmation step: why (the open comparison that asked for the seed).
CONFIRM_TAG = "ablations.confirm"
# On a race's trial run: its rung (epochs) and role, "survivor" or "audit" (ablations.stats.race).
RUNG_TAG, RACE_TAG = "ablations.rung", "ablations.race"
# On a trial run: its ops as JSON (name -> design.op_sources.OpSource.record()), and `ablations.op.<name>`,
# the one-line source (`user m:f (path, sha256 1a2b...)`) of each op that is not built in.
OPS_TAG, OP_TAG_PREFIX = "ablations.ops", "ablations.op."
# The runs list a study opens on: MLflow 3's UI loads a saved view (columns, sort, grouping) from the
# experiment tag `mlflow.sharedViewState.<key>` when its URL carries `?viewStateShareKey=<key>` (its "Share"
# button's mechanism). A study writes one such view (ui_view.runs_view) and prints its URL.
RUNS_VIEW_KEY = "ablations-runs"
SHARED_VIEW_TAG = "mlflow.sharedViewState."
# A run's or an experiment's description, as MLflow's UI reads and edits it.
NOTE_TAG = "mlflow.note.content"
T = TypeVar("T")


def phase_metric(phase: str) -> str:
    """The metric a phase's seconds are logged under: `probe` -> `seconds/probe`."""
    return PHASE_PREFIX + phase


def phase_column(metric: str) -> str:
    """A metric's name in the report's tables: `seconds/probe` -> `probe_s` (the name runs logged before
    the phases moved under `seconds/`, so that old and new stores make the same columns); other names as
    they are."""
    return f"{metric.removeprefix(PHASE_PREFIX)}_s" if metric.startswith(PHASE_PREFIX) else metric


def rounded(key: str, value: float) -> float:
    """A metric's value as it is logged and printed: DECIMALS decimals, the learning rate unrounded. A value
    that is not 0 but rounds to it (a phase of a few microseconds) reads as the smallest step, 10^-DECIMALS,
    with its sign: 0 would say the phase took no time."""
    if key in EXACT_METRICS or not math.isfinite(value):
        return value
    decimals = round(value, DECIMALS)
    return math.copysign(10.0 ** -DECIMALS, value) if decimals == 0 and value != 0 else decimals


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
    """One study's experiment in one tracking store. The store is reached when the tracker is made; the
    study is named then or by `open_records` (a start reaches the store before it knows whether the study
    is new, and opens the study's records after the Optuna study)."""

    def __init__(self, uri: str, study_name: str | None = None, retry_for: float | None = None):
        remember_secrets(uri)
        self.uri = uri
        self.label = f"MLflow tracking store {mask_url(uri)}"
        self.study_name = study_name
        self.retry_for = retry_for
        if uri.startswith(("http://", "https://")):
            # Before any training: a wrong URL or a server that is down is one clear error.
            try:
                check_tracking_server(uri)
            except ValueError as error:
                raise TrackingError(f"--tracking-uri {mask_url(uri)}: {error}") from None
            # One retry policy with one bound (errors.retry), not MLflow's own on top of it (up to
            # 7 retries with backoff doubling from 2 s: minutes before a lost server is reported).
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            # Each trial prints its one line; MLflow would add two lines of URLs per ended run.
            os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

        from mlflow import MlflowClient

        # After the import, which sets MLflow's own level: table creation and migrations log at INFO.
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # MLflow logs a traceback for every SQLite error it then raises ("database is locked" under two
        # workers, "disk is full"); errors.retry handles each and says what matters in one line.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        try:
            self.client = open_sqlite_store(uri) if sqlite_path(uri) is not None else MlflowClient(uri)
        except TrackingError:
            raise
        except Exception as error:
            raise TrackingError(f"tracking store {mask_url(uri)}: {describe(error)}") from None
        self._experiment_id: str | None = None
        self.file = StoreFile.of(uri)  # an SQLite store's file, checked before each call

    def call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A client call through the retry policy of the stores (errors.retry), on the store it opened."""
        if self.file is not None:  # StoreReplaced where another file has taken the store's name
            self.file.check(self.label)
        return retry(method, *args, retry_for=self.retry_for, store=self.label, **kwargs)

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            self._experiment_id = self._ensure_experiment()
        return self._experiment_id

    def _ensure_experiment(self) -> str:
        try:
            experiment = self.call(self.client.get_experiment_by_name, self.study_name)
        except StoreUnavailable:
            raise
        except Exception as error:
            raise TrackingError(f"tracking store {mask_url(self.uri)}: {describe(error)}") from None
        if experiment is None:
            try:
                return self.call(self.client.create_experiment, self.study_name,
                                 artifact_location=self._artifact_location(),
                                 tags={STUDY_TAG: self.study_name, **EXPERIMENT_KIND})
            except Exception as error:
                # Two workers starting a new study at once both find no experiment; one creates it.
                if getattr(error, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                    raise TrackingError(f"tracking store {mask_url(self.uri)}: {describe(error)}") from None
                experiment = self.call(self.client.get_experiment_by_name, self.study_name)
        if experiment.lifecycle_stage == "deleted":
            raise TrackingError(f"MLflow experiment {self.study_name!r} is deleted in {mask_url(self.uri)}; "
                                "restore it (mlflow experiments restore) or rename the study")
        for key, value in EXPERIMENT_KIND.items():  # a study's experiment created before the tag existed
            if experiment.tags.get(key) != value:
                self.call(self.client.set_experiment_tag, experiment.experiment_id, key, value)
        return experiment.experiment_id

    def describe_experiment(self, text: str) -> None:
        """The experiment's description (the UI shows the tag `mlflow.note.content` on its page), written
        where it differs: a study file's edited description replaces the old one on the next start."""
        experiment = self.call(self.client.get_experiment, self.experiment_id)
        if experiment.tags.get(NOTE_TAG) != text:
            self.call(self.client.set_experiment_tag, self.experiment_id, NOTE_TAG, text)

    def save_runs_view(self, view: dict[str, Any]) -> None:
        """Store the view ui_view.runs_url opens on (rewritten on every start: a study file's new grid key
        gets its column). The first time, in a study begun before views existed, its trial runs get
        CONFIG_TAG first (label_configs), so that a saved view means every run is labelled and later
        starts need not read all runs again."""
        tag = SHARED_VIEW_TAG + RUNS_VIEW_KEY
        if tag not in self.call(self.client.get_experiment, self.experiment_id).tags:
            self.label_configs()
        self.call(self.client.set_experiment_tag, self.experiment_id, tag, json.dumps(view))

    def label_configs(self) -> int:
        """Give CONFIG_TAG to trial runs recorded before it existed (from their cell), so that a study
        resumed by a newer version groups all its runs in the saved view. Returns how many."""
        runs = self.call(self.client.search_runs, [self.experiment_id],
                         filter_string="tags.`ablations.role` = 'trial'", max_results=5000)
        missing = [run for run in runs if CONFIG_TAG not in run.data.tags and "ablations.cell" in run.data.tags]
        for run in missing:
            self.call(self.client.set_tag, run.info.run_id, CONFIG_TAG, cell_name(run.data.tags["ablations.cell"]))
        return len(missing)

    def _artifact_location(self) -> str | None:
        """Next to an SQLite store: <db folder>/mlartifacts/<study>, where `mlflow server` would put
        them; other stores choose for themselves (a tracking server started with --serve-artifacts,
        its default, takes uploads through its artifact proxy, so workers need no shared folder)."""
        path = sqlite_path(self.uri)
        if path is None:
            return None
        database = Path(path).expanduser().absolute()
        return str(database.parent / "mlartifacts" / self.study_name)

    def _create_run(self, run_name: str, tags: dict[str, str]):
        """create_run, idempotent under retries: when a server dies after creating the run but before
        answering, the retry finds that run by its request tag instead of making a second one."""
        request = uuid.uuid4().hex
        tried = False

        def create():
            nonlocal tried
            if tried:
                found = self.client.search_runs([self.experiment_id], max_results=1,
                                                filter_string=f"tags.`{REQUEST_TAG}` = '{request}'")
                if found:
                    return found[0]
            tried = True
            return self.client.create_run(self.experiment_id, run_name=run_name,
                                          tags={**tags, REQUEST_TAG: request})

        return self.call(create)

    # -- the parent run ------------------------------------------------------------------------------

    def open_records(self, study_name: str, study_uid: str, trials: list[Any], parent_tags: dict[str, str],
                     study_file: str, *, view: dict[str, Any] | None = None) -> str:
        """A study's records, opened in one visit; returns its parent run's id. The experiment first (so
        that workers starting at once race for it before any work), then the parent run: found, or made
        (tagged with `parent_tags`, the study file attached) by the first process to get here. A study
        with finished trials whose parent run is not in this store had its records elsewhere (mlflow.db
        deleted or moved, another --tracking-uri): resuming would record new trials beside nothing and the
        report would miss the old ones, so it is refused with the two ways out. With `view` (a process that
        sets the study up): runs whose trials are no longer running ended (`sweep`), the runs view saved,
        the verdict tag renewed (a study begun before its file named the rule) and the parent run open."""
        self.study_name = study_name
        self.experiment_id
        run_id = self.find_parent(study_uid)
        if run_id is None:
            finished = sum(t.state.name == "COMPLETE" for t in trials)
            if finished:
                raise TrackingError(
                    f"study {self.study_name!r} has {finished} finished trials in its Optuna storage, but the MLflow "
                    f"store {mask_url(self.uri)} holds none of their runs; point --tracking-uri at the store that "
                    f"recorded them, or start the study over (remove runs/{self.study_name}, or use another "
                    "--storage or study name)")
            run_id = self.parent_run(study_uid, parent_tags)
            self.log_artifact(run_id, study_file)
        if view is not None:
            self.sweep(study_uid, trials)
            self.save_runs_view(view)
            if VERDICT_TAG in parent_tags:
                self.call(self.client.set_tag, run_id, VERDICT_TAG, parent_tags[VERDICT_TAG])
            if self.run_status(run_id) != "RUNNING":
                self.set_status(run_id, "RUNNING")
        return run_id

    def find_parent(self, study_uid: str) -> str | None:
        runs = self.call(self.client.search_runs, [self.experiment_id],
                         filter_string=(f"tags.`ablations.role` = 'parent' and tags.`ablations.study_uid` = '{study_uid}'"),
                         order_by=["attributes.start_time ASC"], max_results=1)
        return runs[0].info.run_id if runs else None

    def parent_run(self, study_uid: str, tags: dict[str, str]) -> str:
        """The study's parent run, created on first use; it survives resumes and serves all workers."""
        run_id = self.find_parent(study_uid)
        if run_id is None:
            run = self._create_run(self.study_name, {
                ROLE_TAG: PARENT_ROLE, STUDY_TAG: self.study_name,
                "ablations.study_uid": study_uid, **tags,
            })
            run_id = run.info.run_id
        return run_id

    def set_status(self, run_id: str, status: str) -> None:
        """RUNNING reopens a run; FINISHED, FAILED and KILLED end it."""
        if status == "RUNNING":
            self.call(self.client.update_run, run_id, status="RUNNING")
        else:
            self.call(self.client.set_terminated, run_id, status=status)

    def log_summary(self, run_id: str, metrics: dict[str, float], tags: dict[str, str]) -> None:
        """What a study's parent run shows first: the best configuration's probes, counts, the verdict."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        self.call(self.client.log_batch, run_id, tags=[RunTag(k, v) for k, v in tags.items()],
                  metrics=[Metric(k, rounded(k, float(v)), now, 0) for k, v in metrics.items()])

    def log_spread(self, run_ids: Iterable[str], metrics: dict[str, float]) -> None:
        """A configuration's mean and spread over its seeds (SPREAD_METRICS), the same on each of its runs.
        At step 0, as the other final metrics (a later step would make the chart view draw a line): the
        last value written is shown, and the study's last process writes every configuration's again."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, rounded(k, float(v)), now, 0) for k, v in metrics.items()]
        for run_id in run_ids:
            self.call(self.client.log_batch, run_id, metrics=batch)

    def run_status(self, run_id: str) -> str:
        return self.call(self.client.get_run, run_id).info.status

    def log_artifact(self, run_id: str, path: Path | str, artifact_path: str | None = None) -> None:
        self.call(self.client.log_artifact, run_id, str(path), artifact_path)

    # -- trial runs ----------------------------------------------------------------------------------

    def start_trial(self, parent_run_id: str, run_name: str, tags: dict[str, str],
                    params: dict[str, str]) -> TrialRun:
        from mlflow.entities import Param

        run = self._create_run(run_name, {"mlflow.parentRunId": parent_run_id, **tags})
        run_id = run.info.run_id
        items = [Param(key, value) for key, value in params.items()]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.call(self.client.log_batch, run_id, params=items[start:start + MAX_PARAMS_PER_BATCH])
        return TrialRun(self, run_id)

    def sweep(self, study_uid: str, trials: Iterable[Any]) -> int:
        """End every child run left RUNNING whose Optuna trial is no longer running in that run:
        FINISHED for a COMPLETE or PRUNED trial, FAILED for one with an error, else KILLED."""
        from optuna.trial import TrialState

        by_number = {t.number: t for t in trials}
        runs = self.call(self.client.search_runs, [self.experiment_id], filter_string=(
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
                self.call(self.client.set_tag, run.info.run_id, "ablations.error", trial.user_attrs["error"])
            else:
                status = "KILLED"
                self.call(self.client.set_tag, run.info.run_id, "ablations.killed",
                          "its worker died or was interrupted; the cell is run again in another trial")
            self.call(self.client.set_terminated, run.info.run_id, status=status)
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
        metrics = [Metric(key, rounded(key, float(value)), now, step)
                   for key, value in values.items() if value is not None]
        if metrics:
            self.tracker.call(self.client.log_batch, self.run_id, metrics=metrics)
        self.seconds += time.perf_counter() - started

    def log_epoch(self, metrics: Any) -> None:
        """One EpochMetrics, step = epoch."""
        self.log_metrics({key: getattr(metrics, key) for key in EPOCH_METRICS}, step=metrics.epoch)

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.tracker.call(self.client.log_batch, self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def log_dataset(self, name: str, digest: str, source: str, profile: dict[str, Any]) -> None:
        """The data set as an MLflow dataset input (the UI's Dataset column): name, a digest of the images
        actually used (two runs on different subsets differ in it), where they were read from."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        started = time.perf_counter()
        dataset = Dataset(name=name, digest=digest, source_type="local", source=source,
                          profile=json.dumps(profile))
        self.tracker.call(self.client.log_inputs, self.run_id,
                          [DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])])
        self.seconds += time.perf_counter() - started

    def log_artifact(self, path: Path | str) -> None:
        started = time.perf_counter()
        self.tracker.call(self.client.log_artifact, self.run_id, str(path))
        self.seconds += time.perf_counter() - started

    def end(self, status: str, error: str | None = None) -> None:
        if error:
            self.set_tags({"ablations.error": error})
        self.tracker.call(self.client.set_terminated, self.run_id, status=status)

