"""ablations.run.console: the one-line trial summaries read back from the study, the summary table's
rows (worked by hand) and the progress postfix."""

import optuna
import pytest
from optuna.trial import TrialState

from ablations.report.formatting import pct_spread
from ablations.run.console import (
    confirmation_line, new_confirmations, running_epochs, summary_line, summary_rows, trial_line)


def trial(number: int, state: TrialState, value: float | None = None, **attrs) -> optuna.trial.FrozenTrial:
    frozen = optuna.trial.create_trial(state=state, value=value, user_attrs={"run_name": f"cell seed={number}", **attrs})
    frozen.number = number
    return frozen


def test_trial_lines_say_how_each_trial_ended():
    # Accuracies with the 4 decimals MLflow holds (tracking.rounded), float32's noise gone.
    assert trial_line(trial(3, TrialState.COMPLETE, 0.5, probe_h=0.39899998, probe_z=0.25, wall_time_s=12.4)) == \
        "trial   3 cell seed=3: probe_h 39.90 % probe_z 25.00 % (12 s)"
    assert trial_line(trial(4, TrialState.COMPLETE, 0.5, probe_h=0.5)) == "trial   4 cell seed=4: probe_h 50.00 % (0 s)"
    assert trial_line(trial(5, TrialState.PRUNED, pruned="pruned at epoch 2 (knn_acc 0.100)")) == \
        "trial   5 cell seed=5: pruned at epoch 2 (knn_acc 0.100)"
    assert trial_line(trial(6, TrialState.FAIL, error="NonFiniteLossError: boom")) == \
        "trial   6 cell seed=6: FAILED: NonFiniteLossError: boom"
    assert trial_line(trial(7, TrialState.FAIL, outcome="interrupted")) == \
        "trial   7 cell seed=7: interrupted; will run again"
    assert trial_line(trial(8, TrialState.FAIL)) == "trial   8 cell seed=8: worker died; will run again"


def test_a_confirmation_round_is_told_once_with_its_seed():
    planned = [trial(0, TrialState.COMPLETE, 0.5, seed=0), trial(1, TrialState.COMPLETE, 0.5, seed=1)]
    added = [trial(2, TrialState.WAITING, seed=2, confirm="seed 2 added by confirmation ..."),
             trial(3, TrialState.RUNNING, seed=2, confirm="seed 2 added by confirmation ...")]
    announced: set[int] = set()
    assert new_confirmations(planned, announced) == []
    assert [t.number for t in new_confirmations(planned + added, announced)] == [2, 3]
    assert announced == {2, 3}
    assert new_confirmations(planned + added, announced) == []  # told once
    later = trial(4, TrialState.WAITING, seed=3, confirm="seed 3 added by confirmation ...")
    assert [t.number for t in new_confirmations(planned + added + [later], announced)] == [4]
    # Two workers planned one round at once: a unit enqueued twice is told once (the copy backs off unrun),
    # so the terminal's count is the round's (it said "4 trial(s) added" for a round of 2 in a loaded fresh-clone run).
    unit = {"unit": "augment.color_strength=1.0 seed=2"}
    copies = [trial(5, TrialState.WAITING, seed=2, confirm="...", **unit),
              trial(6, TrialState.WAITING, seed=2, confirm="...", **unit)]
    assert [t.number for t in new_confirmations(copies, announced)] == [5]
    assert {5, 6} <= announced
    assert confirmation_line(2, [2, 2]) == "confirmation: 2 trial(s) added (seed 2) where the verdict is still open"
    assert confirmation_line(3, [3, 2, 3]) == \
        "confirmation: 3 trial(s) added (seed 2, 3) where the verdict is still open"


def test_summary_rows_are_per_cell_means_with_spread_best_first():
    trials = [trial(0, TrialState.COMPLETE, 0.2, cell="a", probe_z=0.1, wall_time_s=10),
              trial(1, TrialState.COMPLETE, 0.4, cell="a", probe_z=0.3, wall_time_s=20),
              trial(2, TrialState.COMPLETE, 0.5, cell="b", wall_time_s=5)]
    best, second = summary_rows(trials)
    assert (best.cell, best.mean, best.sd, best.n, best.probe_z, best.wall_s, best.trials) == ("b", 0.5, 0.0, 1, None, 5, [2])
    assert (second.cell, second.n, second.trials) == ("a", 2, [0, 1])
    # mean (0.2 + 0.4) / 2; sample sd sqrt(((-0.1)^2 + 0.1^2) / (2 - 1)) = sqrt(0.02)
    assert second.mean == pytest.approx(0.3) and second.sd == pytest.approx(0.02 ** 0.5)
    assert second.probe_z == pytest.approx(0.2) and second.wall_s == 15


def test_summary_rows_name_configurations_as_mlflow_does():
    rows = summary_rows([trial(0, TrialState.COMPLETE, 0.2, cell="augment.pipeline=color+crop"),
                         trial(1, TrialState.COMPLETE, 0.3, cell="train.temperature=0.5 train.batch_size=256")])
    assert [row.name for row in rows] == ["temperature=0.5 batch_size=256", "color+crop"]


def test_the_summary_table_writes_percent_as_the_report_does():
    # The example: 0.4047 +- 0.0152 as fractions was printed beside a report saying 40.5 % +- 1.5.
    trials = [trial(0, TrialState.COMPLETE, 0.3895, cell="a", probe_z=0.30, wall_time_s=10),
              trial(1, TrialState.COMPLETE, 0.4199, cell="a", probe_z=0.32, wall_time_s=20),
              trial(2, TrialState.COMPLETE, 0.25, cell="b", wall_time_s=5)]
    spread, single = summary_rows(trials)
    # mean (0.3895 + 0.4199) / 2 = 0.4047; sd |0.4199 - 0.3895| / sqrt(2) = 0.0215 -> 2.1 points
    assert summary_line(spread, 1).split("  ")[0] == "40.5 % ± 2.1 (n=2)"
    assert pct_spread(spread.mean, spread.sd) == "40.5 % ± 2.1"  # the README's writing of the same row
    assert summary_line(spread, 1).split()[5:] == ["31.0", "%", "15", "a", "0,1"]
    assert summary_line(single, 1) == f"{'25.0 % (n=1, no spread)':<26} {'-':>8} {5:>7}  b  2"


def test_the_progress_postfix_shows_up_to_four_running_trials():
    running = [trial(n, TrialState.RUNNING, progress={"epoch": n, "epochs": 9, "loss": 1.0 / (n + 1)})
               for n in range(5)]
    assert running_epochs(running + [trial(9, TrialState.RUNNING)]) == \
        "#0 0/9 loss 1.000  #1 1/9 loss 0.500  #2 2/9 loss 0.333  #3 3/9 loss 0.250"


def test_the_quickstarts_report_is_not_offered_to_git_beside_the_real_ones():
    """Every fresh clone's first run writes reports/quickstart/ (or reports/quickstart-<run id>/ beside another
    one); `git status` offered it as a new folder to commit among the committed reports of real runs."""
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    demo = ["reports/quickstart/README.md", "reports/quickstart-0a1b2c/figures/pair_grid.png"]
    ignored = subprocess.run(["git", "-C", str(root), "check-ignore", *demo], capture_output=True, text=True)
    assert ignored.stdout.split() == demo
    kept = subprocess.run(["git", "-C", str(root), "check-ignore", "reports/aug_pairs/README.md"], capture_output=True)
    assert kept.returncode == 1  # a real study's report is not ignored


def test_a_resume_on_a_machine_of_other_numerics_is_warned():
    """train.precision auto resolves per machine: finished trials computed in fp32 and a machine that computes
    this study in bf16 (pinned here, so the test needs no particular CPU) would pool both numerics."""
    from types import SimpleNamespace

    from ablations.design.plan import SearchSpec, StudySpec, TrackingSpec
    from ablations.run.console import numerics_change
    from simclr_core.config import RunConfig, TrainConfig

    def session(precision: str, devices: list[str]):
        study = optuna.create_study(direction="maximize")
        for device in devices:
            study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.5, user_attrs={"device": device}))
        spec = StudySpec("s", "s.yaml", RunConfig(train=TrainConfig(precision=precision)),
                         SearchSpec(grid={"train.lr": [0.1, 0.2]}), [0, 1, 2], TrackingSpec())
        return SimpleNamespace(spec=spec, study=study)

    fp32 = "cpu (x86_64, AVX-512, 1 threads), fp32"
    bf16 = "cpu (x86_64, AVX-512 with BF16, 1 threads), bf16 autocast"
    warned = numerics_change(session("bf16", [fp32, fp32, bf16]))
    assert warned.startswith("warning: 2 finished trial(s) in fp32, and this machine computes in bf16 autocast "
                             "(train.precision bf16 on cpu (")
    assert "the study will pool runs of both numerics" in warned
    assert numerics_change(session("bf16", [bf16, bf16])) is None  # the same numerics
    assert numerics_change(session("fp32", ["cpu (x86_64, 1 threads)"])) is None  # recorded before numerics were
