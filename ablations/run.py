"""Run a study: `python -m ablations.run studies/aug_pairs.yaml`.

Parses the study file (strictly), plans its trials, runs them through Optuna (one study per file,
resumable, safe for several workers and machines on one storage) and records every trial in MLflow.
Run the same command again to continue a study; `mlflow ui --backend-store-uri sqlite:///mlflow.db`
shows the runs. `--dry-run` prints the trials and an estimate of their cost without training.

Bad input (study file, --set, data set, storage or tracking URL) exits with status 2 and one line
`error: ...`; a store lost for longer than --retry-for exits with 75 (its trial runs again elsewhere);
Ctrl-C exits with 130 after marking the running trial failed (Optuna) and KILLED (MLflow).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablations.stores import DEFAULT_RETRY_FOR_S, StoreUnavailable, mask_url, redact
from ablations.study import StudyError, StudySpec, config_from_plain, flat_config, load_study
from simclr_core.config import ConfigError, RunConfig

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_STORE_LOST = 75  # EX_TEMPFAIL: try again later
# How long a process that found an existing study waits for its creator to finish enqueueing.
READY_TIMEOUT_S = 300
PREVIEW_IMAGES = 8


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ablations.run",
        description="Run (or resume) a SimCLR ablation study: Optuna schedules the trials, MLflow records them.",
        epilog="Rerun the same command to resume: finished trials are kept, dead ones run again.",
    )
    parser.add_argument("study", help="study file, e.g. studies/quickstart.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a base value, validated like the file; repeatable "
                             "(--set data.dataset=synthetic --set train.epochs=1)")
    parser.add_argument("--workers", type=int, default=1,
                        help="trials run at once on this machine, each in its own process with "
                             "cores/N torch threads. Small CPU models run faster as 2 workers x 1 thread "
                             "than 1 x 2; on a GPU, more workers pay off while it has spare capacity")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage: a path ending in .journal (default runs/<study>/optuna.journal), "
                             "sqlite:///optuna.db, or postgresql://user:password@host/db to share a study "
                             "between machines (start the same command on each)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db); "
                             "http://host:5000 for an `mlflow server` shared between machines")
    parser.add_argument("--retry-for", type=float, default=DEFAULT_RETRY_FOR_S, metavar="S",
                        help="seconds to keep retrying a storage or tracking server that stopped answering "
                             f"(a restart) before this worker stops with status 75 (default {DEFAULT_RETRY_FOR_S:g}); "
                             "keep it above the longest restart you expect")
    parser.add_argument("--runs-dir", default="runs",
                        help="folder for the default journal, per-trial checkpoints and worker logs (default runs)")
    parser.add_argument("--heartbeat-interval", type=int, default=30,
                        help="seconds between a running trial's heartbeats; a trial silent for twice this "
                             "is declared dead and its cell runs again (default 30). On a shared database keep "
                             "twice this above its longest restart, or live trials are taken for dead")
    parser.add_argument("--retry-failed", action="store_true",
                        help="also rerun trials that failed with an error (out of memory, non-finite loss)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the trials and an estimate of their cost; train nothing")
    parser.add_argument("--top", type=int, default=10, help="rows of the final table of best trials (default 10)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (summary lines only)")
    parser.add_argument("--no-report", action="store_true",
                        help="do not build the report (python -m ablations.report) when the study finishes")
    # Internal: set by the parent process for the worker processes it spawns.
    parser.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-count", type=int, default=1, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse has printed its usage message
        return int(exit_.code or 0)
    from simclr_core.data import DatasetError
    from ablations.search import SearchError
    from ablations.tracking import TrackingError

    try:
        if args.workers < 1:
            raise StudyError("--workers", "", f"{args.workers} is not allowed; expected an integer >= 1")
        if not args.retry_for >= 0:
            raise StudyError("--retry-for", "", f"{args.retry_for} is not allowed; expected seconds >= 0")
        return _main(args)
    except (StudyError, ConfigError, DatasetError, SearchError, TrackingError) as error:
        _print_error(error)
        return EXIT_BAD_INPUT
    except StoreUnavailable as error:
        _print_error(error)
        return EXIT_STORE_LOST
    except KeyboardInterrupt:
        print("\ninterrupted; rerun the same command to resume the study", file=sys.stderr)
        return EXIT_INTERRUPTED


def _print_error(error: BaseException) -> None:
    """One line, whatever the message ("Looked at:\n  - path" lists become "Looked at: - path"),
    without passwords."""
    print("error: " + redact(" ".join(line.strip() for line in str(error).splitlines() if line.strip())),
          file=sys.stderr)


def _main(args: argparse.Namespace) -> int:
    spec = load_study(args.study, args.overrides, data_root=os.environ.get("SIMCLR_DATA"))
    if args.dry_run:
        return dry_run(spec, args)

    import torch
    from simclr_core.trainer import select_device

    select_device(spec.base.train.device)  # a CUDA device asked for on a machine without one: fail now
    if args.worker_index is not None:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.worker_count))
        return worker_main(spec, args)

    # Load the data set before touching any storage: a missing data set is one clear error, and the
    # decoded-array cache is warm before several workers read it at once.
    data = DataCache()
    if "data" not in {key.split(".")[0] for key in spec.search.varied_keys}:
        data.get(spec.base.data)
    session = open_session(spec, args, setup=True)
    print(f"study {spec.name} (git {session.env_tags['git_commit'][:12]}): "
          f"{session.prepared.units} trials, {session.prepared.done} done"
          + (f", {session.prepared.enqueued} (re)queued" if session.prepared.enqueued else "")
          + (f"; trials {session.prepared.failed_stale} had died: their cells run again"
             if session.prepared.failed_stale else ""))
    if args.workers == 1:
        status = run_here(session, data, args)
    else:
        data.clear()
        status = run_workers(session, args)
    finished = finalize(session, interrupted=status == EXIT_INTERRUPTED)
    print_summary(session, args.top)
    report = write_report(session) if finished and not args.no_report else None
    print_locations(session, report)
    if status == EXIT_INTERRUPTED:
        print("interrupted: the running trial is marked failed in Optuna and KILLED in MLflow; "
              "rerun the same command to resume", file=sys.stderr)
    return status


# ----------------------------------------------------------------------------------------------------
# Session: the study in Optuna and in MLflow


@dataclass
class Session:
    spec: StudySpec
    study: Any  # optuna.Study
    tracker: Any  # tracking.Tracker
    study_uid: str
    parent_run_id: str
    storage_label: str
    runs_dir: Path
    prepared: Any = None  # search.Prepared
    env_tags: dict[str, str] = field(default_factory=dict)


def open_session(spec: StudySpec, args: argparse.Namespace, setup: bool) -> Session:
    """Open (or create) the Optuna study and its MLflow experiment and parent run.

    setup: this process prepares the study for work (enqueue, fail dead trials, sweep MLflow);
    worker processes spawned by a parent that did so pass False.
    """
    import optuna

    from ablations import search
    from ablations.tracking import Tracker, git_state

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runs_dir = Path(args.runs_dir) / spec.name
    default_journal = runs_dir / "optuna.journal"
    # Both stores are reached before the study is created: a wrong tracking URL must not leave a
    # study that its next run would wait on (an unready study: its creator died).
    storage = search.open_storage(args.storage, default_journal, args.heartbeat_interval, retry_for=args.retry_for)
    tracker = Tracker(_tracking_uri(args), spec.name, retry_for=args.retry_for)
    tracker.experiment_id  # created here, so that workers starting at once race for it before any work
    study, created = search.open_study(spec, storage)
    storage_label = mask_url(args.storage) if args.storage else str(default_journal)

    commit, dirty = git_state(Path(__file__).resolve().parent)
    env_tags = {"git_commit": commit, "git_dirty": str(dirty).lower()}
    if commit != "none":
        env_tags["mlflow.source.git.commit"] = commit
    parent_tags = {
        "optuna.study": spec.name, "optuna.storage": storage_label, "ablations.sampler": spec.search.sampler,
        "ablations.study_file": spec.source, "mlflow.note.content": spec.description or spec.name, **env_tags,
    }
    if created:
        study_uid = uuid.uuid4().hex
        study.set_user_attr("ablations.uid", study_uid)
        parent_run_id = tracker.parent_run(study_uid, parent_tags)
        tracker.log_artifact(parent_run_id, spec.source)
        search.mark_ready(study, search.enqueue_plan(study, spec), parent_run_id)
    else:
        ready = search.wait_until_ready(study, READY_TIMEOUT_S)
        study_uid = study.user_attrs.get("ablations.uid")
        if study_uid is None:  # its creator died before getting this far
            study_uid = uuid.uuid4().hex
            study.set_user_attr("ablations.uid", study_uid)
        parent_run_id = tracker.parent_run(study_uid, parent_tags)
        if not ready:
            search.mark_ready(study, 0, parent_run_id)
    session = Session(spec, study, tracker, study_uid, parent_run_id, storage_label, runs_dir, env_tags=env_tags)
    if setup:
        session.prepared = search.prepare(study, spec, retry_failed=args.retry_failed)
        tracker.sweep(study_uid, study.get_trials(deepcopy=False))
        if tracker.run_status(parent_run_id) != "RUNNING":
            tracker.set_status(parent_run_id, "RUNNING")
    return session


def finalize(session: Session, interrupted: bool) -> bool:
    """Bring MLflow in line with Optuna; end the parent run when nothing is left to run anywhere.
    True when the study is finished."""
    from ablations import search

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
    session.tracker.set_status(session.parent_run_id, "FAILED" if waiting else "FINISHED")
    return not waiting


def _tracking_uri(args: argparse.Namespace) -> str:
    from ablations.tracking import resolve_tracking_uri

    return resolve_tracking_uri(args.tracking_uri)


# ----------------------------------------------------------------------------------------------------
# Running trials


class DataCache:
    """The data set of the last trial, reused while consecutive trials' data configs are equal."""

    def __init__(self):
        self._key: str | None = None
        self._dataset = None

    def get(self, config):
        from dataclasses import asdict

        from simclr_core.data import load_dataset

        key = json.dumps(asdict(config), sort_keys=True)
        if key != self._key:
            self._dataset, self._key = None, None
            self._dataset = load_dataset(config)
            self._key = key
        return self._dataset

    def clear(self) -> None:
        self._key, self._dataset = None, None


@dataclass
class Outcome:
    number: int
    run_name: str
    state: str  # COMPLETE | PRUNED | FAIL
    line: str  # one-line summary


class Runner:
    """Claims trials and runs them, one at a time, until the study has no work left."""

    def __init__(self, session: Session, data: DataCache, show_progress: bool):
        self.session = session
        self.spec = session.spec
        self.data = data
        self.show_progress = show_progress
        self.outer = None

    def loop(self, poll_s: float) -> list[Outcome]:
        from ablations import search

        outcomes = []
        study = self.session.study
        while True:
            claim = search.claim_next(study, self.spec)
            if claim is not None:
                outcome = self.run_trial(claim)
                outcomes.append(outcome)
                self._write(outcome.line)
                if self.outer is not None:
                    self.outer.n = search.units_done(study)
                    self.outer.refresh()
                continue
            if search.fail_stale(study):  # a dead worker's trial: its cell comes back as WAITING
                self.session.tracker.sweep(self.session.study_uid, study.get_trials(deepcopy=False))
            waiting, running = search.work_left(study, self.spec)
            if waiting or (not running and search.requeue_orphans(study)):
                continue
            if not running:
                return outcomes
            time.sleep(poll_s)  # other workers' trials: wait to see them finish or die

    def _write(self, line: str) -> None:
        from tqdm import tqdm

        tqdm.write(line) if self.outer is not None else print(line, flush=True)

    def config_for(self, claim) -> RunConfig:
        """The configuration enqueued for the trial, with this machine's places (data.root, ...)."""
        from ablations.search import PLACE_KEYS
        from ablations.study import get_dotted, set_dotted

        config = config_from_plain(claim.attrs["config"], source=f"trial {claim.number}")
        for key in PLACE_KEYS - set(claim.varied):  # a study may vary one of them on purpose
            set_dotted(config, key, get_dotted(self.spec.base, key))
        return config

    def run_trial(self, claim) -> Outcome:
        import optuna
        from optuna.trial import TrialState

        from ablations import search

        session = self.session
        number, name = claim.number, claim.run_name
        trial_dir = session.runs_dir / claim.attrs["checkpoint"]
        trial_dir.mkdir(parents=True, exist_ok=True)
        run = None
        bar = None
        state: dict[str, Any] = {"first_epoch": None}  # the first epoch this process trained
        with search.Heartbeat(session.study, claim.trial._trial_id):
            try:
                config = self.config_for(claim)
                run = self._start_run(claim, config)
                claim.trial.set_user_attr("mlflow_run_id", run.run_id)
                dataset = self.data.get(config.data)
                self._log_inputs(run, config, dataset, trial_dir)
                _drop_foreign_checkpoint(trial_dir, config)
                bar = self._epoch_bar(name, config.train.epochs)

                def on_epoch(metrics) -> None:
                    if state["first_epoch"] is None:
                        state["first_epoch"] = metrics.epoch
                        if bar is not None:
                            bar.n = metrics.epoch - 1
                    run.log_epoch(metrics)
                    claim.trial.set_user_attr("progress", {"epoch": metrics.epoch, "epochs": config.train.epochs,
                                                           "loss": metrics.loss})
                    if bar is not None:
                        bar.set_postfix(loss=f"{metrics.loss:.3f}",
                                        knn="-" if metrics.knn_acc is None else f"{metrics.knn_acc:.3f}")
                        bar.update(1)
                    if metrics.knn_acc is not None:
                        claim.trial.report(metrics.knn_acc, metrics.epoch)
                        if claim.trial.should_prune():
                            raise optuna.TrialPruned(f"pruned at epoch {metrics.epoch} (knn_acc {metrics.knn_acc:.3f})")

                from simclr_core.trainer import train

                result = train(config, callback=on_epoch, checkpoint_dir=trial_dir, dataset=dataset)
                return self._complete(claim, run, config, result, trial_dir, state)
            except optuna.TrialPruned as pruned:
                search.finish(session.study, claim, state=TrialState.PRUNED, attrs={"pruned": str(pruned)})
                if run is not None:
                    run.set_tags({"ablations.pruned": str(pruned)})
                    run.end("FINISHED")
                _remove_checkpoint(trial_dir)
                return Outcome(number, name, "PRUNED", f"trial {number:>3} {name}: {pruned}")
            except StoreUnavailable as lost:
                # Left RUNNING in Optuna: its heartbeat stops with this process, so a surviving worker
                # declares it dead and runs the cell again, as for a worker that died.
                if run is not None and lost.store != session.tracker.label:
                    _quietly(run.set_tags, {"ablations.killed": f"its worker stopped: {lost}"})
                    _quietly(run.end, "KILLED")
                raise
            except KeyboardInterrupt:
                # Marked so the rerun's resume enqueues the cell again; its checkpoint is kept, so the
                # rerun continues from the last finished epoch. A second Ctrl-C must not cut this short.
                _interrupts.handled()
                with _ignoring_sigint():
                    search.finish(session.study, claim, state=TrialState.FAIL, attrs={"outcome": "interrupted"})
                    if run is not None:
                        _quietly(run.end, "KILLED")
                raise
            except Exception as error:
                message = _one_line(error)
                (trial_dir / "error.txt").write_text(traceback.format_exc())
                search.finish(session.study, claim, state=TrialState.FAIL, attrs={"error": message})
                if run is not None:
                    _quietly(run.log_artifact, trial_dir / "error.txt")
                    _quietly(run.end, "FAILED", message)
                _remove_checkpoint(trial_dir)
                return Outcome(number, name, "FAIL", f"trial {number:>3} {name}: FAILED: {message}")
            finally:
                if bar is not None:
                    bar.close()

    def _start_run(self, claim, config: RunConfig):
        import torch

        from simclr_core.trainer import describe_device, select_device

        session = self.session
        attrs = claim.attrs
        if config.train.num_threads:  # as train() will, so that the device tag tells the truth
            torch.set_num_threads(config.train.num_threads)
        tags = {
            "ablations.role": "trial", "ablations.study": self.spec.name, "ablations.study_uid": session.study_uid,
            "optuna.study": self.spec.name, "optuna.trial": str(claim.number),
            "ablations.cell": attrs["cell"], "ablations.unit": attrs["unit"],
            "ablations.varied": json.dumps(attrs["varied"]), "ablations.seed": str(attrs["seed"]),
            "ablations.worker": attrs["worker"], "torch_version": torch.__version__,
            "device": describe_device(select_device(config.train.device)), **session.env_tags,
        }
        if attrs.get("pair"):
            tags["ablations.first"], tags["ablations.second"] = attrs["pair"]
        if "retry_of" in claim.trial.user_attrs:
            tags["ablations.retry_of"] = str(claim.trial.user_attrs["retry_of"])
        params = {key: value if isinstance(value, str) else json.dumps(value)
                  for key, value in flat_config(config).items()}
        return session.tracker.start_trial(session.parent_run_id, claim.run_name, tags, params)

    def _log_inputs(self, run, config: RunConfig, dataset, trial_dir: Path) -> None:
        """config.yaml and the augmentation preview (a broken preview does not cost the trial)."""
        import torch
        import yaml

        config_path = trial_dir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config.to_plain(), sort_keys=False))
        run.log_artifact(config_path)
        if not self.spec.tracking.preview:
            return
        try:
            from simclr_core.augmentations import render_preview

            generator = torch.Generator().manual_seed(config.train.seed)
            path = render_preview(dataset.train_images[:PREVIEW_IMAGES], config.augment, generator,
                                  trial_dir / "augment_preview.png", n_views=config.train.n_views)
            run.log_artifact(path)
        except Exception as error:
            run.set_tags({"ablations.preview_error": _one_line(error)})

    def _complete(self, claim, run, config: RunConfig, result, trial_dir: Path, state: dict) -> Outcome:
        from optuna.trial import TrialState

        from ablations import search

        # Epochs restored from a checkpoint (a retried trial) were logged by the dead run; log them here
        # too, so every finished run holds the whole history.
        first = state["first_epoch"] or (len(result.history) + 1)
        for metrics in result.history:
            if metrics.epoch < first:
                run.log_epoch(metrics)
        value = result.probe_h if result.probe_h is not None else result.knn_acc
        if value is None or not math.isfinite(value):
            raise RuntimeError(f"no objective: probe_h={result.probe_h}, knn_acc={result.knn_acc}")
        run.log_metrics({"probe_h": result.probe_h, "probe_z": result.probe_z, "wall_time_s": result.wall_time_s})
        if self.spec.tracking.log_model and config.train.epochs > 0:
            run.log_artifact(_save_encoder(trial_dir, config))
        run.log_metrics({"tracking_s": run.seconds})
        results = {"probe_h": result.probe_h, "probe_z": result.probe_z, "knn_acc": result.knn_acc,
                   "wall_time_s": result.wall_time_s, "device": result.device}
        if search.finish(self.session.study, claim, value=value, state=TrialState.COMPLETE, attrs=results):
            run.set_tags({"device": result.device, "colour_ops": result.colour_ops})
            run.end("FINISHED")
        else:
            run.set_tags({"ablations.killed": "declared dead by another worker while running; its cell ran again"})
            run.end("KILLED")
        _remove_checkpoint(trial_dir)
        z = f" probe_z {result.probe_z:.3f}" if result.probe_z is not None else ""
        knn = f" knn {result.knn_acc:.3f}" if result.knn_acc is not None else ""
        return Outcome(claim.number, claim.run_name, "COMPLETE",
                       f"trial {claim.number:>3} {claim.run_name}: probe_h {_fmt(result.probe_h)}{z}{knn} "
                       f"({result.wall_time_s:.0f} s)")

    def _epoch_bar(self, name: str, epochs: int):
        if not self.show_progress:
            return None
        from tqdm import tqdm

        return tqdm(total=epochs, desc=f"  {name}", unit="epoch", leave=False, dynamic_ncols=True, disable=None)


def run_here(session: Session, data: DataCache, args: argparse.Namespace) -> int:
    """One worker, in this process, with a progress bar over trials and one over epochs."""
    from tqdm import tqdm

    runner = Runner(session, data, show_progress=not args.no_progress)
    if not args.no_progress:
        # disable=None: bars on a terminal only; logs and pipes get the one-line summaries.
        runner.outer = tqdm(total=session.prepared.units, initial=session.prepared.done, desc=session.spec.name,
                            unit="trial", dynamic_ncols=True, disable=None)
    try:
        with _interrupts():
            runner.loop(poll_s=min(5.0, args.heartbeat_interval))
        return 0
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        if runner.outer is not None:
            runner.outer.close()


def worker_main(spec: StudySpec, args: argparse.Namespace) -> int:
    """A spawned worker: the claim loop, no setup, no bars; its output goes to its log file."""
    session = open_session(spec, args, setup=False)
    runner = Runner(session, DataCache(), show_progress=False)
    try:
        with _interrupts():
            runner.loop(poll_s=min(5.0, args.heartbeat_interval))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return 0


def run_workers(session: Session, args: argparse.Namespace) -> int:
    """Spawn N worker processes running the claim loop; show progress by polling the storage."""
    from tqdm import tqdm

    session.runs_dir.mkdir(parents=True, exist_ok=True)
    argv = [args.study, "--runs-dir", args.runs_dir, "--heartbeat-interval", str(args.heartbeat_interval),
            "--tracking-uri", _tracking_uri(args), "--retry-for", str(args.retry_for),
            "--worker-count", str(args.workers)]
    if args.storage:
        argv += ["--storage", args.storage]
    for override in args.overrides:
        argv += ["--set", override]
    processes, logs = [], []
    for index in range(args.workers):
        log_path = session.runs_dir / f"worker-{index}.log"
        log = open(log_path, "a")
        logs.append((log_path, log))
        processes.append(subprocess.Popen([sys.executable, "-m", "ablations.run", *argv, "--worker-index", str(index)],
                                          stdout=log, stderr=subprocess.STDOUT))
    seen = {t.number for t in session.study.get_trials(deepcopy=False) if t.state.is_finished()}
    bar = None if args.no_progress else tqdm(total=session.prepared.units, initial=session.prepared.done,
                                             desc=session.spec.name, unit="trial", dynamic_ncols=True,
                                             disable=None)
    write = tqdm.write if bar is not None else print
    interrupted = False
    try:
        with _interrupts():
            _poll_workers(session, processes, seen, bar, write)
    except KeyboardInterrupt:
        interrupted = True
        # From a terminal the workers got the SIGINT too and are ending their trials; give them a
        # moment before interrupting the ones that did not (the parent alone got a `kill`).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(p.poll() is None for p in processes):
            time.sleep(0.2)
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
    finally:
        if bar is not None:
            bar.close()
        for _, log in logs:
            log.close()
    codes = [p.returncode for p in processes]
    if interrupted or EXIT_INTERRUPTED in codes:
        return EXIT_INTERRUPTED
    failed = [(i, code) for i, code in enumerate(codes) if code]
    for index, code in failed:
        path = logs[index][0]
        tail = path.read_text().strip().splitlines()[-1:] if path.exists() else []
        print(f"worker {index} exited with status {code}: {tail[0] if tail else ''} (log: {path})", file=sys.stderr)
    return 1 if failed else 0


def _poll_workers(session: Session, processes, seen: set[int], bar, write) -> None:
    """Until every worker has exited: one line per newly finished trial, the bar, running epochs."""
    from ablations import search

    while True:
        finished = [p.poll() is not None for p in processes]
        trials = session.study.get_trials(deepcopy=False)
        for trial in trials:
            if trial.state.is_finished() and trial.number not in seen:
                seen.add(trial.number)
                if not trial.user_attrs.get("duplicate_of"):
                    write(_trial_line(trial))
        if bar is not None:
            bar.n = search.units_done(session.study)
            running = [t for t in trials if t.state.name == "RUNNING" and "progress" in t.user_attrs]
            bar.set_postfix_str("  ".join(
                f"#{t.number} {t.user_attrs['progress']['epoch']}/{t.user_attrs['progress']['epochs']}"
                f" loss {t.user_attrs['progress']['loss']:.3f}" for t in running[:4]))
            bar.refresh()
        if all(finished):
            return
        time.sleep(1.0)


# ----------------------------------------------------------------------------------------------------
# Output


def _trial_line(trial) -> str:
    name = trial.user_attrs.get("run_name", f"trial-{trial.number}")
    attrs = trial.user_attrs
    if trial.state.name == "COMPLETE":
        z = f" probe_z {_fmt(attrs.get('probe_z'))}" if attrs.get("probe_z") is not None else ""
        return f"trial {trial.number:>3} {name}: probe_h {_fmt(attrs.get('probe_h'))}{z} ({attrs.get('wall_time_s', 0):.0f} s)"
    if trial.state.name == "PRUNED":
        return f"trial {trial.number:>3} {name}: {attrs.get('pruned', 'pruned')}"
    if "error" in attrs:
        return f"trial {trial.number:>3} {name}: FAILED: {attrs['error']}"
    return f"trial {trial.number:>3} {name}: {'interrupted' if attrs.get('outcome') else 'worker died'}; will run again"


def print_summary(session: Session, top: int) -> None:
    """The best cells (mean over seeds, with spread and n), then where the results are."""
    from ablations import search

    spec, study = session.spec, session.study
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    failed = [t for t in study.get_trials(deepcopy=False)
              if t.state.name == "FAIL" and "error" in t.user_attrs]
    by_cell: dict[str, list] = {}
    for trial in trials:
        by_cell.setdefault(trial.user_attrs.get("cell", str(trial.number)), []).append(trial)
    rows = []
    for cell, members in by_cell.items():
        h = [t.value for t in members]
        z = [t.user_attrs["probe_z"] for t in members if t.user_attrs.get("probe_z") is not None]
        rows.append((statistics.fmean(h), statistics.stdev(h) if len(h) > 1 else 0.0, len(h),
                     statistics.fmean(z) if z else None, statistics.fmean(t.user_attrs.get("wall_time_s", 0) for t in members),
                     cell, sorted(t.number for t in members)))
    rows.sort(key=lambda row: -row[0])
    done = search.units_done(study)
    print(f"\n{spec.name}: {len(trials)} trials complete, {len(failed)} failed; "
          f"{done} of {session.prepared.units} cell x seed units done")
    if rows:
        width = min(60, max(len(row[5]) for row in rows[:top]))
        print(f"{'probe_h (mean ± sd, n)':<24} {'probe_z':>8} {'wall s':>7}  {'cell':<{width}}  trials")
        for mean, sd, n, z, wall, cell, numbers in rows[:top]:
            print(f"{mean:.3f} ± {sd:.3f} (n={n}){'':<6} {_fmt(z):>8} {wall:>7.0f}  {cell:<{width}}  "
                  f"{','.join(map(str, numbers))}")
    for trial in failed[:5]:
        print(f"failed: trial {trial.number} {trial.user_attrs.get('run_name', '')}: {trial.user_attrs['error']}")


def print_locations(session: Session, report: Path | None) -> None:
    """Where the results are, and the command that opens them; the last lines the user sees."""
    from ablations.tracking import ui_command

    name, uri = session.spec.name, mask_url(session.tracker.uri)
    print(f"\nOptuna study '{name}': {session.storage_label}")
    print(f"MLflow experiment '{name}' (parent run {session.parent_run_id}): {uri}")
    if report is not None:
        print(f"Report: {report}")
    print(f"Open the MLflow UI:  {ui_command(uri)}")


def write_report(session: Session) -> Path | None:
    """The study's report (tables, figures, README under reports/<study>/), built from MLflow alone
    by ablations.report; its failure is reported, not raised: the study itself is done."""
    try:
        from ablations import report
    except ImportError:  # a checkout without the report module
        return None
    command = ["--study", session.spec.name, "--tracking-uri", session.tracker.uri]
    print(f"\nReport (python -m ablations.report {redact(' '.join(command))}):")
    try:
        status = report.main(command)
    except Exception as error:
        status = _one_line(error)
    if status:
        print(f"warning: the report failed ({status}); the study's records are complete: rerun the report "
              "with the command above", file=sys.stderr)
        return None
    return Path("reports") / session.spec.name / "README.md"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# ----------------------------------------------------------------------------------------------------
# Dry run: the trials and what they cost


def dry_run(spec: StudySpec, args: argparse.Namespace) -> int:
    search = spec.search
    if search.sampler == "grid":
        planned = spec.trials()
        cells = len(planned) // len(spec.seeds)
        print(f"study {spec.name} ({spec.source}): grid, {cells} cells x {len(spec.seeds)} seeds = {len(planned)} trials")
        for index, trial in enumerate(planned):
            print(f"  {index:>4}  {trial.run_name}")
        configs = [trial.config for trial in planned]
    else:
        print(f"study {spec.name} ({spec.source}): {search.sampler}, {search.n_trials} trials, "
              f"seed {spec.seeds[0]}, pruner {search.pruner}")
        for key, param in search.params.items():
            if param.type == "categorical":
                from ablations.study import format_value

                print(f"  {key}: one of {', '.join(format_value(c) for c in param.choices)}")
            else:
                print(f"  {key}: {param.type} in [{param.low}, {param.high}]{' (log)' if param.log else ''}")
        configs = [spec.base] * search.n_trials
    try:
        per_trial, how = estimate_trial_seconds(configs, workers=args.workers)
    except Exception as error:  # the data set is missing, say: still a useful dry run
        print(f"estimate unavailable: {_one_line(error)}")
        return 0
    total = sum(per_trial) / args.workers
    print(f"estimate: {_duration(statistics.fmean(per_trial))} per trial, {_duration(total)} in all with "
          f"{args.workers} worker{'s' if args.workers > 1 else ''} ({how})")
    print("nothing was trained (--dry-run)")
    return 0


def estimate_trial_seconds(configs: list[RunConfig], workers: int = 1) -> tuple[list[float], str]:
    """Seconds per trial from timing training steps on real images, scaled to the trial's epochs,
    data size, kNN monitor and probe. Batches grow from 32 until a step takes half a second or the
    configured batch is reached (per-image cost changes with the batch: caches on a CPU, occupancy on
    a GPU). The model step is timed once per model, the views once per augmentation. A rough guide,
    ±50%: other processes on the machine change it."""
    import torch

    from simclr_core.augmentations import make_views
    from simclr_core.model import SimCLRModel
    from simclr_core.trainer import describe_device, select_device

    data = DataCache()
    model_costs: dict[str, tuple[float, int]] = {}  # model key -> (seconds per image, batch timed)
    view_costs: dict[str, float] = {}  # augmentation key -> seconds per image
    seconds = []
    how = ""
    for config in configs:
        dataset = data.get(config.data)
        torch.set_num_threads(config.train.num_threads or max(1, (os.cpu_count() or 1) // workers))
        device = select_device(config.train.device)
        plain = config.to_plain()
        model_key = json.dumps([plain["model"], config.train.n_views, config.train.batch_size, str(device),
                                torch.get_num_threads(), plain["data"]])
        if model_key not in model_costs:
            model = SimCLRModel(config.model).to(device)
            batch = min(config.train.batch_size, 32)
            while True:
                step = _time_model_step(model, dataset.train_images[:batch].to(device), config, device)
                if batch >= min(config.train.batch_size, len(dataset.train_images)) or step > 0.5:
                    break
                batch = min(config.train.batch_size, 2 * batch)
            model_costs[model_key] = (step / batch, batch)
            how = f"from timed steps of {batch} images on {describe_device(device)}; roughly ±50%"
        model_cost, batch = model_costs[model_key]
        view_key = json.dumps([model_key, plain["augment"]])
        if view_key not in view_costs:
            images = dataset.train_images[:batch].to(device).float() / 255
            generator = torch.Generator(device=device).manual_seed(0)
            timed = []
            for _ in range(3):
                started = time.perf_counter()
                make_views(images, config.augment, generator, n_views=config.train.n_views)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                timed.append(time.perf_counter() - started)
            view_costs[view_key] = statistics.fmean(timed[1:]) / batch
        per_image = model_cost + view_costs[view_key]
        forward_only = model_cost / (3 * config.train.n_views)  # no backward, one view
        n_train, n_test = len(dataset.train_images), len(dataset.test_images)
        trained = (n_train // config.train.batch_size) * config.train.batch_size
        cost = config.train.epochs * trained * per_image + 1.5  # + the run's tracking and preview
        if config.probe.knn_every:
            evaluations = math.ceil(config.train.epochs / config.probe.knn_every)
            rows = min(config.probe.knn_train_rows, n_train) + min(config.probe.knn_test_rows, n_test)
            cost += evaluations * rows * forward_only
        if config.probe.enabled:
            fits = 2 if config.probe.probe_z else 1
            cost += (n_train + n_test) * forward_only + 2.0 * fits  # features, then L-BFGS on them
        seconds.append(cost)
    return seconds, how


def _time_model_step(model, images, config: RunConfig, device) -> float:
    """Seconds of one step's forward, NT-Xent, backward and update on unaugmented views, after two
    warm-ups."""
    import torch

    from simclr_core.loss import nt_xent_multi

    from simclr_core.trainer import numeric_settings

    autocast_dtype, memory_format = numeric_settings(config.train, device)  # as train() chooses them
    model.to(memory_format=memory_format)
    images = images.float() / 255
    batch = torch.cat([images] * config.train.n_views).contiguous(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    steps = []
    for _ in range(4):
        started = time.perf_counter()
        with torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            _, z = model(batch)
        loss = nt_xent_multi(z.float().view(config.train.n_views, len(images), -1), config.train.temperature)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        steps.append(time.perf_counter() - started)
    return statistics.fmean(steps[2:])


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ----------------------------------------------------------------------------------------------------
# Small helpers of this module


def _drop_foreign_checkpoint(trial_dir: Path, config: RunConfig) -> None:
    """A checkpoint written by another configuration (another machine's data.root, say) is not
    resumable; start over rather than fail."""
    from simclr_core.trainer import CHECKPOINT_NAME

    path = trial_dir / CHECKPOINT_NAME
    if not path.exists():
        return
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=False).get("config")
    except Exception:
        saved = None
    if saved != config.to_plain():
        path.unlink()


def _remove_checkpoint(trial_dir: Path) -> None:
    from simclr_core.trainer import CHECKPOINT_NAME

    (trial_dir / CHECKPOINT_NAME).unlink(missing_ok=True)


def _save_encoder(trial_dir: Path, config: RunConfig) -> Path:
    """encoder.pt: the final encoder (and head) weights with the config that made them."""
    import torch

    from simclr_core.trainer import CHECKPOINT_NAME

    state = torch.load(trial_dir / CHECKPOINT_NAME, map_location="cpu", weights_only=False)
    weights = state["model"]
    path = trial_dir / "encoder.pt"
    torch.save({
        "encoder": {k.removeprefix("encoder."): v for k, v in weights.items() if k.startswith("encoder.")},
        "head": {k.removeprefix("head."): v for k, v in weights.items() if k.startswith("head.")},
        "config": config.to_plain(),
    }, path)
    return path


class _interrupts:
    """Ctrl-C (SIGINT) and SIGTERM (a scheduler stopping the job) raise KeyboardInterrupt, which ends
    the running trial; until the trial's handler calls `handled()`, the signal is raised again every
    two seconds (time enough for the trial's own clean-up to reach its handler).

    Why again: Python prints a KeyboardInterrupt raised inside a weakref callback or a __del__ as
    "Exception ignored" and carries on, so one Ctrl-C can be lost. torch.compile's caches (the compiled
    colour kernel) run such callbacks; a Ctrl-C during a compile was lost in about 1 of 20 tries.
    """

    pending = False

    def __enter__(self):
        self._previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._raise)
            except ValueError:  # not the main thread
                pass
        return self

    @classmethod
    def _raise(cls, signum, frame):
        cls.pending = True
        timer = threading.Timer(2.0, cls._again, args=(signum,))
        timer.daemon = True
        timer.start()
        raise KeyboardInterrupt

    @classmethod
    def _again(cls, signum) -> None:
        if cls.pending:
            os.kill(os.getpid(), signum)

    @classmethod
    def handled(cls) -> None:
        cls.pending = False

    def __exit__(self, *exc_info):
        _interrupts.handled()
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


class _ignoring_sigint:
    """While a trial's end is being recorded, a second Ctrl-C waits (main thread only)."""

    def __enter__(self):
        self._previous = None
        try:
            self._previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:
            pass
        return self

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _quietly(call, *args) -> None:
    """Tracking calls on the way out of a failed trial must not hide the trial's own error."""
    try:
        call(*args)
    except Exception as error:
        print(f"warning: MLflow: {_one_line(error)}", file=sys.stderr)


def _one_line(error: BaseException) -> str:
    text = redact(" ".join(str(error).split()))
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text[:500] + ("..." if len(text) > 500 else "")


if __name__ == "__main__":
    sys.exit(main())
