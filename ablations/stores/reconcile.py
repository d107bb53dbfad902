"""The MLflow records and the Optuna storage: two witnesses of one study, read side by side on a start.

Each unit of work is recorded in both: its trial in Optuna (user attr `unit`), its run in MLflow (tag
`ablations.unit`, under the study's uid). Optuna decides what runs next, so a storage that lost results (a
journal cut short, restored from an old copy, or damaged in its tail) would have finished units trained
again, and the report would count the copies as seeds. A start therefore reads what MLflow holds first
(`read_records`: the study's parent runs and its finished trial runs), then:

- `check_place`: one study, one place. A study whose parent runs were all made under another Optuna
  storage (recorded on each parent as `optuna.storage`) is refused, naming that storage and the flag to
  pass: run without it, a new, empty study would train everything again beside the old one.
- `recover` (from `resume.prepare`, before dead trials are looked for): every unit with a finished MLflow
  run and no result in Optuna gets that result written back into Optuna, and its waiting copies retired,
  so it is not trained again. A trial that MLflow holds finished but Optuna left RUNNING (the trial's own
  last lines lost) is completed in place rather than taken for dead.

Nothing here imports MLflow or Optuna at the top: both arrive through the objects passed in.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from ablations.stores.identity import DONE_STATES, PLACE_KEYS, unit_of
from ablations.design.plan import StudySpec, flat_config
from ablations.stores.errors import SearchError, mask_url

# On a trial recorded in Optuna from its MLflow run: the run it was read from.
RECOVERED_ATTR = "recovered_from"
# The results a finished trial carries in Optuna, as the runner writes them.
RESULT_KEYS = ("probe_h", "probe_z", "knn_acc", "wall_time_s")


@dataclass
class Parent:
    run_id: str
    uid: str | None
    storage: str | None  # the Optuna storage it ran with (tag optuna.storage); None for a study begun before it
    start_time: int


@dataclass
class FinishedRun:
    """A trial run that ended FINISHED: a result (complete or pruned) as MLflow holds it."""

    run_id: str
    uid: str | None
    unit: str
    trial: int | None
    run_name: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    start_time: int

    @property
    def pruned(self) -> bool:
        return "ablations.pruned" in self.tags


@dataclass
class Records:
    """What the tracking store holds of a study name, read once before the Optuna study is opened."""

    parents: list[Parent] = field(default_factory=list)
    finished: list[FinishedRun] = field(default_factory=list)

    def finished_of(self, uid: str | None) -> list[FinishedRun]:
        return [run for run in self.finished if run.uid == uid]


def read_records(tracker: Any, study_name: str) -> Records:
    """The study's parent runs and finished trial runs in `tracker`'s store; none where its experiment does
    not exist yet (nothing is created here)."""
    experiment = tracker.call(tracker.client.get_experiment_by_name, study_name)
    if experiment is None or experiment.lifecycle_stage == "deleted":
        return Records()
    ids = [experiment.experiment_id]
    parents = tracker.call(tracker.client.search_runs, ids, filter_string="tags.`ablations.role` = 'parent'",
                           order_by=["attributes.start_time ASC"], max_results=5000)
    runs = tracker.call(tracker.client.search_runs, ids, filter_string=(
        "attributes.status = 'FINISHED' and tags.`ablations.role` = 'trial'"),
        order_by=["attributes.start_time ASC"], max_results=5000)
    records = Records([Parent(run.info.run_id, run.data.tags.get("ablations.study_uid"),
                              run.data.tags.get("optuna.storage"), run.info.start_time or 0) for run in parents])
    for run in runs:
        tags = run.data.tags
        if "ablations.unit" not in tags:
            continue
        trial = tags.get("optuna.trial")
        records.finished.append(FinishedRun(
            run.info.run_id, tags.get("ablations.study_uid"), tags["ablations.unit"],
            int(trial) if trial is not None and trial.isdigit() else None, run.info.run_name, dict(tags),
            dict(run.data.params), dict(run.data.metrics), run.info.start_time or 0))
    return records


def same_storage(recorded: str, label: str) -> bool:
    """Two storage labels name one storage: journal paths compared as paths, URLs as written (masked)."""
    if "://" not in recorded and "://" not in label:
        return os.path.normpath(os.path.abspath(recorded)) == os.path.normpath(os.path.abspath(label))
    return mask_url(recorded) == mask_url(label)


def check_place(records: Records, study_name: str, storage_label: str, tracking_uri: str) -> None:
    """Refuse to start a study whose runs in this tracking store were all made under another Optuna
    storage: it would be planned anew in this one and trained again under a second parent run."""
    known = [parent for parent in records.parents if parent.storage]
    if not known or any(same_storage(parent.storage, storage_label) for parent in known):
        return
    latest = known[-1]
    others = sorted({parent.storage for parent in known} - {latest.storage})
    also = f" (and earlier under {', '.join(others)})" if others else ""
    flag = f"--storage {latest.storage}"
    raise SearchError(
        f"study {study_name!r} already has runs in MLflow store {mask_url(tracking_uri)} under Optuna storage "
        f"{latest.storage} (recorded on its parent run {latest.run_id}){also}, not under {storage_label}; pass "
        f"{flag} to resume it, or give the study a new name to start another")


def recover(study: Any, spec: StudySpec, storage: Any, finished: list[FinishedRun]) -> list[str]:
    """Write into Optuna the result of every unit that MLflow holds finished (one of `finished`, the runs of
    this study's uid) and Optuna holds no result of; retire its waiting copies. Returns the recovered runs'
    names. A finished run whose configuration differs from what the file now plans for its unit is refused
    as `identity.check_identity` refuses a changed result (nothing is written then)."""
    from optuna.trial import TrialState, create_trial

    trials = study.get_trials(deepcopy=False)
    results = {unit_of(t) for t in trials if t.state in DONE_STATES}
    lost: dict[str, FinishedRun] = {}
    for run in finished:  # oldest first: the first finished run of a unit is its result
        if run.unit not in results:
            lost.setdefault(run.unit, run)
    if not lost:
        return []
    planned = {p.unit: p for p in spec.possible_trials()} if spec.search.sampler == "grid" else {}
    writes = [(run, _attrs(run, planned.get(run.unit), spec)) for run in lost.values()]  # all checked first
    study_id = storage.get_study_id_from_name(spec.name)
    for run, attrs in writes:
        state = TrialState.PRUNED if run.pruned else TrialState.COMPLETE
        value = None if run.pruned else _value(run)
        same = next((t for t in trials if t.number == run.trial and t.state == TrialState.RUNNING
                     and unit_of(t) == run.unit), None)
        if same is not None:  # the very trial: its end was lost, not its process
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, same.number)
            for key, item in attrs.items():
                storage.set_trial_user_attr(trial_id, key, item)
            storage.set_trial_state_values(trial_id, state, None if value is None else [value])
            kept = same.number
        else:
            study.add_trial(create_trial(state=state, value=value, user_attrs=attrs))
            kept = study.get_trials(deepcopy=False)[-1].number
        for waiting in trials:
            if waiting.state == TrialState.WAITING and unit_of(waiting) == run.unit:
                trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, waiting.number)
                if storage.set_trial_state_values(trial_id, TrialState.RUNNING):  # as a claim: one process
                    storage.set_trial_user_attr(trial_id, "duplicate_of", kept)
                    storage.set_trial_state_values(trial_id, TrialState.FAIL)
    return [run.run_name for run, _ in writes]


def _value(run: FinishedRun) -> float:
    value = run.metrics.get("probe_h", run.metrics.get("knn_acc"))
    if value is None:
        raise SearchError(f"MLflow run {run.run_id} ({run.run_name}) is FINISHED but has no probe_h or knn_acc; "
                          "mark it FAILED or delete it in MLflow, then rerun")
    return value


def _attrs(run: FinishedRun, planned: Any, spec: StudySpec) -> dict[str, Any]:
    """A recovered trial's user attrs: its plan (as the runner tags its run) and its results."""
    tags = run.tags
    varied = json.loads(tags.get("ablations.varied", "{}"))
    if planned is not None:
        _check_config(run, planned.config, spec)
        config = planned.config.to_plain()
    else:
        try:
            config = spec.config_for_plain(varied).to_plain()
        except Exception:  # a sampled value the file's base no longer takes: kept without one
            config = None
    attrs: dict[str, Any] = {
        "unit": run.unit, "cell": tags.get("ablations.cell"), "seed": int(tags.get("ablations.seed", "0")),
        "varied": varied, "run_name": run.run_name, "mlflow_run_id": run.run_id, RECOVERED_ATTR: run.run_id,
        "pair": [tags["ablations.first"], tags["ablations.second"]] if "ablations.first" in tags else None,
    }
    if config is not None:
        attrs["config"] = config
    if tags.get("ablations.floor") == "true":
        attrs["floor"] = True
    if tags.get("ablations.confirm"):
        attrs["confirm"] = tags["ablations.confirm"]
    if tags.get("ablations.rung"):  # a race's unit: its rung and its role (tracking's RUNG_TAG, RACE_TAG)
        attrs["rung"] = int(tags["ablations.rung"])
        attrs["race"] = tags.get("ablations.race", "survivor")
    if "device" in tags:
        attrs["device"] = tags["device"]
    attrs.update({key: run.metrics[key] for key in RESULT_KEYS if key in run.metrics})
    if run.pruned:
        attrs["pruned"] = tags["ablations.pruned"]
    return attrs


def _check_config(run: FinishedRun, config: Any, spec: StudySpec) -> None:
    now = {key: value if isinstance(value, str) else json.dumps(value)
           for key, value in flat_config(config).items() if key not in PLACE_KEYS}
    changed = sorted(key for key, value in now.items() if key in run.params and run.params[key] != value)
    if changed:
        examples = ", ".join(f"{key}: {run.params[key]} -> {now[key]}" for key in changed[:3])
        raise SearchError(
            f"study {spec.name!r} already ran {run.unit!r} with another configuration ({examples}; MLflow run "
            f"{run.run_id}); give the study a new name, or remove runs/{spec.name} (or the --storage study) "
            "to start over")
