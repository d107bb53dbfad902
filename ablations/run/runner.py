"""Running trials: claim a trial from the Optuna study, train it with the engine, record it in MLflow
and in Optuna, until the study has no work left.

One `Runner` per process (the only worker, or one of the worker processes). How a trial ends decides
what is recorded: complete, pruned, failed (a result: not run again unless asked), interrupted or its
store lost (run again on resume, from its checkpoint).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import optuna
import torch
import yaml
from optuna.trial import TrialState
from tqdm import tqdm

from ablations.stores import confirm, race, resume, search
from ablations.messages import one_line
from ablations.design.plan import flat_config
from ablations.run import console
from ablations.run.session import Session, log_spread
from ablations.run.signals import ignoring_sigint, interrupts
from ablations.stores.identity import PLACE_KEYS
from ablations.stores.search import Claim
from ablations.stores.errors import StoreCannotWrite, StoreUnavailable, is_disk_error
from ablations.design.plan import cell_name
from ablations.stores.tracking import (
    CONFIG_TAG, CONFIRM_TAG, FLOOR_TAG, OP_TAG_PREFIX, OPS_TAG, RACE_TAG, ROLE_TAG, RUNG_TAG, STUDY_TAG, TRIAL_ROLE,
    TrialRun, phase_metric, rounded,
)
from simclr_core.preview import render_preview
from simclr_core import checkpoint
from simclr_core.config import DataConfig, RunConfig
from simclr_core.data import Dataset, load_dataset
from simclr_core.trainer import EpochMetrics, RunResult, describe_device, select_device, train

# Images in a trial's augmentation preview.
PREVIEW_IMAGES = 8


class DataCache:
    """The data set of the last trial, reused while consecutive trials' data configs are equal."""

    def __init__(self) -> None:
        self._key: str | None = None
        self._dataset: Dataset | None = None
        self._digest: str | None = None

    def get(self, config: DataConfig) -> Dataset:
        key = json.dumps(asdict(config), sort_keys=True)
        if key != self._key:
            self._dataset, self._key, self._digest = None, None, None
            self._dataset = load_dataset(config)
            self._key = key
        return self._dataset

    def digest(self, dataset: Dataset) -> str:
        """SHA-256 (16 hex digits) of the images and labels a trial trains and probes on, once per data set
        (about 0.3 s for CIFAR-10)."""
        if self._digest is None or dataset is not self._dataset:
            digest = hashlib.sha256()
            for array in (dataset.train_images, dataset.train_labels, dataset.test_images, dataset.test_labels):
                digest.update(array.contiguous().numpy().tobytes())
            self._digest = digest.hexdigest()[:16]
        return self._digest

    def clear(self) -> None:
        self._key, self._dataset, self._digest = None, None, None


@dataclass
class Outcome:
    number: int
    run_name: str
    state: str  # COMPLETE | PRUNED | FAIL
    line: str  # one-line summary


@dataclass
class _Attempt:
    """One trial as far as this process got with it: what the handlers of its end must close."""

    claim: Claim
    trial_dir: Path
    config: RunConfig | None = None
    run: TrialRun | None = None
    bar: tqdm | None = None
    first_epoch: int | None = None  # the first epoch this process trained (later ones on a resume)
    data_seconds: float = 0.0  # getting the data set: loading it on a worker's first trial, else the cache
    preview_seconds: float = 0.0  # the augmentation preview (a process's first colour op compiles its kernel)

    def on_progress(self, phase: str, done: int, total: int) -> None:
        """The engine's live progress: steps within the epochs, then the kNN monitor and the probe."""
        bar = self.bar
        if bar is None:
            return
        if phase == "train":
            if bar.total != total:
                bar.reset(total=total)
                bar.unit = "step"
            bar.n = done
            bar.refresh()
        else:
            bar.set_description_str(f"  {self.claim.run_name} [{'kNN monitor' if phase == 'knn' else 'linear probe'}]")

    def on_epoch(self, metrics: EpochMetrics) -> None:
        """The engine's callback: log the epoch, show it, and let Optuna's pruner judge its kNN."""
        trial, bar = self.claim.trial, self.bar
        if self.first_epoch is None:
            self.first_epoch = metrics.epoch
        self.run.log_epoch(metrics)
        trial.set_user_attr("progress", {"epoch": metrics.epoch, "epochs": self.config.train.epochs,
                                         "loss": metrics.loss})
        if bar is not None:
            bar.set_description_str(f"  {self.claim.run_name}")
            bar.set_postfix(epoch=f"{metrics.epoch}/{self.config.train.epochs}", loss=f"{metrics.loss:.3f}",
                            knn="-" if metrics.knn_acc is None else f"{metrics.knn_acc:.3f}")
        if metrics.knn_acc is not None:
            trial.report(rounded("knn_acc", metrics.knn_acc), metrics.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {metrics.epoch} (knn_acc {metrics.knn_acc:.3f})")


class Runner:
    """Claims trials and runs them, one at a time, until the study has no work left."""

    def __init__(self, session: Session, data: DataCache, show_progress: bool):
        self.session = session
        self.spec = session.spec
        self.data = data
        self.show_progress = show_progress
        self.outer: tqdm | None = None  # the bar over trials, where this process shows one

    def loop(self, poll_s: float) -> list[Outcome]:
        outcomes = []
        study = self.session.study
        while True:
            claim = search.claim_next(study, self.spec)
            if claim is not None:
                outcome = self.run_trial(claim)
                outcomes.append(outcome)
                console.write(outcome.line, self.outer)
                if self.outer is not None:
                    self.outer.n = resume.units_done(study)
                    self.outer.refresh()
                continue
            if resume.fail_stale(study):  # a dead worker's trial: its cell comes back as WAITING
                self.session.tracker.sweep(self.session.study_uid, study.get_trials(deepcopy=False))
            waiting, running = search.work_left(study, self.spec)
            if waiting or (not running and resume.requeue_orphans(study)):
                continue
            if not running and self.spec.race is not None:  # a rung complete: the race decides the next
                added, lines = race.enqueue_rung(study, self.spec)
                for line in lines:
                    console.write(line, self.outer)
                if not added:
                    return outcomes
                console.write(f"race: {len(added)} trial(s) added", self.outer)
                if self.outer is not None:
                    self.outer.total += len(added)
                continue
            if not running:
                round_ = confirm.enqueue_round(study, self.spec)
                for line in round_.lines:  # what it spends seeds on, and what the cap cannot decide
                    console.write(line, self.outer)
                if not round_.added:
                    return outcomes
                console.write(console.confirmation_line(len(round_.added), (u.seed for u in round_.added)), self.outer)
                if self.outer is not None:
                    self.outer.total += len(round_.added)
            time.sleep(poll_s)  # other workers' trials: wait to see them finish or die

    def config_for(self, claim: Claim) -> RunConfig:
        """The configuration enqueued for the trial, with this machine's places (data.root, ...)."""
        config = RunConfig.from_plain(claim.attrs["config"])
        for key in PLACE_KEYS - set(claim.varied):  # a study may vary one of them on purpose
            config.set(key, self.spec.base.get(key))
        return config

    def run_trial(self, claim: Claim) -> Outcome:
        attempt = _Attempt(claim, self.session.runs_dir / claim.attrs["checkpoint"])
        attempt.trial_dir.mkdir(parents=True, exist_ok=True)
        with claim.heartbeat():
            try:
                return self._train(attempt)
            except optuna.TrialPruned as pruned:
                return self._pruned(attempt, pruned)
            except StoreUnavailable as lost:
                self._store_lost(attempt, lost)
                raise
            except KeyboardInterrupt:
                self._interrupted(attempt)
                raise
            except Exception as error:
                if interrupts.pending:
                    # A Ctrl-C that a library turned into its own error (torch.save's zip writer reports a
                    # KeyboardInterrupt raised in its write callback as "RuntimeError: [enforce fail at
                    # inline_container.cc] unexpected pos"): an interruption, not the configuration's failure.
                    self._interrupted(attempt)
                    raise KeyboardInterrupt from error
                if is_disk_error(error):
                    # A full or read-only disk is no result of the configuration: handled as a lost store
                    # (the trial runs again on the rerun), not recorded as its failure.
                    lost = StoreCannotWrite(f"this trial's folder {attempt.trial_dir}", error, attempt.trial_dir)
                    self._disk_refused(attempt, lost)
                    raise lost from error
                return self._failed(attempt, error)
            finally:
                if attempt.bar is not None:
                    attempt.bar.close()

    def _train(self, attempt: _Attempt) -> Outcome:
        claim, trial_dir = attempt.claim, attempt.trial_dir
        config = attempt.config = self.config_for(claim)
        run = attempt.run = self._start_run(claim, config)
        claim.trial.set_user_attr("mlflow_run_id", run.run_id)
        started = time.perf_counter()
        dataset = self.data.get(config.data)
        attempt.data_seconds = time.perf_counter() - started
        attempt.preview_seconds = self._log_inputs(run, config, dataset, trial_dir)
        checkpoint.drop_if_foreign(trial_dir, config)
        if self.show_progress:
            attempt.bar = console.epoch_bar(claim.run_name, config.train.epochs)
        result = train(config, callback=attempt.on_epoch, checkpoint_dir=trial_dir, dataset=dataset,
                       progress=attempt.on_progress)
        return self._complete(attempt, result)

    def _pruned(self, attempt: _Attempt, pruned: optuna.TrialPruned) -> Outcome:
        claim, run = attempt.claim, attempt.run
        search.finish(self.session.study, claim, state=TrialState.PRUNED, attrs={"pruned": str(pruned)})
        if run is not None:
            run.set_tags({"ablations.pruned": str(pruned)})
            run.end("FINISHED")
        checkpoint.remove(attempt.trial_dir)
        return Outcome(claim.number, claim.run_name, "PRUNED", f"trial {claim.number:>3} {claim.run_name}: {pruned}")

    def _store_lost(self, attempt: _Attempt, lost: StoreUnavailable) -> None:
        # Left RUNNING in Optuna: its heartbeat stops with this process, so a surviving worker
        # declares it dead and runs the cell again, as for a worker that died.
        run = attempt.run
        if run is not None and lost.store != self.session.tracker.label:
            _quietly(run.set_tags, {"ablations.killed": f"its worker stopped: {lost}"})
            _quietly(run.end, "KILLED")

    def _disk_refused(self, attempt: _Attempt, lost: StoreCannotWrite) -> None:
        # FAIL without an `error`, as an interrupted trial, so that the rerun runs the unit again at once;
        # where the journal is on the full disk too this fails, the trial stays RUNNING and its silent
        # heartbeat does the same, later.
        try:
            search.finish(self.session.study, attempt.claim, state=TrialState.FAIL, attrs={"outcome": "disk refused"})
        except Exception:
            pass  # the error raised next names the disk; this one would say the same
        self._store_lost(attempt, lost)

    def _interrupted(self, attempt: _Attempt) -> None:
        # Marked so the rerun's resume enqueues the cell again; its checkpoint is kept, so the
        # rerun continues from the last finished epoch. A second Ctrl-C must not cut this short.
        interrupts.handled()
        with ignoring_sigint():
            search.finish(self.session.study, attempt.claim, state=TrialState.FAIL, attrs={"outcome": "interrupted"})
            if attempt.run is not None:
                _quietly(attempt.run.set_tags, {"ablations.killed": "interrupted (Ctrl-C or SIGTERM); rerunning the "
                                                "study runs its cell again, from its last checkpoint"})
                _quietly(attempt.run.end, "KILLED")

    def _failed(self, attempt: _Attempt, error: Exception) -> Outcome:
        """Recorded as a result (error.txt, the message in both stores); called while handling it."""
        claim, run, trial_dir = attempt.claim, attempt.run, attempt.trial_dir
        message = one_line(error, limit=500, with_type=True)
        (trial_dir / "error.txt").write_text(traceback.format_exc())
        search.finish(self.session.study, claim, state=TrialState.FAIL, attrs={"error": message})
        if run is not None:
            _quietly(run.log_artifact, trial_dir / "error.txt")
            _quietly(run.end, "FAILED", message)
        checkpoint.remove(trial_dir)
        return Outcome(claim.number, claim.run_name, "FAIL", f"trial {claim.number:>3} {claim.run_name}: FAILED: {message}")

    def _start_run(self, claim: Claim, config: RunConfig) -> TrialRun:
        session = self.session
        attrs = claim.attrs
        if config.train.num_threads:  # as train() will, so that the device tag tells the truth
            torch.set_num_threads(config.train.num_threads)
        tags = {
            ROLE_TAG: TRIAL_ROLE, STUDY_TAG: self.spec.name, "ablations.study_uid": session.study_uid,
            "optuna.study": self.spec.name, "optuna.trial": str(claim.number),
            "ablations.cell": attrs["cell"], "ablations.unit": attrs["unit"],
            CONFIG_TAG: cell_name(attrs["cell"]),
            "ablations.varied": json.dumps(attrs["varied"]), "ablations.seed": str(attrs["seed"]),
            "ablations.worker": attrs["worker"], "torch_version": torch.__version__,
            "device": describe_device(select_device(config.train.device)), **session.env_tags,
        }
        if attrs.get("pair"):
            tags["ablations.first"], tags["ablations.second"] = attrs["pair"]
        if "retry_of" in claim.trial.user_attrs:
            tags["ablations.retry_of"] = str(claim.trial.user_attrs["retry_of"])
        if attrs.get("floor"):
            tags[FLOOR_TAG] = "true"
        if attrs.get("confirm"):
            tags[CONFIRM_TAG] = attrs["confirm"]
        if attrs.get("rung") is not None:
            tags[RUNG_TAG], tags[RACE_TAG] = str(attrs["rung"]), attrs.get("race", "survivor")
        sources = {spec.op: self.spec.ops[spec.op] for spec in config.augment.pipeline if spec.op in self.spec.ops}
        tags[OPS_TAG] = json.dumps({name: source.record() for name, source in sources.items()}, sort_keys=True)
        tags.update({OP_TAG_PREFIX + name: source.label() for name, source in sources.items()
                     if source.kind != "built-in"})
        params = {key: value if isinstance(value, str) else json.dumps(value)
                  for key, value in flat_config(config).items()}
        return session.tracker.start_trial(session.parent_run_id, claim.run_name, tags, params)

    def _log_inputs(self, run: TrialRun, config: RunConfig, dataset: Dataset, trial_dir: Path) -> float:
        """config.yaml and the augmentation preview (a broken preview does not cost the trial); returns the
        seconds the preview took to make."""
        config_path = trial_dir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config.to_plain(), sort_keys=False))
        run.log_artifact(config_path)
        run.log_dataset(f"{config.data.dataset} train", self.data.digest(dataset), dataset.source,
                        {"train_images": len(dataset.train_images), "test_images": len(dataset.test_images),
                         "image_shape": list(dataset.train_images.shape[1:]), "classes": len(dataset.classes)})
        if not self.spec.tracking.preview:
            return 0.0
        started = time.perf_counter()
        try:
            generator = torch.Generator().manual_seed(config.train.seed)
            path = render_preview(dataset.train_images[:PREVIEW_IMAGES], config.augment, generator,
                                  trial_dir / "augment_preview.png", n_views=config.train.n_views)
            seconds = time.perf_counter() - started
            run.log_artifact(path)
        except Exception as error:
            seconds = time.perf_counter() - started
            run.set_tags({"ablations.preview_error": one_line(error, limit=500, with_type=True)})
        return seconds

    def _complete(self, attempt: _Attempt, result: RunResult) -> Outcome:
        claim, run, config, trial_dir = attempt.claim, attempt.run, attempt.config, attempt.trial_dir
        # Epochs restored from a checkpoint (a retried trial) were logged by the dead run; log them here
        # too, so every finished run holds the whole history.
        first = attempt.first_epoch or (len(result.history) + 1)
        for metrics in result.history:
            if metrics.epoch < first:
                run.log_epoch(metrics)
        value = result.probe_h if result.probe_h is not None else result.knn_acc
        if value is None or not math.isfinite(value):
            raise RuntimeError(f"no objective: probe_h={result.probe_h}, knn_acc={result.knn_acc}")
        run.log_metrics({"probe_h": result.probe_h, "probe_z": result.probe_z, "wall_time_s": result.wall_time_s,
                         # what the probe was fitted on and scored on, and where the trial's time went
                         "train_images": result.train_images, "test_images": result.test_images,
                         phase_metric("data"): attempt.data_seconds, phase_metric("preview"): attempt.preview_seconds,
                         **{phase_metric(phase): seconds for phase, seconds in result.phase_seconds.items()}})
        if self.spec.tracking.log_model and config.train.epochs > 0:
            run.log_artifact(checkpoint.export_weights(trial_dir))
        run.log_metrics({phase_metric("tracking"): run.seconds})
        # Optuna holds the values MLflow shows (optuna-dashboard, the terminal's lines and summary).
        results = {key: None if number is None else rounded(key, number) for key, number in (
            ("probe_h", result.probe_h), ("probe_z", result.probe_z), ("knn_acc", result.knn_acc),
            ("wall_time_s", result.wall_time_s))}
        value = rounded("probe_h", value)
        if search.finish(self.session.study, claim, value=value, state=TrialState.COMPLETE,
                         attrs={**results, "device": result.device}):
            run.set_tags({"device": result.device, "colour_ops": result.colour_ops})
            run.end("FINISHED")
            log_spread(self.session, claim.attrs["cell"])
        else:
            run.set_tags({"ablations.killed": "declared dead by another worker while running; its cell ran again"})
            run.end("KILLED")
        checkpoint.remove(trial_dir)
        z = f" probe_z {console.fmt(results['probe_z'])}" if result.probe_z is not None else ""
        knn = f" knn {console.fmt(results['knn_acc'])}" if result.knn_acc is not None else ""
        return Outcome(claim.number, claim.run_name, "COMPLETE",
                       f"trial {claim.number:>3} {claim.run_name}: probe_h {console.fmt(results['probe_h'])}{z}{knn} "
                       f"({result.wall_time_s:.0f} s)")


def _quietly(call: Callable[..., object], *args: object) -> None:
    """Tracking calls on the way out of a failed trial must not hide the trial's own error."""
    try:
        call(*args)
    except Exception as error:
        print(f"warning: MLflow: {one_line(error, limit=500, with_type=True)}", file=sys.stderr)


# ----------------------------------------------------------------------------------------------------
# A trial's checkpoint folder (to be replaced by the engine's checkpoint API)
