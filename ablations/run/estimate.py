"""`--dry-run`: the trials a study file plans and an estimate of what they cost, after the checks a run makes
on its stores (`check_as_the_run_would`). Nothing is trained and no store is written (they are read).

The estimate should not be a timing of the moment: a trial of a cell the study has already run costs what
its recorded trials took; the others are timed on a few training steps by the CPU time this process gets
(not by the wall clock, which other work on the machine stretches: one estimate was 11.5x another an hour
apart), as if the trial had its cores to itself, and the line says the load it was measured at.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections import Counter
from pathlib import Path

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from ablations.stores import confirm, reconcile, resume, search
from ablations.stores.identity import check_identity
from ablations.messages import duration, one_line
from ablations.design.plan import StudySpec, format_value
from ablations.run.op_loading import load_ops
from ablations.run.runner import DataCache
from ablations.stores.errors import mask_url, sqlite_path
from ablations.stores.tracking import Tracker
from ablations.stores.tracking_store import resolve_tracking_uri
from simclr_core.augmentations import make_views
from simclr_core.config import RunConfig
from simclr_core.data import Dataset
from simclr_core.trainer import Setup, build, describe_device, select_device, training_step

# The timed batch grows from this size (or the configured batch, if smaller) ...
FIRST_TIMED_BATCH = 32
# ... until a step takes this long, or the configured batch is reached.
LONG_ENOUGH_STEP_S = 0.5
# A trial's fixed costs: its tracking and preview; one L-BFGS fit of the linear probe.
TRACKING_S = 1.5
PROBE_FIT_S = 2.0


def dry_run(spec: StudySpec, args: argparse.Namespace) -> int:
    space = spec.search
    load_ops(spec)  # the ops' contract, as a run checks it before its first trial
    for name, source in spec.ops.items():
        if source.kind != "built-in":
            print(f"op {name}: {source.label()}; its contract holds")
    trials = check_as_the_run_would(spec, args)
    if space.sampler == "grid":
        planned = spec.trials()
        floor = sum(trial.cell.floor for trial in planned)
        cells = (len(planned) - floor) // len(spec.seeds)
        print(f"study {spec.name} ({spec.source}): grid, {cells} cells x {len(spec.seeds)} seeds = "
              f"{len(planned) - floor} trials" + (f", plus {floor} of the untrained floor" if floor else ""))
        states = unit_states(trials)
        for index, trial in enumerate(planned):
            print(f"  {index:>4}  {trial.run_name:<40} {states.get(trial.unit, 'to do')}")
        if states:
            counts = Counter(states.get(trial.unit, "to do") for trial in planned)
            print("recorded: " + ", ".join(f"{counts[state]} {state}" for state in STATE_ORDER if counts[state])
                  + f" (the estimate below is for what is left{'' if args.retry_failed else ', failed ones kept'})")
            left = {"to do", "running"} | ({"failed"} if args.retry_failed else set())
            planned = [trial for trial in planned if states.get(trial.unit, "to do") in left]
        if spec.verdict:
            print(f"verdict rule: {spec.verdict}")
        if spec.confirm:
            print(f"confirmation: up to {spec.confirm_limit()} more trials (seeds added where they can still change "
                  f"the verdict, up to {spec.confirm.max_seeds} seeds per configuration)")
            for line in confirm.plan_round(spec, trials).lines:  # a started study: what the next round would do
                print(line)
        configs = [trial.config for trial in planned]
        recorded = recorded_seconds(trials)
        known = [statistics.fmean(recorded[trial.cell.id]) if trial.cell.id in recorded else None
                 for trial in planned]
    else:
        print(f"study {spec.name} ({spec.source}): {space.sampler}, {space.n_trials} trials, "
              f"seed {spec.seeds[0]}, pruner {space.pruner}")
        for key, param in space.params.items():
            if param.type == "categorical":
                print(f"  {key}: one of {', '.join(format_value(c) for c in param.choices)}")
            else:
                print(f"  {key}: {param.type} in [{param.low}, {param.high}]{' (log)' if param.log else ''}")
        configs = [spec.base] * space.n_trials
        known = [None] * len(configs)
    if not configs:
        print("nothing left to run; rerun without --dry-run to finish the study's records and report")
        return 0
    timed = [config for config, seconds in zip(configs, known) if seconds is None]
    per_trial = [seconds for seconds in known if seconds is not None]
    hows = [f"{len(per_trial)} from the recorded trials of their cells"] if per_trial else []
    if timed:
        try:
            seconds, how = estimate_trial_seconds(timed, workers=args.workers)
        except Exception as error:  # the data set is missing, say: still a useful dry run
            print(f"estimate unavailable: {one_line(error, limit=500, with_type=True)}")
            return 0
        per_trial += seconds
        hows.append(f"{len(seconds)} {how}" if hows else how)
    how = "; ".join(hows)
    total = sum(per_trial) / args.workers
    print(f"estimate: {duration(statistics.fmean(per_trial))} per trial, {duration(total)} in all with "
          f"{args.workers} worker{'s' if args.workers > 1 else ''} ({how})")
    print("nothing was trained (--dry-run)")
    return 0


STATE_ORDER = ("done", "failed", "running", "to do")


def check_as_the_run_would(spec: StudySpec, args: argparse.Namespace) -> list[FrozenTrial]:
    """The checks a run makes on its stores before it plans anything, read-only: one study, one place
    (`reconcile.check_place`, where the tracking store exists) and the study's identity against the edited
    file (`identity.check_identity`). A refusal is raised as the run would raise it, so a dry run and the
    run agree. Returns the study's recorded trials."""
    tracking = resolve_tracking_uri(args.tracking_uri)
    database = sqlite_path(tracking)
    if database is None or Path(database).expanduser().is_file():  # a missing SQLite store is not made here
        tracker = Tracker(tracking, retry_for=args.retry_for)
        journal = Path(args.runs_dir) / spec.name / "optuna.journal"
        label = mask_url(args.storage) if args.storage else str(journal)
        reconcile.check_place(reconcile.read_records(tracker, spec.name), spec.name, label, tracking)
    study, trials = recorded_trials(spec, args)
    if study is not None and trials:
        check_identity(study, spec, trials, None, write=False)
    return trials


def recorded_trials(spec: StudySpec, args: argparse.Namespace) -> tuple[optuna.Study | None, list[FrozenTrial]]:
    """The study and its trials in its Optuna records where they exist; (None, []) for a study not started
    (nothing is created: a dry run writes nothing)."""
    journal = Path(args.runs_dir) / spec.name / "optuna.journal"
    if args.storage is None and not journal.exists():
        return None, []
    if args.storage is not None and args.storage.endswith(".journal") and not Path(args.storage).exists():
        return None, []
    try:
        storage = search.open_storage(args.storage, journal, args.heartbeat_interval, retry_for=args.retry_for)
        study = optuna.load_study(study_name=spec.name, storage=storage)
        return study, study.get_trials(deepcopy=False)
    except KeyError:  # no study of this name in that storage yet
        return None, []


def recorded_seconds(trials: list[FrozenTrial]) -> dict[str, list[float]]:
    """cell -> the wall times of its complete trials: what a trial of that cell costs on this machine,
    over whatever load each ran under."""
    seconds: dict[str, list[float]] = {}
    for trial in trials:
        if trial.state == TrialState.COMPLETE and "wall_time_s" in trial.user_attrs and "cell" in trial.user_attrs:
            seconds.setdefault(trial.user_attrs["cell"], []).append(float(trial.user_attrs["wall_time_s"]))
    return seconds


def unit_states(trials: list[FrozenTrial]) -> dict[str, str]:
    """unit -> done / failed / running / to do, from the study's trials."""
    states: dict[str, str] = {}
    rank = {state: index for index, state in enumerate(STATE_ORDER)}
    for trial in trials:
        if "duplicate_of" in trial.user_attrs:
            continue
        if resume.is_done(trial, retry_failed=False):
            state = "failed" if trial.state == TrialState.FAIL else "done"
        elif trial.state == TrialState.RUNNING:
            state = "running"
        else:
            state = "to do"
        unit = search.unit_of(trial)
        if unit not in states or rank[state] < rank[states[unit]]:
            states[unit] = state
    return states


def estimate_trial_seconds(configs: list[RunConfig], workers: int = 1) -> tuple[list[float], str]:
    """Seconds per trial from timing training steps on real images, scaled to the trial's epochs,
    data size, kNN monitor and probe. Batches grow from 32 until a step takes half a second or the
    configured batch is reached (per-image cost changes with the batch: caches on a CPU, occupancy on
    a GPU). The model step is timed once per model, the views once per augmentation. On a CPU the
    timing is this process's CPU time over its threads (`_Clock`): what the trial costs with its cores
    to itself, whatever else runs now. A rough guide, ±50%."""
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
            model_costs[model_key] = _model_cost(config, dataset, device)
            how = f"from timed steps of {model_costs[model_key][1]} images on {describe_device(device)}"
            if device.type == "cpu":
                load, cores = os.getloadavg()[0], os.cpu_count() or 1
                how += (f", by CPU time, as if a trial had its cores to itself (load average {load:.1f} on "
                        f"{cores} cores now: other work makes trials slower)")
            how += "; roughly ±50%"
        model_cost, batch = model_costs[model_key]
        view_key = json.dumps([model_key, plain["augment"]])
        if view_key not in view_costs:
            view_costs[view_key] = _view_cost(config, dataset, device, batch)
        seconds.append(_trial_cost(config, dataset, model_cost, view_costs[view_key]))
    return seconds, how


class _Clock:
    """Seconds of work: on a CPU, this process's CPU time divided by its torch threads (the wall time
    of the same work on free cores; the wall clock also counts the time other processes hold the
    cores); on a GPU, the wall clock after a synchronise."""

    def __init__(self, device: torch.device):
        self.device = device

    def __call__(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return time.perf_counter()
        return time.process_time() / torch.get_num_threads()


def _model_cost(config: RunConfig, dataset: Dataset, device: torch.device) -> tuple[float, int]:
    """(seconds per image of a training step, the batch it was timed on)."""
    setup = build(config, device)
    batch = min(config.train.batch_size, FIRST_TIMED_BATCH)
    while True:
        step = _time_model_step(setup, dataset.train_images[:batch].to(device), config)
        if batch >= min(config.train.batch_size, len(dataset.train_images)) or step > LONG_ENOUGH_STEP_S:
            break
        batch = min(config.train.batch_size, 2 * batch)
    return step / batch, batch


def _view_cost(config: RunConfig, dataset: Dataset, device: torch.device, batch: int) -> float:
    """Seconds per image of making its views (mean of two timings, after a warm-up)."""
    images = dataset.train_images[:batch].to(device).float() / 255
    generator = torch.Generator(device=device).manual_seed(0)
    clock = _Clock(device)
    timed = []
    for _ in range(3):
        started = clock()
        make_views(images, config.augment, generator, n_views=config.train.n_views)
        timed.append(clock() - started)
    return statistics.fmean(timed[1:]) / batch


def _trial_cost(config: RunConfig, dataset: Dataset, model_cost: float, view_cost: float) -> float:
    """Seconds of one trial: its epochs of steps and views, kNN monitors, probe and tracking."""
    per_image = model_cost + view_cost
    forward_only = model_cost / (3 * config.train.n_views)  # no backward, one view
    n_train, n_test = len(dataset.train_images), len(dataset.test_images)
    trained = (n_train // config.train.batch_size) * config.train.batch_size
    cost = config.train.epochs * trained * per_image + TRACKING_S
    if config.probe.knn_every:
        evaluations = math.ceil(config.train.epochs / config.probe.knn_every)
        rows = min(config.probe.knn_train_rows, n_train) + min(config.probe.knn_test_rows, n_test)
        cost += evaluations * rows * forward_only
    if config.probe.enabled:
        fits = 2 if config.probe.probe_z else 1
        cost += (n_train + n_test) * forward_only + PROBE_FIT_S * fits  # features, then L-BFGS on them
    return cost


def _time_model_step(setup: Setup, images: torch.Tensor, config: RunConfig) -> float:
    """Seconds of one training step (trainer.training_step, as train() runs it) on unaugmented
    views, after two warm-ups."""
    views = [images.float() / 255] * config.train.n_views
    clock = _Clock(setup.device)
    steps = []
    for _ in range(4):
        started = clock()
        training_step(setup, views, config.train.temperature)
        steps.append(clock() - started)
    return statistics.fmean(steps[2:])
