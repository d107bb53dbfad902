"""A study's results read from its Optuna trials (`run_result`: the trials as the rules' results rows;
`summary_of`: what the parent run shows at the end), and the confirmation step's next round enqueued
(which seeds a round adds, and why, is `ablations.stats.confirmation`'s).

The decision reads only the Optuna study (the finished trials' probe results, recorded in their user
attrs), which every worker and machine shares: whichever process finds the planned work done first
enqueues the round, and a unit enqueued twice is run once (`search.claim_next`'s duplicate check).
Each added unit records why it was added (user attr and MLflow tag `ablations.confirm`).
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from ablations.stores import resume, search
from ablations.design.plan import PlannedTrial, StudySpec, configuration_keys, table_value
from ablations.stats import confirmation
from ablations.stats.confirmation import RoundPlan
from ablations.stats.results import Best, RunResult, best_of, results_table
from ablations.stats.verdicts import Verdict


def run_result(trial: FrozenTrial) -> RunResult:
    """A trial as the rules' results read it (`ablations.stats.results`): this source's adapter. A trial
    that backed off as a duplicate of another (`duplicate_of`, a trial number: 0 is one) is not finished:
    the other holds its unit."""
    attrs = trial.user_attrs
    pair = attrs.get("pair")
    values = {"first": pair[0], "second": pair[1]} if pair else {}
    varied = attrs.get("varied", {})
    values.update({key: table_value(varied[key]) for key in configuration_keys(varied, bool(pair))})
    return RunResult(cell=attrs.get("cell"), seed=attrs.get("seed"), probe_h=attrs.get("probe_h"),
                     probe_z=attrs.get("probe_z"),
                     finished=trial.state == TrialState.COMPLETE and "duplicate_of" not in attrs,
                     pruned=trial.state == TrialState.PRUNED, floor=bool(attrs.get("floor")),
                     started=trial.datetime_start.timestamp() * 1000 if trial.datetime_start else None,
                     rung=int(attrs["rung"]) if "rung" in attrs else None, race=attrs.get("race"), values=values)


def results_frame(trials: list[FrozenTrial]) -> pd.DataFrame:
    """The rules' results table of the study's trials (`ablations.stats.results.results_table`)."""
    return results_table(run_result(trial) for trial in trials)


@dataclass(frozen=True)
class Summary:
    """What the parent run shows of a finished study, computed once from its trials."""

    finished: int  # COMPLETE trials, the floor's and duplicates' included
    best: Best | None
    floor_probe_h: float | None  # the untrained floor's mean objective, where the study ran one
    verdict: Verdict | None


def summary_of(spec: StudySpec, trials: list[FrozenTrial]) -> Summary:
    """The study's summary from its trials: the best configuration (a race's at its last rung reached),
    the floor and the verdict."""
    results = results_frame(trials)
    best = results
    if spec.race is not None and "rung" in results:  # a race's best is at its last rung reached
        best = results[(results["rung"] == results["rung"].max()) & (results["race"] != "audit")]
    floor = [t.value for t in trials if t.user_attrs.get("floor") and t.state == TrialState.COMPLETE]
    return Summary(sum(t.state == TrialState.COMPLETE for t in trials), best_of(best),
                   sum(floor) / len(floor) if floor else None, confirmation.verdict_of(spec, results))


def seeds_of(trials: list[FrozenTrial]) -> dict[str, set[int]]:
    """The seeds each cell has in the study (finished, running or waiting), duplicates left out."""
    seeds: dict[str, set[int]] = {}
    for trial in trials:
        attrs = trial.user_attrs
        if "cell" in attrs and "seed" in attrs and "duplicate_of" not in attrs:
            seeds.setdefault(attrs["cell"], set()).add(int(attrs["seed"]))
    return seeds


def plan_round(spec: StudySpec, trials: list[FrozenTrial]) -> RoundPlan:
    """The next confirmation round of a study, from its trials (`confirmation.plan_round`)."""
    return confirmation.plan_round(spec, results_frame(trials), seeds_of(trials))


@dataclass
class Round:
    added: list[PlannedTrial]
    lines: list[str]


def enqueue_round(study: optuna.Study, spec: StudySpec) -> Round:
    """Enqueue the next round's units (none already waiting, running or done); returns those added and
    the lines that say what was spent and what was not."""
    trials = study.get_trials(deepcopy=False)
    covered = {search.unit_of(t) for t in trials
               if t.state in (TrialState.WAITING, TrialState.RUNNING) or resume.is_done(t)}
    plan = plan_round(spec, trials)
    added = []
    for planned, reason in plan.units:
        if planned.unit in covered:
            continue
        study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING,
                                                  user_attrs=resume.plan_attrs(planned, confirm=reason)))
        added.append(planned)
    return Round(added, plan.lines)
