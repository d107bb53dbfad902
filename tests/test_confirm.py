"""ablations.stores.confirm: which seeds the confirmation step adds, on hand-made study records, and once
through the command with real tiny trainings."""

import re

import optuna
import pytest
from optuna.trial import TrialState
from test_run_support import complete_once_per_unit, mlflow_runs, optuna_trials, study_file, workdir  # noqa: F401

from ablations.stores.confirm import plan_round, results_frame
from ablations.design.plan import ConfirmSpec, SearchSpec, StudySpec, TrackingSpec, expand_cells
from ablations.run import main
from ablations.stores.resume import plan_attrs
from simclr_core.config import RunConfig

STRENGTHS = [0.25, 0.5, 1.0]


def spec_of(max_seeds: int = 4, seeds=(0, 1)) -> StudySpec:
    return StudySpec("strength", "strength.yaml", RunConfig(), SearchSpec(grid={"augment.color_strength": STRENGTHS}),
                     list(seeds), TrackingSpec(), verdict="color_strength_rises", floor=True,
                     confirm=ConfirmSpec(max_seeds))


def finished(spec: StudySpec, values: dict[tuple[float, int], float]) -> list[optuna.trial.FrozenTrial]:
    """COMPLETE trials as the runner leaves them: plan attrs plus the probe results; the floor too.
    `values` may hold seeds beyond the planned ones (added by earlier confirmation rounds)."""
    cells = {cell.values["augment.color_strength"]: cell for cell in expand_cells(spec.search)}
    units = [t for t in spec.trials() if t.cell.floor]
    units += [spec.planned(cells[strength], seed) for strength, seed in values]
    trials = []
    for planned in units:
        h = 0.30 if planned.cell.floor else values[(planned.cell.values["augment.color_strength"], planned.seed)]
        attrs = {**plan_attrs(planned), "probe_h": h, "probe_z": h - 0.05}
        trials.append(optuna.trial.create_trial(state=TrialState.COMPLETE, value=h, user_attrs=attrs))
    return trials


def test_results_leave_out_the_floor_and_unfinished_trials():
    spec = spec_of()
    trials = finished(spec, {(0.25, 0): 0.40, (0.5, 0): 0.41})
    trials.append(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs=plan_attrs(spec.trials()[-1])))
    frame = results_frame(trials)
    assert sorted(frame["augment.color_strength"]) == [0.25, 0.5] and "floor" not in set(frame["cell"])


def test_a_decided_verdict_adds_nothing():
    # 0.40 -> 0.45 -> 0.50 with the same seed effect everywhere: every step decided above.
    values = {(s, seed): 0.40 + 0.1 * i / 2 + 0.01 * seed + 0.001 * i * seed
              for i, s in enumerate(STRENGTHS) for seed in (0, 1, 2)}
    spec = spec_of(seeds=(0, 1, 2))
    assert plan_round(spec, finished(spec, values)).units == []


def test_under_three_seeds_every_open_comparison_gets_the_next_shared_seed_up_to_three():
    # Strength makes no difference beyond noise, on two seeds: nothing can be decided below three.
    noise = {0: 0.003, 1: -0.002}
    values = {(s, seed): 0.40 + noise[seed] * (i + 1) for i, s in enumerate(STRENGTHS) for seed in (0, 1)}
    spec = spec_of(max_seeds=3)
    units = plan_round(spec, finished(spec, values)).units
    assert sorted(u.cell.values["augment.color_strength"] for u, _ in units) == STRENGTHS
    assert {u.seed for u, _ in units} == {2}  # one past the largest seed, the same for all: they pair
    assert all(u.config.augment.color_strength == u.cell.values["augment.color_strength"] for u, _ in units)
    assert all(reason.startswith("seed 2 added by confirmation for the open comparison") for _, reason in units)
    # With seed 2 run as well, the cap of 3 seeds is reached: no further round, and the lines say why.
    values.update({(s, 2): 0.40 for s in STRENGTHS})
    plan = plan_round(spec, finished(spec, values))
    assert plan.units == [] and any("above the cap of 3: no seed spent" in line for line in plan.lines)


def test_a_cap_that_cannot_decide_an_open_comparison_says_so_and_spends_nothing():
    # Three seeds, a 0.3-point step buried in 2-point noise: its estimated need (about 184 seeds) is far
    # above the cap of 4; so is the other step's (about 5).
    noise = {0: 0.02, 1: -0.015, 2: 0.001}
    values = {(s, seed): 0.40 + 0.05 * (i == 2) + 0.003 * (i == 1) + noise[seed] * (1 if i == 1 else -1)
              for i, s in enumerate(STRENGTHS) for seed in (0, 1, 2)}
    spec = spec_of(max_seeds=4, seeds=(0, 1, 2))
    plan = plan_round(spec, finished(spec, values))
    assert plan.units == []
    assert any(line.startswith("confirmation: color_strength=0.5 − color_strength=0.25 is open") and
               "needs about 184 seeds per cell, above the cap of 4: no seed spent on it" in line
               for line in plan.lines), plan.lines


def test_one_contested_pair_gets_the_seeds_and_the_decided_ones_none():
    # 0.25 -> 0.5 is decided (+5 points); 0.5 -> 1.0 is a 1-point step with a 0.9-point spread: open at
    # three seeds, its need (about 6 seeds) within the cap of 8. Only its two cells get seed 3.
    wobble = {0: 0.008, 1: -0.009, 2: 0.004}
    values = {(s, seed): level + 0.01 * seed + (wobble[seed] if s == 1.0 else 0.0)
              for s, level in zip(STRENGTHS, (0.40, 0.45, 0.46)) for seed in (0, 1, 2)}
    spec = spec_of(max_seeds=8, seeds=(0, 1, 2))
    plan = plan_round(spec, finished(spec, values))
    assert sorted(u.cell.values["augment.color_strength"] for u, _ in plan.units) == [0.5, 1.0]
    assert {u.seed for u, _ in plan.units} == {3}
    assert any(line.startswith("confirmation: seed 3 for color_strength=0.5, color_strength=1.0") or
               line.startswith("confirmation: seed 3 for color_strength=1.0, color_strength=0.5")
               for line in plan.lines), plan.lines


@pytest.mark.slow
def test_confirmation_runs_added_seeds_once_and_records_why(workdir, capsys):  # noqa: F811
    study = study_file(workdir, "confirmed", """\
search:
  grid: {augment.color_strength: [0.25, 1.0]}
verdict: color_strength_rises
floor: true
confirm: {max_seeds: 3}
""", seeds=(0, 1), epochs=1, knn_every=0)
    args = [str(study), "--tracking-uri", f"sqlite:///{workdir}/mlflow.db", "--no-progress", "--no-report"]
    assert main(args) == 0
    # One worker enqueues the round itself and says so in the same words as a parent of N workers.
    out = capsys.readouterr().out
    # Either worker may plan the round, or both at once, each adding the units the other has not (the
    # units stay exactly once, checked below); the terminal is told of every trial added, in one line or
    # two (seen 1 + 1 once in a fresh-clone run, 2 in others).
    added = re.findall(r"confirmation: (\d+) trial\(s\) added \(seed 2\) where the verdict is still open", out)
    assert added and sum(map(int, added)) == 2, out
    trials = optuna_trials(workdir, "confirmed")
    counts = complete_once_per_unit(trials)
    planned = {"floor seed=0", "floor seed=1"} | {f"augment.color_strength={s} seed={seed}"
                                                  for s in ("0.25", "1.0") for seed in (0, 1)}
    assert planned <= set(counts)
    added = [t for t in trials if t.user_attrs.get("confirm")]
    # Tiny trainings on synthetic images cannot decide a 2-seed comparison: seed 2 is added to both
    # strengths (never to the floor), and the cap of 3 seeds ends it.
    assert sorted(t.user_attrs["unit"] for t in added) == [
        "augment.color_strength=0.25 seed=2", "augment.color_strength=1.0 seed=2"]
    _, parents, children = mlflow_runs(workdir, "confirmed")
    # The parent shows what a researcher looks for first, and the verdict.
    parent = parents[0].data
    assert parent.metrics["finished_trials"] == len(counts) and 0 < parent.metrics["best_probe_h"] <= 1
    assert 0 < parent.metrics["floor_probe_h"] <= 1 and "best_probe_z" in parent.metrics
    assert parent.tags["ablations.verdict"] == "color_strength_rises"
    assert parent.tags["ablations.verdict_status"] in ("holds", "does not hold", "undecided")
    assert "Verdict (color_strength_rises): Accuracy rises with colour strength" in parent.tags["mlflow.note.content"]
    by_name = {run.info.run_name: run for run in children}
    assert by_name["color_strength=1.0 seed=2"].data.tags["ablations.confirm"].startswith("seed 2 added")
    assert by_name["floor seed=0"].data.tags["ablations.floor"] == "true"
    assert by_name["floor seed=0"].data.params["train.epochs"] == "0"
    # A rerun adds nothing more: every unit exactly once.
    assert main(args) == 0
    assert len(optuna_trials(workdir, "confirmed")) == len(trials)


@pytest.mark.slow
def test_with_two_workers_the_terminal_is_told_of_the_confirmation_round(workdir, capsys):  # noqa: F811
    # The round is enqueued by a worker process, whose output goes to its log; the parent says it.
    study = study_file(workdir, "confirmed2", """\
search:
  grid: {augment.color_strength: [0.25, 1.0]}
verdict: color_strength_rises
confirm: {max_seeds: 3}
""", seeds=(0, 1), epochs=1, knn_every=0)
    args = [str(study), "--tracking-uri", f"sqlite:///{workdir}/mlflow.db", "--no-progress", "--no-report",
            "--workers", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    # Either worker may plan the round, or both at once, each adding the units the other has not (the
    # units stay exactly once, checked below); the terminal is told of every trial added, in one line or
    # two (seen 1 + 1 once in a fresh-clone run, 2 in others).
    added = re.findall(r"confirmation: (\d+) trial\(s\) added \(seed 2\) where the verdict is still open", out)
    assert added and sum(map(int, added)) == 2, out
    assert "6 trials complete, 0 failed; 6 of 6 cell x seed units done" in out, out
    counts = complete_once_per_unit(optuna_trials(workdir, "confirmed2"))
    assert {f"augment.color_strength={s} seed=2" for s in ("0.25", "1.0")} <= set(counts)


def test_a_contrast_without_a_spread_says_so_instead_of_printing_a_nan_interval():
    """One seed per cell: no spread, no interval; the line read "interval [+nan, +nan]" before."""
    spec = spec_of(max_seeds=1, seeds=(0,))
    lines = plan_round(spec, finished(spec, {(s, 0): 0.40 + 0.01 * i for i, s in enumerate(STRENGTHS)})).lines
    assert lines and all("nan" not in line for line in lines)
    assert any("no interval yet: too few seeds for a spread" in line for line in lines)
