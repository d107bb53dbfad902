"""A study's identity across reruns: which trials are one unit of work, which keys only say where
things are, and the checks that keep one study name to one design when its file is edited between runs
(a key added to the search is refused, a changed configuration of a finished unit is refused, waiting
trials take an edit made before any finished). `search.prepare` runs them on every resume.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from ablations.optuna_storage import SearchError
from ablations.plan import SEED_KEY, PlannedTrial, StudySpec, flat_config, flat_plain
from ablations.study import coerce_value

# Config keys that say where things are on one machine, not what is trained: they may differ between
# the machines (and the reruns) of one study.
PLACE_KEYS = {"data.root", "data.cache_dir", "data.download", "train.num_threads", "train.device"}
DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def unit_of(trial: FrozenTrial) -> str:
    return trial.user_attrs.get("unit") or f"trial-{trial.number}"


DESIGN_ATTR = "ablations.varied_keys"


def check_design(study: optuna.Study, spec: StudySpec, trials: list[FrozenTrial]) -> None:
    """What a study varies is its design: new seeds, new values of its keys, the floor or confirmation
    extend it, but a key added to or removed from the search would put two designs under one name (the
    report would average over the new key and count its effect as seed spread): refused, naming the keys.
    Studies begun before the design was recorded are judged by their trials' records."""
    now = sorted(spec.search.varied_keys)
    recorded = study.user_attrs.get(DESIGN_ATTR)
    if recorded is None:
        seen = {key for t in trials if not t.user_attrs.get("floor") and not t.user_attrs.get("duplicate_of")
                for key in t.user_attrs.get("varied", {}) if key != SEED_KEY}
        recorded = sorted(seen) if seen else now
        study.set_user_attr(DESIGN_ATTR, recorded)
    if sorted(recorded) != now:
        added, removed = sorted(set(now) - set(recorded)), sorted(set(recorded) - set(now))
        changes = "; ".join(([f"added {', '.join(added)}"] if added else [])
                            + ([f"removed {', '.join(removed)}"] if removed else []))
        raise SearchError(
            f"{spec.source}: study {spec.name!r} was planned varying {', '.join(recorded) or 'only the seed'}, and "
            f"the file now varies {', '.join(now) or 'only the seed'} ({changes}); new seeds or new values of "
            f"the same keys extend a study, other keys make another: give it a new name")


def replan_waiting(spec: StudySpec, planned: list[PlannedTrial], trials: list[FrozenTrial],
                    storage: BaseStorage) -> int:
    """A waiting trial (an interrupted first start, say) still holds the configuration planned when it was
    enqueued; where the study file has been edited since, it takes the new one (no result was made with
    the old, or _check_drift would have refused). Returns how many changed."""
    by_unit = {p.unit: p.config for p in planned}
    study_id = storage.get_study_id_from_name(spec.name)
    replanned = 0
    for trial in trials:
        expected = by_unit.get(unit_of(trial))
        if trial.state != TrialState.WAITING or expected is None or "config" not in trial.user_attrs:
            continue
        if changed_keys(trial.user_attrs["config"], expected):
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            storage.set_trial_user_attr(trial_id, "config", expected.to_plain())
            replanned += 1
    return replanned


def changed_keys(plain: dict[str, Any], config) -> list[str]:
    """Dotted keys whose value differs between a recorded plain config and `config`, places aside."""
    before = {k: v for k, v in flat_plain(plain).items() if k not in PLACE_KEYS}
    now = {k: v for k, v in flat_config(config).items() if k not in PLACE_KEYS}
    return sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))


def check_drift(spec: StudySpec, planned: list[PlannedTrial], trials: list[FrozenTrial]) -> None:
    """A result (a COMPLETE or PRUNED trial) made with another configuration than the file now gives its
    values would mix two studies under one name (say train.epochs changed): refuse to resume. Places
    (PLACE_KEYS) may differ. Failed trials are no result: a configuration that failed every trial may be
    corrected and run again (--retry-failed)."""
    by_unit = {p.unit: p.config for p in planned}
    for trial in trials:
        attrs = trial.user_attrs
        if trial.state not in DONE_STATES or "config" not in attrs or "varied" not in attrs:
            continue
        expected = by_unit.get(unit_of(trial))
        if expected is None:  # a sampled trial, or a cell since removed from the file
            values = {key: coerce_value(key, value, spec.source, key)
                      for key, value in attrs["varied"].items() if key != SEED_KEY}
            expected = spec.config_for(values, attrs["varied"].get(SEED_KEY, spec.seeds[0]))
        changed = changed_keys(attrs["config"], expected)
        if changed:
            before = flat_plain(attrs["config"])
            now = flat_config(expected)
            examples = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed[:3])
            raise SearchError(
                f"study {spec.name!r} already ran {unit_of(trial)!r} with another configuration ({examples}); "
                f"give the study a new name, or remove runs/{spec.name} (or the --storage study) to start over")
