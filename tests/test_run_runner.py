"""ablations.run.runner: a trial claimed, trained and recorded in Optuna and MLflow (params, tags,
per-epoch metrics, artifacts), failures recorded as results, pruning, and the data set cache."""

import dataclasses
import json
import sys
from pathlib import Path

import torch
import yaml
from optuna.trial import TrialState

from ablations.design.plan import flat_config
from ablations.run import main
from ablations.run.runner import DataCache
from ablations.run.study_file import load_study
from simclr_core.config import DataConfig
from simclr_core.model import SimCLRModel
from test_run_support import (  # noqa: F401 (workdir is a fixture)
    EPOCHS, cli, complete_once_per_unit, mlflow_runs, optuna_trials, study_file, uri, workdir,
)


def test_tiny_pair_study_end_to_end(workdir, capsys):
    study = study_file(workdir, "pairs", "search: {pairs: [crop, color]}\n")
    argv = [str(study), "--tracking-uri", uri(workdir), "--no-progress", "--set", "tracking.log_model=true"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"mlflow ui --backend-store-uri {uri(workdir)}" in out
    # As printed, with this environment's mlflow, and the address of the study's runs list.
    assert f"{Path(sys.executable).parent / 'mlflow'} ui --backend-store-uri" in out
    assert "then the study's runs: http://127.0.0.1:5000/#/experiments/" in out
    # That URL opens the study's saved view: grouped by configuration, best probe first, and every
    # column it shows is a tag, param or metric the trial runs carry.
    client, _, children = mlflow_runs(workdir, "pairs")
    experiment = client.get_experiment_by_name("pairs")
    assert f"#/experiments/{experiment.experiment_id}/runs?viewStateShareKey=ablations-runs" \
           "&workflowType=machine_learning" in out
    view = json.loads(experiment.tags["mlflow.sharedViewState.ablations-runs"])
    assert view["groupBy"] == {"aggregateFunction": "average",
                               "groupByKeys": [{"mode": "tag", "groupByData": "ablations.config"}]}
    assert (view["orderByKey"], view["orderByAsc"]) == ("metrics.`probe_h_mean`", False)
    kinds = {"tags": lambda r: r.data.tags, "params": lambda r: r.data.params, "metrics": lambda r: r.data.metrics}
    for column in view["selectedColumns"]:
        kind, key = column.split(".", 1)
        # An SD needs two seeds; this study has one, and its runs say so (n_seeds 1).
        carriers = [run for run in children if not key.endswith("_sd`")]
        assert all(key.strip("`") in kinds[kind](run) for run in carriers), column
    assert view["selectedColumns"] == ["tags.`ablations.config`", "metrics.`probe_h_mean`", "metrics.`probe_h_sd`",
                                       "metrics.`n_seeds`", "metrics.`probe_z_mean`", "metrics.`probe_h`"]
    assert all(run.data.metrics["n_seeds"] == 1 and "probe_h_sd" not in run.data.metrics for run in children)
    assert all(run.data.metrics["probe_h_mean"] == run.data.metrics["probe_h"] for run in children)
    assert "params.`augment.pipeline`" not in view["selectedColumns"]  # the short name says it
    assert {run.data.tags["ablations.config"] for run in children} == {"crop", "crop+color", "color+crop", "color"}
    # The data set as an MLflow dataset input, with a digest of the images used: the same in every run.
    inputs = [run.inputs.dataset_inputs for run in children]
    assert all(len(i) == 1 and i[0].dataset.name == "synthetic train" for i in inputs)
    assert len({i[0].dataset.digest for i in inputs}) == 1 and len(inputs[0][0].dataset.digest) == 16
    assert json.loads(inputs[0][0].dataset.profile)["train_images"] == 64
    assert "runs/pairs/optuna.journal" in out
    assert (workdir / "reports" / "pairs" / "README.md").exists()  # the finished study's report

    trials = optuna_trials(workdir, "pairs")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert all(0 <= t.value <= 1 for t in trials)
    complete_once_per_unit(trials)

    client, parents, children = mlflow_runs(workdir, "pairs")
    assert len(parents) == 1 and parents[0].info.run_name == "pairs" and parents[0].info.status == "FINISHED"
    assert parents[0].data.tags["ablations.study"] == "pairs"
    assert len(children) == 4
    spec = load_study(study)
    planned = {t.run_name: t for t in spec.trials()}
    assert {r.info.run_name for r in children} == set(planned) == {
        "crop seed=0", "crop+color seed=0", "color+crop seed=0", "color seed=0"}
    for run in children:
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        plan = planned[run.info.run_name]
        assert run.info.status == "FINISHED"
        assert tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert tags["ablations.study"] == tags["optuna.study"] == "pairs"
        assert int(tags["optuna.trial"]) in {t.number for t in trials}
        assert tags["ablations.cell"] == plan.cell.id
        assert json.loads(tags["ablations.varied"]) == plan.varied
        assert tags["ablations.seed"] == "0"
        assert (tags["ablations.first"], tags["ablations.second"]) == plan.cell.pair
        assert tags["torch_version"] and tags["device"].startswith("cpu") and "git_commit" in tags
        expected = {k: v if isinstance(v, str) else json.dumps(v) for k, v in flat_config(plan.config).items()}
        assert params == expected
        assert json.loads(params["augment.pipeline"]) == plan.varied["augment.pipeline"]
        assert 0 <= metrics["probe_h"] <= 1 and 0 <= metrics["probe_z"] <= 1 and metrics["wall_time_s"] > 0
        assert metrics["seconds/preview"] > 0 and metrics["seconds/data"] >= 0
        # Searching `probe_` in the UI finds accuracies only; every value has at most 4 decimals.
        assert sorted(key for key in metrics if "probe_" in key) == ["probe_h", "probe_h_mean", "probe_z", "probe_z_mean"]
        assert all(round(value, 4) == value for key, value in metrics.items() if key != "lr")
        for key in ("loss", "contrastive_acc", "knn_acc", "lr", "images_per_s"):
            history = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1)), key
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "augment_preview.png", "encoder.pt"} <= artifacts
        config_path = client.download_artifacts(run.info.run_id, "config.yaml", str(workdir / run.info.run_id))
        assert yaml.safe_load(Path(config_path).read_text()) == plan.config.to_plain()
        preview = client.download_artifacts(run.info.run_id, "augment_preview.png", str(workdir / run.info.run_id))
        assert Path(preview).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        weights = torch.load(client.download_artifacts(run.info.run_id, "encoder.pt", str(workdir / run.info.run_id)))
        encoder = SimCLRModel(plan.config.model).encoder
        encoder.load_state_dict(weights["encoder"])
        assert weights["config"] == plan.config.to_plain()

    # Running the same command again continues the study: nothing is left, nothing is rerun.
    assert main(cli(workdir, study)) == 0
    assert len(optuna_trials(workdir, "pairs")) == 4
    assert len(mlflow_runs(workdir, "pairs")[2]) == 4
    # Seeds added to the file are enqueued on resume; the finished cells are not rerun.
    study_file(workdir, "pairs", "search: {pairs: [crop, color]}\n", seeds=(0, 1))
    assert main(cli(workdir, study)) == 0
    trials = optuna_trials(workdir, "pairs")
    assert len(complete_once_per_unit(trials)) == 8 and len(trials) == 8


def test_failed_trial_is_recorded_and_the_study_goes_on(workdir, capsys):
    study = study_file(workdir, "diverge", "search: {grid: {train.lr: [1.0e+30, 0.3]}}\n")
    assert main(cli(workdir, study)) == 0
    assert "FAILED: NonFiniteLossError" in capsys.readouterr().out
    failed, complete = optuna_trials(workdir, "diverge")
    assert failed.state == TrialState.FAIL and "non-finite loss" in failed.user_attrs["error"]
    assert complete.state == TrialState.COMPLETE
    _, parents, children = mlflow_runs(workdir, "diverge")
    by_trial = {int(r.data.tags["optuna.trial"]): r for r in children}
    assert by_trial[failed.number].info.status == "FAILED"
    assert "non-finite loss" in by_trial[failed.number].data.tags["ablations.error"]
    assert by_trial[complete.number].info.status == "FINISHED"
    assert parents[0].info.status == "FINISHED"
    # A failure is a result: a rerun does not repeat it, unless asked to.
    assert main(cli(workdir, study)) == 0
    assert len(optuna_trials(workdir, "diverge")) == 2
    assert main(cli(workdir, study, "--retry-failed")) == 0
    trials = optuna_trials(workdir, "diverge")
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.FAIL]
    # The retry really trained (and diverged again): not set aside as a duplicate of the first failure.
    assert "non-finite loss" in trials[2].user_attrs["error"] and "duplicate_of" not in trials[2].user_attrs


def test_tpe_study_samples_prunes_and_tracks(workdir):
    study = study_file(workdir, "tuned", """\
        search:
          sampler: tpe
          n_trials: 3
          pruner: median
          params:
            train.temperature: {type: float, low: 0.1, high: 1.0, log: true}
            augment.pipeline: {type: categorical, choices: [[crop], [crop, color]]}
        """)
    assert main(cli(workdir, study)) == 0
    trials = optuna_trials(workdir, "tuned")
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETE for t in trials)
    assert all(0.1 <= t.params["train.temperature"] <= 1.0 for t in trials)
    _, _, children = mlflow_runs(workdir, "tuned")
    for run in children:
        varied = json.loads(run.data.tags["ablations.varied"])
        assert set(varied) == {"train.temperature", "augment.pipeline", "train.seed"}
        assert float(run.data.params["train.temperature"]) == varied["train.temperature"]
    assert main(cli(workdir, study)) == 0  # the budget is spent: nothing more runs
    assert len(optuna_trials(workdir, "tuned")) == 3


def test_data_cache_reuses_the_last_data_set_while_its_config_is_equal():
    cache = DataCache()
    small = DataConfig(dataset="synthetic", synthetic_per_class=4, synthetic_classes=2, synthetic_size=8)
    first = cache.get(small)
    assert cache.get(dataclasses.replace(small)) is first  # an equal config, not the same object
    other = cache.get(DataConfig(dataset="synthetic", synthetic_per_class=4, synthetic_classes=3, synthetic_size=8))
    assert other is not first and len(other.classes) == 3
    cache.clear()
    assert cache.get(small) is not first


def test_a_study_whose_every_trial_failed_exits_1_and_a_rerun_after_a_fix_names_retry_failed(workdir, capsys):
    """Exit 0 before, and the rerun after the fix said "2 of 2 units done" with the old error's advice."""
    study = study_file(workdir, "allfail", "search: {grid: {train.lr: [1.0e+30, 2.0e+30]}}\n")
    assert main(cli(workdir, study)) == 1
    err = capsys.readouterr().err
    assert "every trial of study allfail failed" in err and "non-finite loss" in err and "--retry-failed" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    # The user's "fix" (more epochs) changes every failed unit; a plain rerun keeps the failures.
    study_file(workdir, "allfail", "search: {grid: {train.lr: [1.0e+30, 2.0e+30]}}\n", epochs=EPOCHS + 1)
    assert main(cli(workdir, study)) == 1
    captured = capsys.readouterr()
    assert "2 failed trials ran with a configuration the study file has since changed" in captured.out
    assert "train.epochs: 2 -> 3" in captured.out and "rerun with --retry-failed" in captured.out
    assert "non-finite loss" not in captured.out.split("cell x seed units done")[1]  # its advice not repeated
    assert "--retry-failed" in captured.err


def test_a_random_study_runs_every_sampled_configuration_at_every_seed(workdir):
    """Before, `seeds: [0, 1]` ran seed 0 only, without a word."""
    study = study_file(workdir, "rand", """\
        search:
          sampler: random
          n_trials: 2
          params:
            train.temperature: {type: float, low: 0.1, high: 1.0}
        """, seeds=(0, 1))
    assert main(cli(workdir, study)) == 0
    trials = optuna_trials(workdir, "rand")
    assert len(complete_once_per_unit(trials)) == 4
    by_cell = {}
    for trial in trials:
        by_cell.setdefault(trial.user_attrs["cell"], []).append(trial.user_attrs["seed"])
    assert len(by_cell) == 2 and all(sorted(seeds) == [0, 1] for seeds in by_cell.values())
    for trial in trials:  # each seed trains the sampled value at its own train.seed
        assert trial.user_attrs["config"]["train"]["seed"] == trial.user_attrs["seed"]
        assert trial.params["train.temperature"] == trial.user_attrs["varied"]["train.temperature"]
    assert main(cli(workdir, study)) == 0  # the budget counts samples: nothing more runs
    assert len(optuna_trials(workdir, "rand")) == 4


def test_a_full_disk_under_a_trial_stops_the_run_naming_the_folder_and_is_no_result(workdir, capsys, monkeypatch):
    """Before, the checkpoint's "[Errno 28] No space left on device" was recorded as the trial's failure
    (a result: never run again without --retry-failed) and the study exited 0."""
    from simclr_core import checkpoint
    study = study_file(workdir, "full", "search: {grid: {train.temperature: [0.5]}}\n")

    def full_disk(state, file):
        raise OSError(28, "No space left on device")  # as a write() to a full disk raises it: no file named

    with monkeypatch.context() as patch:
        patch.setattr(checkpoint.torch, "save", full_disk)
        assert main(cli(workdir, study)) == 75
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert "this trial's folder" in lines[0] and f"the disk holding {workdir / 'runs' / 'full'}" in lines[0]
    assert "is full" in lines[0] and "rerun the same command" in lines[0]
    (trial,) = optuna_trials(workdir, "full")
    assert trial.state == TrialState.FAIL and "error" not in trial.user_attrs  # not a result
    assert main(cli(workdir, study)) == 0  # space freed: the same command runs the unit
    assert len(complete_once_per_unit(optuna_trials(workdir, "full"))) == 1
