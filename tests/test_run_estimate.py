"""ablations.run.estimate: --dry-run lists the planned trials and what they cost, and trains nothing."""

import dataclasses

from ablations.run import main
from ablations.run.estimate import estimate_trial_seconds
from ablations.study import load_study
from test_run_support import study_file, uri, workdir  # noqa: F401 (workdir is a fixture)


def test_dry_run_prints_trials_and_estimate_and_trains_nothing(workdir, capsys):
    study = study_file(workdir, "planned", "search: {pairs: [crop, color, blur]}\n", seeds=(0, 1))
    assert main([str(study), "--dry-run", "--tracking-uri", uri(workdir)]) == 0
    out = capsys.readouterr().out
    assert "9 cells x 2 seeds = 18 trials" in out
    assert "crop+blur seed=1" in out and "estimate:" in out and "nothing was trained" in out
    assert not (workdir / "runs").exists()


def test_the_estimate_grows_with_epochs_and_times_each_model_once(workdir):
    base = load_study(study_file(workdir, "costed", "search: {sampler: grid}\n")).base
    longer = dataclasses.replace(base, train=dataclasses.replace(base.train, epochs=4 * base.train.epochs))
    seconds, how = estimate_trial_seconds([base, longer, base])
    assert len(seconds) == 3 and 0 < seconds[0] < seconds[1] and seconds[2] == seconds[0]
    assert how.startswith("from timed steps of 16 images on cpu")  # the configured batch, under 32
