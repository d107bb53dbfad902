"""Racing over budgets (issue 28): which cells go on, on hand-made results tables (ablations.stats.race);
the next rung enqueued on Optuna (ablations.stores.race); the study file's `race:` read strictly."""

import math
import os
import random
import re
import signal
import time
from collections import Counter

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from ablations.run import main
from ablations.design.keys import StudyError
from ablations.run.study_file import load_study
from ablations.design.plan import RaceSpec, SearchSpec, StudySpec, TrackingSpec, expand_cells
from ablations.stats.race import audit_survivors, draw_audit, needed_cells, race_state, rank_agreement
from ablations.stores import race as race_store
from ablations.stores.confirm import results_frame
from ablations.stores.resume import plan_attrs
from simclr_core.config import RunConfig
from test_run_support import (  # noqa: F401 (workdir is a fixture)
    SAFETY_LIMIT_S, cli, complete_once_per_unit, mlflow_runs, optuna_trials, start, study_file, uri, workdir,
)

CC, CS, CROP, COLOR = ("augment.pipeline=crop+color", "augment.pipeline=crop+sobel", "augment.pipeline=crop",
                       "augment.pipeline=color")
PAIRS = {CC: ("crop", "color"), CS: ("crop", "sobel"), CROP: ("crop", "crop"), COLOR: ("color", "color")}
SEED_EFFECT = {0: 0.0, 1: 0.01, 2: -0.01}
# A cell x seed wobble of 0.002 points of accuracy: the residual spread the block model needs. With 3 seeds,
# the SE of a difference of two cells is about sqrt(2) * 0.002 / sqrt(3) = 0.0016 (moderation aside), so a
# simultaneous interval's half-width is a few thousandths: 0.2 apart is decided, 0.001 apart is open.
WOBBLE = {(0, 0): 0.002, (0, 1): -0.001, (0, 2): -0.001, (1, 0): -0.002, (1, 1): 0.002, (1, 2): 0.0,
          (2, 0): 0.0, (2, 1): -0.002, (2, 2): 0.002, (3, 0): 0.001, (3, 1): 0.001, (3, 2): -0.002}


def runs(means: dict[str, float], rung: int = 1, seeds=(0, 1, 2), race: str = "survivor") -> pd.DataFrame:
    rows = []
    for index, (cell, mean) in enumerate(means.items()):
        for seed in seeds:
            h = mean + SEED_EFFECT[seed] + WOBBLE[(index % 4, seed)]
            rows.append({"cell": cell, "seed": seed, "probe_h": h, "probe_z": h - 0.05, "first": PAIRS[cell][0],
                         "second": PAIRS[cell][1], "rung": rung, "race": race})
    return pd.DataFrame(rows)


def settled(cells, rung, seeds=(0, 1, 2)):
    return {(cell, rung, seed) for cell in cells for seed in seeds}


def test_the_cells_far_behind_stop_and_the_close_ones_go_on():
    # crop+sobel is 0.001 below crop+color (open, and could be best); crop and color are 0.2 below (decided).
    cells, verdict = needed_cells("crop_color_best", runs({CC: 0.60, CS: 0.599, CROP: 0.40, COLOR: 0.40}))
    assert cells == [CC, CS]
    assert set(verdict.candidates) == {CC, CS}


def test_a_rung_the_rule_cannot_judge_stops_no_cell():
    # No crop-with-colour cell: crop_color_best has no comparison to make, so nothing is decided.
    frame = runs({CS: 0.6, CROP: 0.4, COLOR: 0.4})
    cells, verdict = needed_cells("crop_color_best", frame)
    assert verdict.note and cells == [CS, CROP, COLOR]


def test_the_race_goes_rung_by_rung_and_draws_its_audit_when_it_reaches_the_last():
    grid = [CC, CS, CROP, COLOR]
    first = runs({CC: 0.60, CS: 0.599, CROP: 0.40, COLOR: 0.40}, rung=1)
    # Rung 1 complete: crop and color stop there; rung 2 not begun.
    state = race_state("crop_color_best", first, grid, [1, 2, 3], [0, 1, 2], settled(grid, 1), 1, 0)
    assert [(r.epochs, r.cells, r.complete) for r in state.rungs] == [(1, grid, True), (2, [CC, CS], False)]
    assert state.stopped == {CROP: 1, COLOR: 1} and state.audit == []
    assert len(state.units([0, 1, 2])) == 4 * 3 + 2 * 3
    # One unit of rung 2 unsettled: no decision yet (its runs are in the table, the unit is not counted).
    second = runs({CC: 0.70, CS: 0.50}, rung=2)
    both = pd.concat([first, second])
    half = race_state("crop_color_best", both, grid, [1, 2, 3], [0, 1, 2],
                      settled(grid, 1) | settled([CC, CS], 2) - {(CS, 2, 2)}, 1, 0)
    assert len(half.rungs) == 2 and half.rungs[1].go_on is None
    # Rung 2 complete: crop+sobel is 0.2 behind and stops at 2; the last rung has crop+color alone, and one
    # eliminated cell drawn for the audit, in plan order from [crop+sobel, crop, color] with seed 0.
    done = race_state("crop_color_best", both, grid, [1, 2, 3], [0, 1, 2],
                      settled(grid, 1) | settled([CC, CS], 2), 1, 0)
    assert done.rungs[2].cells == [CC] and done.stopped == {CROP: 1, COLOR: 1, CS: 2}
    assert done.audit == draw_audit([CS, CROP, COLOR], 1, 0) == [CROP]
    assert (CROP, 3, 0, "audit") in done.units([0, 1, 2]) and (CC, 3, 0, "survivor") in done.units([0, 1, 2])
    assert len(done.units([0, 1, 2])) == 4 * 3 + 2 * 3 + 1 * 3 + 1 * 3


def test_the_audit_draw_is_fixed_by_its_seed_and_takes_all_where_there_are_few():
    assert draw_audit(["a", "b"], 5, 3) == ["a", "b"]
    assert draw_audit(list("abcdef"), 2, 7) == sorted(random.Random(7).sample(list("abcdef"), 2))
    assert draw_audit(list("abcdef"), 0, 7) == []


def test_rank_agreement_is_spearman_with_a_fisher_z_interval():
    # Means 1..5 at the short rung; the long rung swaps the last two: sum d^2 = 2, rho = 1 - 6*2/(5*24) = 0.9.
    frame = pd.DataFrame([{"cell": c, "seed": 0, "probe_h": float(v), "rung": rung}
                          for rung, values in ((2, [1, 2, 3, 4, 5]), (24, [1, 2, 3, 5, 4]))
                          for c, v in zip("abcde", values)])
    agreement = rank_agreement(frame, 2, 24)
    assert agreement.n == 5 and agreement.rho == pytest.approx(0.9)
    # z = atanh(0.9) = 1.4722, SE = sqrt(1.06 / 2) = 0.7280, 1.96 SE = 1.4269: [tanh(0.0453), tanh(2.8991)].
    assert agreement.low == pytest.approx(math.tanh(0.0453), abs=1e-3)
    assert agreement.high == pytest.approx(math.tanh(2.8991), abs=1e-3)
    assert rank_agreement(frame[frame["cell"].isin(["a", "b"])], 2, 24) is None  # 2 cells: nothing to rank


def test_an_audited_cell_that_catches_up_would_have_survived():
    last = pd.concat([runs({CC: 0.60, CS: 0.599}, rung=3), runs({CROP: 0.599, COLOR: 0.30}, rung=3, race="audit")])
    assert audit_survivors("crop_color_best", last, [CROP, COLOR]) == [CROP]


def race_spec(audit_cells=1) -> StudySpec:
    search = SearchSpec(pairs=["crop", "color", "sobel"],
                        pair_subset=[("crop", "color"), ("crop", "sobel"), ("crop", "crop"), ("color", "color")])
    return StudySpec("raced", "raced.yaml", RunConfig(), search, [0, 1, 2], TrackingSpec(), verdict="crop_color_best",
                     race=RaceSpec([1, 2, 3], audit_cells=audit_cells, audit_seed=0))


def test_the_next_rung_is_enqueued_once_with_its_rung_and_role():
    spec = race_spec()
    study = optuna.create_study(direction="maximize")
    cells = {cell.id: cell for cell in expand_cells(spec.search)}
    frame = runs({CC: 0.60, CS: 0.599, CROP: 0.40, COLOR: 0.40}, rung=1)
    for row in frame.itertuples():
        attrs = {**plan_attrs(spec.planned(cells[row.cell], row.seed, 1)), "probe_h": row.probe_h,
                 "probe_z": row.probe_z}
        study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=row.probe_h, user_attrs=attrs))
    added, lines = race_store.enqueue_rung(study, spec)
    assert sorted(p.unit for p in added) == sorted(f"{c} epochs=2 seed={s}" for c in (CC, CS) for s in (0, 1, 2))
    assert all(p.config.train.epochs == 2 for p in added)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert {(t.user_attrs["rung"], t.user_attrs["race"]) for t in waiting} == {(2, "survivor")}
    assert lines[0].startswith("race: after 1 epochs, 2 of 4 cells go on (crop+color, crop+sobel)")
    assert race_store.enqueue_rung(study, spec) == ([], [])  # waiting already: nothing added twice


RACE_BASE = """\
name: raced
search: {pairs: [[crop, color], [crop, sobel]]}
seeds: [0, 1, 2]
"""


def write(tmp_path, text):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def test_a_race_is_read_with_its_defaults(tmp_path):
    spec = load_study(write(tmp_path, RACE_BASE + "verdict: crop_color_best\nrace: {rungs: [2, 6, 24]}\n"))
    assert (spec.race.rungs, spec.race.audit_cells, spec.race.audit_seed) == ([2, 6, 24], 2, 0)
    assert [t.unit for t in spec.trials()][:2] == ["augment.pipeline=crop+color epochs=2 seed=0",
                                                     "augment.pipeline=crop+color epochs=2 seed=1"]
    assert spec.race_limit() == 2 * 3 * 3 and len(spec.possible_trials()) == 18


@pytest.mark.parametrize("text, key, allowed", [
    (RACE_BASE + "race: {rungs: [2, 6]}\n", "race", "name the rule with `verdict:`"),
    (RACE_BASE + "verdict: crop_color_best\nrace: {rungs: [6, 2]}\n", "race.rungs", "at least two rising"),
    (RACE_BASE + "verdict: crop_color_best\nrace: {rungs: [6]}\n", "race.rungs", "at least two rising"),
    (RACE_BASE + "verdict: crop_color_best\nrace: {rungs: [0, 2]}\n", "race.rungs", "at least two rising"),
    (RACE_BASE + "verdict: crop_color_best\nrace: {rungs: [2, 6], budget: 3}\n", "race.budget", "allowed: rungs, audit"),
    (RACE_BASE + "verdict: crop_color_best\nrace: {rungs: [2, 6], audit: {cells: -1}}\n", "race.audit.cells",
     "an integer 0 or more"),
    (RACE_BASE + "verdict: crop_color_best\nrace: {rungs: [2, 6], audit: {size: 1}}\n", "race.audit.size",
     "allowed: cells, seed"),
    (RACE_BASE + "verdict: crop_color_best\nconfirm: {max_seeds: 4}\nrace: {rungs: [2, 6]}\n", "race",
     "cannot be combined"),
    (RACE_BASE.replace("[0, 1, 2]", "[0, 1]") + "verdict: crop_color_best\nrace: {rungs: [2, 6]}\n", "seeds",
     "at least 3 seeds"),
    ("name: raced\nsearch: {pairs: [[crop, color], [crop, sobel]], grid: {train.epochs: [1, 2]}}\nseeds: [0, 1, 2]\n"
     "verdict: crop_color_best\nrace: {rungs: [2, 6]}\n", "race", "take it out of search.grid"),
])
def test_a_bad_race_is_one_line_naming_the_key(tmp_path, text, key, allowed):
    with pytest.raises(StudyError) as error:
        load_study(write(tmp_path, text))
    message = str(error.value)
    assert "\n" not in message and f"study.yaml: {key}:" in message and allowed in message, message


def _wait_for_running(workdir, name, process, rung: int, epoch: int):
    """The first trial RUNNING at `rung` past `epoch` (its checkpoint exists); fails if the run ends first."""
    deadline = time.monotonic() + SAFETY_LIMIT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        if (workdir / "runs" / name / "optuna.journal").exists():
            try:
                for trial in optuna_trials(workdir, name):
                    if (trial.state == TrialState.RUNNING and trial.user_attrs.get("rung") == rung
                            and trial.user_attrs.get("progress", {}).get("epoch", 0) >= epoch):
                        return trial
            except KeyError:  # the study is not created yet
                pass
        time.sleep(0.2)
    raise AssertionError(f"no trial reached epoch {epoch} of rung {rung} in {SAFETY_LIMIT_S} s (a hang?)")


# The race below needs a decided difference at its first rung, which the tiny base of test_run_support
# never gives (every pair scores about chance on 64 images of 16 px after an epoch or two). Training on Sobel
# edges does: the synthetic classes differ only in shape, and the edge map takes the colour away, so an
# encoder trained on edges (with colour jitter first, which changes their contrast) probes 10 to 14 points
# above crop+color, which at this budget stays near the untrained encoder. Measured at 2 epochs with this
# base, probe_h mean over seeds (crop+color, color+sobel, color_jitter+sobel), bf16 autocast on a CPU with
# AMX: seeds 0-2 0.323, 0.438, 0.449; 3-5 0.321, 0.447, 0.428; 6-8 0.320, 0.428, 0.430; in fp32 (a CPU
# without native bf16): 0-2 0.330, 0.425, 0.427; 3-5 0.330, 0.475, 0.443; 6-8 0.313, 0.435, 0.417. In all six
# triples both contrasts are decided below, crop+color is eliminated and both edge cells go on: the contrasts'
# t are 4.7 to 9.3 against a critical 3.31 (7.8 to 9.3 for the seeds 0-2 used here). The edge cells have no
# crop-with-colour cell left to judge against at 4 epochs, so that rung stops none; at 8 epochs crop+color runs
# again as the audit's one eliminated cell. About 1 s a trial at 2 epochs on one core.
EDGE_RACE = """\
name: raced
base:
  data: {dataset: synthetic, synthetic_per_class: 200, synthetic_classes: 4, synthetic_size: 16}
  model: {encoder: small_cnn, width: 16}
  train: {epochs: 2, batch_size: 64, lr: 1.0, num_threads: 1, device: cpu}
  probe: {max_iter: 100, knn_every: 0}
search: {pairs: [[crop, color], [color, sobel], [color_jitter, sobel]]}
seeds: [0, 1, 2]
verdict: crop_color_best
race: {rungs: [2, 4, 8], audit: {cells: 1, seed: 0}}
"""


@pytest.mark.slow
def test_a_three_rung_race_with_a_worker_killed_mid_rung_runs_each_unit_once_and_eliminates_as_inferred(workdir, capsys):
    study = workdir / "raced.yaml"
    study.write_text(EDGE_RACE)
    parent = start(workdir, cli(workdir, study, "--workers", "2", "--heartbeat-interval", "1"))
    victim = _wait_for_running(workdir, "raced", parent, rung=8, epoch=2)
    os.kill(int(victim.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
    output, _ = parent.communicate(timeout=SAFETY_LIMIT_S)
    assert parent.returncode == 0, output[-3000:]
    # The parent tells what its workers enqueued, and what the race decided.
    assert "race: after 2 epochs, 2 of 3 cells go on" in output and "race: after 4 epochs, " in output, output[-3000:]
    assert re.search(r"race: \d+ trial\(s\) added at 8 epochs", output), output[-3000:]
    assert main(cli(workdir, study)) == 0  # the resume: nothing is left, nothing is added
    capsys.readouterr()
    assert main(cli(workdir, study, "--dry-run")) == 0  # a finished race's dry run: its own decisions, nothing left
    dry = capsys.readouterr().out
    assert re.search(r"expected: [^;]+; left: 0\.0 s \(the race's own decisions", dry), dry
    assert re.search(r"run so far: \S+ (s|min) of trial time", dry), dry
    trials = optuna_trials(workdir, "raced")
    counts = complete_once_per_unit(trials)
    assert any(t.state == TrialState.FAIL and t.number == victim.number for t in trials)  # the killed one
    # What the race planned, recomputed from the recorded results with the statistics alone.
    spec = load_study(study)
    cells = [cell.id for cell in expand_cells(spec.search)]
    frame = results_frame(trials)
    state = race_state("crop_color_best", frame, cells, [2, 4, 8], [0, 1, 2], race_store.settled_units(trials), 1, 0)
    assert [rung.complete for rung in state.rungs] == [True, True, True]
    # The race eliminated something at its first rung, so the audit below is not vacuous.
    eliminated_at_first_rung = {cell for cell, at in state.stopped.items() if at == 2}
    assert eliminated_at_first_rung, frame.groupby(["rung", "cell"])["probe_h"].mean()
    assert state.audit and set(state.audit) <= eliminated_at_first_rung
    assert set(counts) == {f"{cell} epochs={epochs} seed={seed}" for cell, epochs, seed, _ in state.units([0, 1, 2])}
    # Each elimination is the inference's on that rung's runs: the cells not needed by the rule there.
    for rung in state.rungs[:-1]:
        needed, _ = needed_cells("crop_color_best", frame[(frame["rung"] == rung.epochs) & frame["cell"].isin(rung.cells)])
        assert rung.go_on == needed
        assert {cell for cell, at in state.stopped.items() if at == rung.epochs} == set(rung.cells) - set(needed)
    roles = {t.user_attrs["unit"]: t.user_attrs["race"] for t in trials if t.state == TrialState.COMPLETE}
    assert "audit" in roles.values()
    assert {unit for unit, role in roles.items() if role == "audit"} == {
        f"{cell} epochs=8 seed={seed}" for cell in state.audit for seed in (0, 1, 2)}
    # MLflow holds each unit once, its rung as a tag and as train.epochs.
    _, _, children = mlflow_runs(workdir, "raced")
    finished = [r for r in children if r.info.status == "FINISHED"]
    assert sorted(Counter(r.data.tags["ablations.unit"] for r in finished).values()) == [1] * len(counts)
    assert all(r.data.tags["ablations.rung"] == r.data.params["train.epochs"] for r in finished)
    # The report: runs.parquet carries each run's rung and role, and rebuilds the race's section without the store.
    from ablations.report import main as report_main

    assert report_main(["--study", "raced", "--tracking-uri", uri(workdir), "--out", str(workdir / "reports"),
                        "--no-log"]) == 0
    saved = pd.read_parquet(workdir / "reports" / "raced" / "runs.parquet")
    trial_rows = saved[(saved["role"] == "trial") & (saved["status"] == "FINISHED")]  # the killed run has a row too
    assert sorted(zip(trial_rows["cell"], trial_rows["rung"], trial_rows["seed"])) == sorted(
        (cell, epochs, seed) for cell, epochs, seed, _ in state.units([0, 1, 2]))
    readme = (workdir / "reports" / "raced" / "README.md").read_text()
    section = readme[readme.index("## The race"):]
    assert "### 8 epochs" in section and "Audit: " in section and "Cost: " in section
    assert report_main(["--from-parquet", str(workdir / "reports" / "raced")]) == 0
    rebuilt = (workdir / "reports" / "raced" / "README.md").read_text()
    assert rebuilt[rebuilt.index("## The race"):] == section


def race_records() -> "StudyRecords":
    """A finished race's runs table as the report reads it: rung 1 all four cells (crop and color 20 points
    behind), rung 2 crop+color and crop+sobel (crop+sobel then 20 behind), rung 3 crop+color and the
    audited crop (still 20 behind); 10, 20 and 60 s per trial at the three rungs."""
    from ablations.report.records import StudyRecords

    parts = [(runs({CC: 0.60, CS: 0.599, CROP: 0.40, COLOR: 0.40}, rung=1), 10.0),
             (runs({CC: 0.70, CS: 0.50}, rung=2), 20.0),
             (runs({CC: 0.75}, rung=3), 60.0), (runs({CROP: 0.55}, rung=3, race="audit"), 60.0)]
    frame = pd.concat([part.assign(duration_s=seconds) for part, seconds in parts], ignore_index=True)
    frame = frame.assign(role="trial", status="FINISHED", trial=range(len(frame)))
    floor = pd.DataFrame([{"cell": "floor", "seed": s, "probe_h": 0.3, "role": "floor", "status": "FINISHED",
                           "trial": 100 + s, "duration_s": 1.0} for s in (0, 1, 2)])
    return StudyRecords("raced", "test", "parent", "FINISHED", {}, {}, pd.concat([frame, floor], ignore_index=True),
                        ["first", "second"], True)


def test_the_race_report_says_where_each_cell_stopped_what_the_audit_found_and_the_cost():
    from ablations.report import race as race_report

    records = race_records()
    last = race_report.last_rung(records)
    assert sorted(set(last.runs["cell"])) == sorted({CC, "floor"}) and last.params["train.epochs"] == "3"
    report = race_report.analyse(records, "crop_color_best")
    assert report.rungs == [1, 2, 3] and report.at == {1: [CC, CS, CROP, COLOR], 2: [CC, CS], 3: [CC]}
    assert [(s.cell, s.epochs) for s in report.stops] == [(CROP, 1), (COLOR, 1), (CS, 2)]
    assert report.stops[0].text.startswith("crop+color − crop +20.0 points [") and report.stops[0].text.endswith("above")
    assert report.audit == [CROP] and report.audit_needed == []  # 20 points behind at 3 epochs too
    # Spent: 12 x 10 + 6 x 20 + 6 x 60 = 600 s; the full grid at 3 epochs: 4 cells x 3 seeds x 60 s = 720 s.
    assert (report.spent_s, report.full_s) == (600.0, 720.0)
    text = "\n".join(race_report.section(report, pair=True))
    assert "| crop | stopped at 1 |" in text and "none would have survived at 3 epochs" in text
    assert ("Verdict at 3 epochs, on the 1 cell(s) that reached it: " in text
            and "The 3 eliminated cell(s) below are eliminated" in text)
    assert "- crop+sobel: stopped at 2 epochs: crop+color − crop+sobel +20.0 points [" in text
    assert "Cost: 10.0 min of trial time spent on the race" in text and "estimated 12.0 min for the full grid" in text and "(83%)" in text


def test_a_race_dry_run_prints_its_rungs_and_its_worst_case_and_expected_cost(workdir, capsys):  # noqa: F811
    study = study_file(workdir, "raced_dry", """\
search: {pairs: [[crop, color], [crop, crop], [color, color]]}
verdict: crop_color_best
race: {rungs: [1, 2, 4], audit: {cells: 1, seed: 0}}
""", seeds=(0, 1, 2), epochs=1, knn_every=0)
    assert main(cli(workdir, study, "--dry-run")) == 0
    out = capsys.readouterr().out
    assert "3 cells x 3 seeds, raced over 1, 2, 4 epochs by the rule crop_color_best" in out, out
    assert "1 epochs: 3 cells x 3 seeds, 0 of 9 done" in out
    assert "worst case (nothing eliminated): 27 trials" in out
    assert "expected: " in out and "an assumption until the first rung is decided: 25% of a rung's cells" in out
    assert not (workdir / "runs" / "raced_dry").exists()  # nothing written


def test_a_bad_race_on_the_command_line_is_one_error_line_and_exit_status_2(workdir, capsys):  # noqa: F811
    study = study_file(workdir, "raced_bad", """\
search: {pairs: [[crop, color], [crop, crop]]}
verdict: crop_color_best
race: {rungs: [2, 2]}
""", seeds=(0, 1, 2), epochs=1, knn_every=0)
    assert main(cli(workdir, study)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "raced_bad.yaml: race.rungs: [2, 2] is not allowed" in err[0]
    assert not (workdir / "runs" / "raced_bad").exists()


def test_a_race_with_no_result_yet_is_at_its_first_rung():
    grid = [CC, CS]
    state = race_state("crop_color_best", pd.DataFrame(), grid, [1, 2], [0, 1, 2], set(), 1, 0)
    assert [(r.epochs, r.cells, r.complete) for r in state.rungs] == [(1, grid, False)]
    # Results of units run before the study raced (no rung) are not a rung's.
    old = runs({CC: 0.6, CS: 0.4}).drop(columns=["rung", "race"])
    state = race_state("crop_color_best", old, grid, [1, 2], [0, 1, 2], settled(grid, 1), 1, 0)
    assert state.rungs[0].go_on == [] and state.stopped == {CC: 1, CS: 1}


def test_another_race_on_resume_is_refused_naming_both(tmp_path):
    from ablations.stores.errors import SearchError
    from ablations.stores.identity import RACE_ATTR, check_race

    spec = race_spec()
    study = optuna.create_study(direction="maximize")
    cells = {cell.id: cell for cell in expand_cells(spec.search)}
    for seed in (0, 1, 2):  # one rung-1 result per seed: a race under way
        attrs = {**plan_attrs(spec.planned(cells[CC], seed, 1)), "probe_h": 0.5, "probe_z": 0.4}
        study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.5, user_attrs=attrs))
    trials = study.get_trials(deepcopy=False)
    check_race(study, spec, trials)  # first start (or a study from before the record): the file's race
    assert study.user_attrs[RACE_ATTR] == {"rungs": [1, 2, 3], "audit": {"cells": 1, "seed": 0}}
    check_race(study, spec, trials)  # the same race resumes
    edits = {"rungs": RaceSpec([1, 4, 8], audit_cells=1, audit_seed=0),
             "audit seed": RaceSpec([1, 2, 3], audit_cells=1, audit_seed=7), "none": None}
    for what, race in edits.items():
        edited = StudySpec("raced", "raced.yaml", RunConfig(), spec.search, [0, 1, 2], TrackingSpec(),
                           verdict="crop_color_best", race=race)
        with pytest.raises(SearchError) as refused:
            check_race(study, edited, trials)
        message = str(refused.value)
        assert message.startswith("raced.yaml: study 'raced' ran with race: {rungs: [1, 2, 3], audit: {cells: 1, seed: 0}}, "
                                  "and the file now says "), (what, message)
        assert ("race: {rungs: [1, 4, 8]" in message if what == "rungs" else
                "audit: {cells: 1, seed: 7}" in message if what == "audit seed" else "now says no race:" in message)
        assert "give the file a new name: (e.g. raced-2)" in message
    # A race begun before the record (trials with rungs, no attr) whose file now drops race: is refused too.
    older = optuna.create_study(direction="maximize")
    for trial in trials:
        older.add_trial(trial)
    dropped = StudySpec("raced", "raced.yaml", RunConfig(), spec.search, [0, 1, 2], TrackingSpec(),
                        verdict="crop_color_best", race=None)
    with pytest.raises(SearchError, match="ran with a race \\(its trials ran at 1 epochs\\), and the file now says no race"):
        check_race(older, dropped, older.get_trials(deepcopy=False))
    # A race added to a study that has results without one is another study too.
    plain = optuna.create_study(direction="maximize")
    plain.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.5, user_attrs={"varied": {}}))
    with pytest.raises(SearchError, match="ran with no race, and the file now says race: {rungs: \\[1, 2, 3\\]"):
        check_race(plain, spec, plain.get_trials(deepcopy=False))


def test_a_race_not_over_says_so_and_its_verdict_is_provisional():
    """A rule judges the cells it is given: a race (or any study) reported half run could hold on the half.
    Until its parent run is FINISHED the README says the verdict is provisional and the race not over."""
    from ablations.report import race as race_report
    from ablations.report.readme import _verdict_section
    from ablations.stats.verdicts import decide

    records = race_records()
    assert records.unfinished is None  # race_records is a finished race: nothing said
    verdict = decide("crop_color_best", runs({CC: 0.60, CROP: 0.40}))  # the first rung, half run
    assert verdict.status == "holds"
    assert not any("Provisional" in line for line in _verdict_section(verdict, "", "floor", records.unfinished))
    records.parent_status = "KILLED"
    assert records.unfinished == ("the study has not finished (parent run KILLED: it was interrupted; rerunning its "
                                  "command resumes it)")
    text = "\n".join(_verdict_section(verdict, "", "floor", records.unfinished))
    assert ("**Provisional**: the study has not finished (parent run KILLED: it was interrupted; rerunning its command "
            "resumes it). What follows is judged on the runs recorded so far") in text
    assert text.index("**Provisional**") < text.index("**holds**")
    section = "\n".join(race_report.section(race_report.analyse(records, "crop_color_best"), True, records.unfinished))
    assert section.startswith("## The race\n\n**Not over**: the study has not finished (parent run KILLED")
