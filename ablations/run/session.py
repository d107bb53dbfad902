"""The study's set-up and teardown: open (or create) the Optuna study and its MLflow experiment and
parent run, prepare the study for work, and bring MLflow in line with Optuna at the end.

A `Session` is what every other part of a run works through: the study, the tracker and the parent
run's identity.
"""

from __future__ import annotations

import argparse
import statistics
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from ablations import confirm, search
from ablations.stores import mask_url
from ablations.plan import StudySpec
from ablations.tracking import (
    NOTE_TAG, VERDICT_STATUS_TAG, VERDICT_TAG, Tracker, TrackingError, cell_name, git_state, resolve_tracking_uri,
)
from ablations.ui_view import experiment_description, runs_view

# How long a process that found an existing study waits for its creator to finish enqueueing.
READY_TIMEOUT_S = 300


@dataclass
class Session:
    spec: StudySpec
    study: optuna.Study
    tracker: Tracker
    study_uid: str  # the study's own id, kept in Optuna and tagged on every MLflow run of it
    parent_run_id: str
    storage_label: str  # the Optuna storage, without its password
    runs_dir: Path  # runs/<study>: checkpoints, worker logs, the default journal
    prepared: search.Prepared | None = None  # set where this process prepared the study (setup=True)
    env_tags: dict[str, str] = field(default_factory=dict)  # git commit and state, on every run


def tracking_uri(args: argparse.Namespace) -> str:
    return resolve_tracking_uri(args.tracking_uri)


def open_session(spec: StudySpec, args: argparse.Namespace, setup: bool) -> Session:
    """Open (or create) the Optuna study and its MLflow experiment and parent run.

    setup: this process prepares the study for work (enqueue, fail dead trials, sweep MLflow);
    worker processes spawned by a parent that did so pass False.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runs_dir = Path(args.runs_dir) / spec.name
    default_journal = runs_dir / "optuna.journal"
    # Both stores are reached before the study is created: a wrong tracking URL must not leave a
    # study that its next run would wait on (an unready study: its creator died).
    storage = search.open_storage(args.storage, default_journal, args.heartbeat_interval, retry_for=args.retry_for)
    tracker = Tracker(tracking_uri(args), spec.name, retry_for=args.retry_for)
    tracker.experiment_id  # created here, so that workers starting at once race for it before any work
    study, created = search.open_study(spec, storage)
    storage_label = mask_url(args.storage) if args.storage else str(default_journal)

    commit, dirty = git_state(Path(__file__).resolve().parent)
    env_tags = {"git_commit": commit, "git_dirty": str(dirty).lower()}
    if commit != "none":
        env_tags["mlflow.source.git.commit"] = commit
    parent_tags = {
        "optuna.study": spec.name, "optuna.storage": storage_label, "ablations.sampler": spec.search.sampler,
        "ablations.study_file": spec.source, NOTE_TAG: spec.description or spec.name, **env_tags,
    }
    if spec.verdict:
        parent_tags[VERDICT_TAG] = spec.verdict
    study_uid, parent_run_id = _join(spec, study, created, tracker, parent_tags)
    session = Session(spec, study, tracker, study_uid, parent_run_id, storage_label, runs_dir, env_tags=env_tags)
    if setup:
        session.prepared = search.prepare(study, spec, retry_failed=args.retry_failed)
        tracker.sweep(study_uid, study.get_trials(deepcopy=False))
        tracker.save_runs_view(runs_view(spec.search.varied_keys, pairs=bool(spec.search.pairs)))
        tracker.describe_experiment(experiment_description(spec.description, tracker.experiment_id))
        if spec.verdict:  # also on a study begun before its file named the rule
            tracker.call(tracker.client.set_tag, parent_run_id, VERDICT_TAG, spec.verdict)
        if tracker.run_status(parent_run_id) != "RUNNING":
            tracker.set_status(parent_run_id, "RUNNING")
    return session


def _join(spec: StudySpec, study: optuna.Study, created: bool, tracker: Tracker,
          parent_tags: dict[str, str]) -> tuple[str, str]:
    """The study's uid and its parent run: made and the plan enqueued by the process that created the
    study; found (after waiting for the creator to be done) by every other one."""
    if created:
        search.mark_creator(study)
        study_uid = uuid.uuid4().hex
        study.set_user_attr(search.UID_ATTR, study_uid)
        parent_run_id = tracker.parent_run(study_uid, parent_tags)
        tracker.log_artifact(parent_run_id, spec.source)
        search.mark_ready(study, search.enqueue_plan(study, spec), parent_run_id)
        return study_uid, parent_run_id
    _check_same_records(spec, study, tracker)
    ready = search.wait_until_ready(study, READY_TIMEOUT_S, on_wait=lambda line: print(line, flush=True))
    if not ready:
        print(f"study {spec.name!r}: its creator stopped before planning it; this process plans it", flush=True)
    study_uid = study.user_attrs.get(search.UID_ATTR)
    if study_uid is None:  # its creator died before getting this far
        study_uid = uuid.uuid4().hex
        study.set_user_attr(search.UID_ATTR, study_uid)
    parent_run_id = tracker.parent_run(study_uid, parent_tags)
    if not ready:
        search.mark_ready(study, 0, parent_run_id)
    return study_uid, parent_run_id


def _check_same_records(spec: StudySpec, study: optuna.Study, tracker: Tracker) -> None:
    """A study with finished trials whose MLflow records are not in this tracking store (mlflow.db deleted
    or moved, another --tracking-uri): resuming would record new trials beside nothing and the report
    would miss the old ones. Refuse, saying the two ways out."""
    uid = study.user_attrs.get(search.UID_ATTR)
    finished = sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False))
    if uid is None or not finished or tracker.find_parent(uid) is not None:
        return
    raise TrackingError(
        f"study {spec.name!r} has {finished} finished trials in its Optuna storage, but the MLflow store "
        f"{mask_url(tracker.uri)} holds none of their runs; point --tracking-uri at the store that recorded them, "
        f"or start the study over (remove runs/{spec.name}, or use another --storage or study name)")


def finalize(session: Session, interrupted: bool) -> bool:
    """Bring MLflow in line with Optuna; end the parent run when nothing is left to run anywhere.
    True when the study is finished."""
    study = session.study
    search.fail_stale(study)
    session.tracker.sweep(session.study_uid, study.get_trials(deepcopy=False))
    waiting, running = search.work_left(study, session.spec)
    if running:
        return False  # other processes are still at work: the last one to finish ends the parent run
    if interrupted:
        session.tracker.set_status(session.parent_run_id, "KILLED")
        return False
    # Nothing waiting: the study is done. Work left with no one running it: workers crashed.
    if not waiting:
        log_spread(session)  # every configuration, runs recorded before the spread existed included
        log_parent_summary(session)
    session.tracker.set_status(session.parent_run_id, "FAILED" if waiting else "FINISHED")
    return not waiting


def log_spread(session: Session, cell: str | None = None) -> None:
    """Each configuration's mean, SD and n over its seeds (or only `cell`'s), on each of its runs
    (tracking.SPREAD_METRICS), from the study's complete trials: the runs view's group row then shows
    them. An SD needs two seeds."""
    by_cell: dict[str, list[dict]] = {}
    for trial in session.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        attrs = trial.user_attrs
        if attrs.get("duplicate_of") or "mlflow_run_id" not in attrs or "cell" not in attrs:
            continue
        if cell is None or attrs["cell"] == cell:
            by_cell.setdefault(attrs["cell"], []).append({**attrs, "probe_h": attrs.get("probe_h", trial.value)})
    for members in by_cell.values():
        metrics = {"n_seeds": len(members)}
        for key in ("probe_h", "probe_z"):
            values = [m[key] for m in members if m.get(key) is not None]
            if values:
                metrics[f"{key}_mean"] = statistics.fmean(values)
            if len(values) > 1:
                metrics[f"{key}_sd"] = statistics.stdev(values)
        session.tracker.log_spread([m["mlflow_run_id"] for m in members], metrics)


def log_parent_summary(session: Session) -> None:
    """On the parent run, what a researcher looks for first (the UI shows a collapsed parent's metrics):
    the best configuration's mean probe on h and the best mean probe on z (each over seeds, and each
    configuration named by a tag), how many trials finished, and, where the study names a verdict rule,
    the verdict as a tag and in the run's description."""
    trials = session.study.get_trials(deepcopy=False)
    results = confirm.results_frame(trials)
    metrics: dict[str, float] = {"finished_trials": float(sum(t.state.name == "COMPLETE" for t in trials))}
    tags: dict[str, str] = {}
    if not results.empty:
        means = results.groupby("cell")[["probe_h", "probe_z"]].mean()
        best = means["probe_h"].idxmax()
        metrics.update(best_probe_h=float(means.loc[best, "probe_h"]), configurations=float(len(means)))
        tags["ablations.best_config"] = cell_name(best)
        if means["probe_z"].notna().any():
            best_z = means["probe_z"].idxmax()
            metrics["best_probe_z"] = float(means.loc[best_z, "probe_z"])
            tags["ablations.best_config_z"] = cell_name(best_z)
    floor = [t.value for t in trials if t.user_attrs.get("floor") and t.state.name == "COMPLETE"]
    if floor:
        metrics["floor_probe_h"] = sum(floor) / len(floor)
    verdict = confirm.verdict_of(session.spec, trials)
    note = session.spec.description or session.spec.name
    if verdict is not None:
        tags[VERDICT_STATUS_TAG] = verdict.status
        note += f"\n\nVerdict ({verdict.rule}): {verdict.sentence}"
    tags[NOTE_TAG] = note
    session.tracker.log_summary(session.parent_run_id, metrics, tags)
