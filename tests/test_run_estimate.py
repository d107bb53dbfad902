"""ablations.run.estimate: --dry-run lists the planned trials and what they cost, and trains nothing."""

import dataclasses
import itertools
import statistics

from ablations.messages import duration
from ablations.run import estimate, main
from ablations.run.estimate import estimate_trial_seconds
from ablations.run.study_file import load_study
from test_run_support import optuna_trials, study_file, uri, workdir  # noqa: F401 (workdir is a fixture)


def test_dry_run_prints_trials_and_estimate_and_trains_nothing(workdir, capsys):
    study = study_file(workdir, "planned", "search: {pairs: [crop, color, blur]}\n", seeds=(0, 1))
    assert main([str(study), "--dry-run", "--tracking-uri", uri(workdir)]) == 0
    out = capsys.readouterr().out
    assert "9 cells x 2 seeds = 18 trials" in out
    assert "crop+blur seed=1" in out and "estimate:" in out and "nothing was trained" in out
    assert not (workdir / "runs").exists()


def test_the_estimate_grows_with_epochs_and_times_each_model_once(workdir):
    base = load_study(study_file(workdir, "costed", "")).base
    longer = dataclasses.replace(base, train=dataclasses.replace(base.train, epochs=4 * base.train.epochs))
    seconds, how = estimate_trial_seconds([base, longer, base])
    assert len(seconds) == 3 and 0 < seconds[0] < seconds[1] and seconds[2] == seconds[0]
    assert how.startswith("from timed steps of 16 images on cpu")  # the configured batch, under 32


def test_dry_run_shows_the_floor_the_rule_and_the_most_confirmation_can_add(workdir, capsys):  # noqa: F811
    study = study_file(workdir, "planned", """\
search:
  grid: {augment.color_strength: [0.25, 0.5, 1.0]}
verdict: color_strength_rises
floor: true
confirm: {max_seeds: 5}
""", seeds=(0, 1))
    assert main([str(study), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "grid, 3 cells x 2 seeds = 6 trials, plus 2 of the untrained floor" in out
    assert "floor seed=0" in out and "verdict rule: color_strength_rises" in out
    assert "confirmation: up to 9 more trials" in out  # 3 cells x (5 - 2) seeds


def test_dry_run_of_a_started_study_shows_what_is_done_and_estimates_what_is_left(workdir, capsys):  # noqa: F811
    study = study_file(workdir, "halfway", "search: {grid: {train.temperature: [0.2, 0.5]}}\n", seeds=(0,),
                       epochs=1, knn_every=0)
    assert main([str(study), "--tracking-uri", f"sqlite:///{workdir}/mlflow.db", "--no-progress", "--no-report"]) == 0
    capsys.readouterr()
    # One more seed in the file: the first two units are done, two are to do.
    study_file(workdir, "halfway", "search: {grid: {train.temperature: [0.2, 0.5]}}\n", seeds=(0, 1),
               epochs=1, knn_every=0)
    assert main([str(study), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "temperature=0.2 seed=0" in out and "recorded: 2 done, 2 to do" in out
    assert [line.split()[-1] for line in out.splitlines() if "seed=" in line] == ["done", "do", "done", "do"]
    # The units left are of cells already run: what their trials took is the estimate, not a timing of
    # the moment (an estimate had swung 11.5x with the load).
    walls = [t.user_attrs["wall_time_s"] for t in optuna_trials(workdir, "halfway")]
    estimate = next(line for line in out.splitlines() if line.startswith("estimate:"))
    assert estimate.startswith(f"estimate: {duration(statistics.fmean(walls))} per trial")
    assert "(2 from the recorded trials of their cells)" in estimate


def test_a_timed_estimate_counts_the_cpu_time_it_got_not_the_wall_clock(workdir, monkeypatch):
    """Other work on the machine stretches the wall clock, not the CPU time this process gets: a wall clock
    that races ahead (as under a load of 10) leaves the estimate as it is, and the line states the load."""
    base = load_study(study_file(workdir, "costed", "")).base
    clock = itertools.count(step=1000.0)
    monkeypatch.setattr(estimate.time, "perf_counter", lambda: next(clock))
    seconds, how = estimate.estimate_trial_seconds([base])
    assert seconds[0] < 1000  # none of the wall clock's 1000 s per reading
    assert "by CPU time" in how and "load average" in how


def test_dry_run_and_the_run_agree_on_every_edit_case(workdir, capsys):  # noqa: F811
    """Before, an edit of epochs read "nothing left to run" and an added grid key "2 to do" with an estimate,
    and the run refused both; a study started under another storage was planned anew."""
    grid = "search: {grid: {train.temperature: [0.2, 0.5]}}\n"
    study = study_file(workdir, "edited", grid, epochs=1, knn_every=0)
    run = [str(study), "--tracking-uri", uri(workdir), "--no-progress", "--no-report"]
    assert main(run) == 0
    cases = {
        "epochs": (lambda: study_file(workdir, "edited", grid, epochs=2, knn_every=0), [], "already ran"),
        "grid key": (lambda: study_file(workdir, "edited", "search: {grid: {train.temperature: [0.2, 0.5], train.lr: [0.1]}}\n", epochs=1, knn_every=0),
                     [], "added train.lr"),
        "storage": (lambda: study_file(workdir, "edited", grid, epochs=1, knn_every=0),
                    ["--storage", f"sqlite:///{workdir}/other.db"], "under Optuna storage"),
    }
    for case, (edit, extra, says) in cases.items():
        edit()
        capsys.readouterr()
        assert main([*run, *extra, "--dry-run"]) == 2, case
        dry = capsys.readouterr()
        assert main([*run, *extra]) == 2, case
        real = capsys.readouterr()
        assert says in dry.err and dry.err == real.err, (case, dry.err, real.err)
        assert "nothing was trained" not in dry.out and "estimate:" not in dry.out
    assert len(optuna_trials(workdir, "edited")) == 2  # nothing was planned by any of them
