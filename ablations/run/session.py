"""The study's set-up and teardown. A start is one straight path, each store visited once: the input was
checked (cli); open the Optuna study and check its identity (`search.join`), then open its records in
MLflow (`Tracker.open_records`), then mark the study ready for others to join. At the end, `finalize`
brings MLflow in line with Optuna.

A `Session` is what every other part of a run works through: the study, the tracker and the parent
run's identity.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from ablations.stores import confirm, reconcile, resume, search
from ablations.design.plan import StudySpec
from ablations.stores.errors import mask_url
from ablations.design.plan import cell_name
from ablations.stores.tracking import (
    GIT_COMMIT_TAG, GIT_DIRTY_TAG, NOTE_TAG, OPS_TAG, VERDICT_STATUS_TAG, VERDICT_TAG, Tracker, git_state,
)
from ablations.stores.tracking_store import resolve_tracking_uri
from ablations.stores.ui_view import experiment_description, runs_view


@dataclass
class Session:
    spec: StudySpec
    study: optuna.Study
    tracker: Tracker
    study_uid: str  # the study's own id, kept in Optuna and tagged on every MLflow run of it
    parent_run_id: str
    storage_label: str  # the Optuna storage, without its password
    runs_dir: Path  # runs/<study>: checkpoints, worker logs, the default journal
    prepared: resume.Prepared | None = None  # set where this process prepared the study (setup=True)
    env_tags: dict[str, str] = field(default_factory=dict)  # git commit and state, on every run


def tracking_uri(args: argparse.Namespace) -> str:
    return resolve_tracking_uri(args.tracking_uri)


def open_session(spec: StudySpec, args: argparse.Namespace, setup: bool) -> Session:
    """Open (or create) the Optuna study, then its MLflow experiment and parent run, then mark it ready.

    setup: this process prepares the study for work (enqueue, fail dead trials, sweep MLflow);
    worker processes spawned by a parent that did so pass False.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runs_dir = Path(args.runs_dir) / spec.name
    default_journal = runs_dir / "optuna.journal"
    # Both stores are reached before the study is created: a wrong tracking URL must not leave a
    # study that its next run would wait on (an unready study: its creator died).
    storage = search.open_storage(args.storage, default_journal, args.heartbeat_interval, retry_for=args.retry_for)
    tracker = Tracker(tracking_uri(args), retry_for=args.retry_for)
    storage_label = mask_url(args.storage) if args.storage else str(default_journal)
    # What MLflow holds of the study, read before Optuna's study is opened or created: a study recorded
    # under another storage is refused before this one plans it anew, and results this storage lost are
    # written back before anything is queued (reconcile).
    recorded = reconcile.read_records(tracker, spec.name) if setup else None
    if recorded is not None:
        reconcile.check_place(recorded, spec.name, storage_label, tracker.uri)
    joined = search.join(spec, storage, setup=setup, retry_failed=args.retry_failed,
                         on_wait=lambda line: print(line, flush=True), recorded=recorded)
    commit, dirty = git_state(Path(__file__).resolve().parent)
    env_tags = {GIT_COMMIT_TAG: commit, GIT_DIRTY_TAG: str(dirty).lower()}
    if commit != "none":
        env_tags["mlflow.source.git.commit"] = commit
    parent_tags = {
        "optuna.study": spec.name, "optuna.storage": storage_label, "ablations.sampler": spec.search.sampler,
        "ablations.study_file": spec.source, NOTE_TAG: spec.description or spec.name, **env_tags,
    }
    if spec.verdict:
        parent_tags[VERDICT_TAG] = spec.verdict
    # Every op the study names and the code behind it, as on each trial run (tracking.OPS_TAG).
    parent_tags[OPS_TAG] = json.dumps({name: source.record() for name, source in spec.ops.items()}, sort_keys=True)
    view = runs_view(spec.search.varied_keys, pairs=bool(spec.search.pairs)) if setup else None
    parent_run_id = tracker.open_records(spec.name, joined.uid, joined.study.get_trials(deepcopy=False), parent_tags,
                                         spec.source, view=view)
    if setup:  # the experiment's description: the study file's, and how to reach the runs from its page
        tracker.describe_experiment(experiment_description(spec.description, tracker.experiment_id))
    if not joined.ready:  # this process planned the study: others may join it now that its records exist
        search.mark_ready(joined.study, joined.prepared.units, parent_run_id)
    return Session(spec, joined.study, tracker, joined.uid, parent_run_id, storage_label, runs_dir,
                   prepared=joined.prepared if setup else None, env_tags=env_tags)


def finalize(session: Session, interrupted: bool) -> bool:
    """Bring MLflow in line with Optuna; end the parent run when nothing is left to run anywhere.
    True when the study is finished."""
    study = session.study
    resume.fail_stale(study)
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
    by_cell: dict[tuple[str, int | None], list[dict]] = {}
    for trial in session.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        attrs = trial.user_attrs
        if "duplicate_of" in attrs or "mlflow_run_id" not in attrs or "cell" not in attrs:
            continue
        if cell is None or attrs["cell"] == cell:
            rung = attrs.get("rung")  # a race: a cell's spread is over its seeds at one rung
            by_cell.setdefault((attrs["cell"], rung), []).append({**attrs, "probe_h": attrs.get("probe_h", trial.value)})
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
    the verdict as a tag and in the run's description; computed by `confirm.summary_of`, written here."""
    summary = confirm.summary_of(session.spec, session.study.get_trials(deepcopy=False))
    metrics: dict[str, float] = {"finished_trials": float(summary.finished)}
    tags: dict[str, str] = {}
    best = summary.best
    if best is not None:
        metrics.update(best_probe_h=best.probe_h, configurations=float(best.configurations))
        tags["ablations.best_config"] = cell_name(best.cell)
        if best.cell_z is not None:
            metrics["best_probe_z"] = best.probe_z
            tags["ablations.best_config_z"] = cell_name(best.cell_z)
    if summary.floor_probe_h is not None:
        metrics["floor_probe_h"] = summary.floor_probe_h
    note = session.spec.description or session.spec.name
    if summary.verdict is not None:
        tags[VERDICT_STATUS_TAG] = summary.verdict.status
        note += f"\n\nVerdict ({summary.verdict.rule}): {summary.verdict.sentence}"
    tags[NOTE_TAG] = note
    session.tracker.log_summary(session.parent_run_id, metrics, tags)
