"""A study's identity across reruns: which trials are one unit of work, which keys only say where
things are, and the checks that keep one study name to one design when its file is edited between runs
(a key added to the search is refused, a changed configuration of a finished unit is refused, waiting
trials take an edit made before any finished). `resume.prepare` runs them, `check_identity`, on every
resume.
"""

from __future__ import annotations


import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from ablations.stores.errors import SearchError
from ablations.design.plan import SEED_KEY, PlannedTrial, StudySpec, flat_config, flat_plain

# Config keys that say where things are on one machine, not what is trained: they may differ between
# the machines (and the reruns) of one study.
PLACE_KEYS = {"data.root", "data.cache_dir", "data.download", "train.num_threads", "train.device"}
DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def unit_of(trial: FrozenTrial) -> str:
    return trial.user_attrs.get("unit") or f"trial-{trial.number}"


DESIGN_ATTR = "ablations.varied_keys"


def check_identity(study: optuna.Study, spec: StudySpec, trials: list[FrozenTrial],
                   storage: BaseStorage | None, write: bool = True) -> tuple[list[PlannedTrial], int]:
    """The checks that keep one study name to one design, run on every resume before anything is planned:
    what the study varies (`_check_design`); every result (a COMPLETE or PRUNED trial) against the
    configuration the file now gives its unit, refused where it changed (say train.epochs: two studies
    under one name; places, PLACE_KEYS, may differ; a failed trial is no result, so a configuration that
    failed every trial may be corrected and run again with --retry-failed); then the waiting trials (an
    interrupted first start, say), which take an edit made before any result. Returns the planned units
    and how many waiting trials took (or, with write=False, the dry run's, would take) the edit."""
    _check_design(study, spec, trials, write)
    check_ops(study, spec, write)
    check_race(study, spec, trials, write)
    planned = spec.trials() if spec.search.sampler == "grid" else []
    # A race's later rungs are enqueued as it goes: their units are checked against the file too.
    by_unit = {p.unit: p.config for p in (spec.possible_trials() if planned else [])}
    replans = []
    for trial in trials:
        attrs = trial.user_attrs
        unit = unit_of(trial)
        result = trial.state in DONE_STATES and "varied" in attrs
        if "config" not in attrs or not (result or (trial.state == TrialState.WAITING and unit in by_unit)):
            continue
        # A unit no longer planned (a sampled trial, a cell since removed from the file): its own values
        # on the file's base.
        expected = by_unit[unit] if unit in by_unit else spec.config_for_plain(attrs["varied"])
        before = {k: v for k, v in flat_plain(attrs["config"]).items() if k not in PLACE_KEYS}
        now = {k: v for k, v in flat_config(expected).items() if k not in PLACE_KEYS}
        changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        if changed and result:
            examples = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed[:3])
            raise SearchError(
                f"study {spec.name!r} already ran {unit!r} with another configuration ({examples}); "
                f"give the study a new name, or remove runs/{spec.name} (or the --storage study) to start over")
        if changed:
            replans.append((trial.number, expected.to_plain()))
    if not write:
        return planned, len(replans)
    # Written once every result is known to match: a refused edit leaves the study as it was.
    study_id = storage.get_study_id_from_name(spec.name)
    for number, plain in replans:
        storage.set_trial_user_attr(storage.get_trial_id_from_study_id_trial_number(study_id, number), "config", plain)
    return planned, len(replans)


def _check_design(study: optuna.Study, spec: StudySpec, trials: list[FrozenTrial], write: bool = True) -> None:
    """What a study varies is its design: new seeds, new values of its keys, the floor or confirmation
    extend it, but a key added to or removed from the search would put two designs under one name (the
    report would average over the new key and count its effect as seed spread): refused, naming the keys.
    Studies begun before the design was recorded are judged by their trials' records."""
    now = sorted(spec.search.varied_keys)
    recorded = study.user_attrs.get(DESIGN_ATTR)
    if recorded is None:
        seen = {key for t in trials if not t.user_attrs.get("floor") and "duplicate_of" not in t.user_attrs
                for key in t.user_attrs.get("varied", {}) if key != SEED_KEY}
        recorded = sorted(seen) if seen else now
        if write:
            study.set_user_attr(DESIGN_ATTR, recorded)
    if sorted(recorded) != now:
        added, removed = sorted(set(now) - set(recorded)), sorted(set(recorded) - set(now))
        changes = "; ".join(([f"added {', '.join(added)}"] if added else [])
                            + ([f"removed {', '.join(removed)}"] if removed else []))
        raise SearchError(
            f"{spec.source}: study {spec.name!r} was planned varying {', '.join(recorded) or 'only the seed'}, and "
            f"the file now varies {', '.join(now) or 'only the seed'} ({changes}); new seeds or new values of "
            f"the same keys extend a study, other keys make another: give it a new name")


def changed_failures(trials: list[FrozenTrial], spec: StudySpec) -> dict[int, str]:
    """Failed trials (an error recorded: a result, not run again unless --retry-failed) whose unit the study
    file now gives another configuration: the user changed the file after the failure (raised the
    temperature the error advised), and a plain rerun would keep the failure. Trial number -> the change
    (`train.lr: 1e+30 -> 0.3`). Units with a result or a trial waiting or running are left out."""
    settled = {unit_of(t) for t in trials if t.state in DONE_STATES + (TrialState.WAITING, TrialState.RUNNING)}
    planned = {p.unit: p.config for p in spec.possible_trials()} if spec.search.sampler == "grid" else {}
    latest: dict[str, FrozenTrial] = {}
    for trial in trials:
        if trial.state == TrialState.FAIL and "error" in trial.user_attrs and unit_of(trial) not in settled:
            latest[unit_of(trial)] = trial
    changes = {}
    for unit, trial in latest.items():
        attrs = trial.user_attrs
        if "config" not in attrs or unit not in planned:
            continue
        before = {k: v for k, v in flat_plain(attrs["config"]).items() if k not in PLACE_KEYS}
        now = {k: v for k, v in flat_config(planned[unit]).items() if k not in PLACE_KEYS}
        changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        if changed:
            changes[trial.number] = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed[:3])
    return changes


OPS_ATTR = "ablations.ops"


def check_ops(study: optuna.Study, spec: StudySpec, write: bool = True) -> None:
    """The code behind the study's ops is part of its design: an op recorded by the study (`OPS_ATTR`: each
    op's kind, import path, package version and the sha256 of its module's file) must come from the same
    code now. An edited user op, a name now pointing elsewhere, other defaults in `ops:` or another
    library version is refused, saying how to start a new study; an op the study did not use before (a new
    pair) is added. Built-in ops are the engine's, recorded with every run's git commit."""
    recorded = dict(study.user_attrs.get(OPS_ATTR, {}))
    now = {name: source.record() for name, source in spec.ops.items()}
    for name, record in now.items():
        before = recorded.get(name)
        # The file's path may differ between machines and reruns (a place, like PLACE_KEYS); the code may not.
        changed = [key for key in ("kind", "target", "defaults", "package", "version", "sha256")
                   if before is not None and before.get(key) != record.get(key)]
        if not changed:
            continue
        what = ", ".join(f"{key} {_short(before.get(key))} -> {_short(record.get(key))}" for key in changed)
        raise SearchError(
            f"{spec.source}: study {spec.name!r} ran op {name} from other code ({what}): an edited op is another "
            f"design, and its runs would be averaged with the old op's; to run it, start a new study (give the "
            f"file a new name:, e.g. {spec.name}-2), or restore the op to resume this one")
    added = {name: record for name, record in now.items() if name not in recorded}
    if added and write:
        study.set_user_attr(OPS_ATTR, {**recorded, **added})


def _short(value: object) -> str:
    text = "none" if value in (None, "", {}) else str(value)
    return text[:12] if len(text) == 64 else text  # a sha256, as git shortens a commit


RACE_ATTR = "ablations.race"


def _race_plain(spec: StudySpec) -> dict | None:
    race = spec.race
    return None if race is None else {"rungs": list(race.rungs), "audit": {"cells": race.audit_cells,
                                                                            "seed": race.audit_seed}}


def _race_text(plain: dict | None) -> str:
    if plain is None:
        return "no race"
    audit = plain["audit"]
    return (f"race: {{rungs: {plain['rungs']}, audit: {{cells: {audit['cells']}, seed: {audit['seed']}}}}}"
            .replace("'", ""))


def check_race(study: optuna.Study, spec: StudySpec, trials: list[FrozenTrial], write: bool = True) -> None:
    """A race's rungs and audit are its design: the rungs decide which cells stop where, the audit seed
    which eliminated cells run on. Edited mid-race, the next rung would be enqueued by another rule than
    the one that stopped cells at the last (another audit seed drew new audit cells beside those run). So
    the `race:` a study started with is recorded, and another `race:` (or one added to or removed from a
    study with results) is refused on resume. Studies begun before it was recorded: a study whose trials
    carry a rung is taken to have raced as its file now says; one with results and no rung did not race."""
    now = _race_plain(spec)
    if RACE_ATTR in study.user_attrs:
        recorded = study.user_attrs[RACE_ATTR]
    elif any("rung" in t.user_attrs for t in trials):
        if now is None:  # a race begun before its race: was recorded: its trials' rungs say it raced
            rungs = sorted({int(t.user_attrs["rung"]) for t in trials if "rung" in t.user_attrs})
            _refuse_race(spec, f"a race (its trials ran at {', '.join(map(str, rungs))} epochs)", _race_text(now))
        recorded = now
    elif any(t.state in DONE_STATES and not t.user_attrs.get("floor") for t in trials):
        recorded = None
    else:
        recorded = now  # nothing ran yet: the file's race is the study's
    if recorded != now:
        _refuse_race(spec, _race_text(recorded), _race_text(now))
    if write and RACE_ATTR not in study.user_attrs:
        study.set_user_attr(RACE_ATTR, now)


def _refuse_race(spec: StudySpec, before: str, now: str) -> None:
    raise SearchError(
        f"{spec.source}: study {spec.name!r} ran with {before}, and the file now says {now}: the rungs and the "
        f"audit decide which cells stop where, so another race is another study: give the file a new name: "
        f"(e.g. {spec.name}-2), or restore its race: to resume")
