"""ablations.run.session: a study's set-up on resume (dead trials found and run again from their
checkpoints, a changed configuration refused, a torn journal repaired) and where it is tracked."""

import signal
from collections import Counter

import pytest
from optuna.trial import TrialState

from ablations.stores import search
from ablations.run import main
from ablations.run.cli import build_parser
from ablations.run.session import tracking_uri
from ablations.run.study_file import load_study
from test_run_support import (  # noqa: F401 (workdir is a fixture)
    EPOCHS, cli, complete_once_per_unit, enqueue_plan, mlflow_runs, optuna_trials, start, study_file, wait_for_running_epoch,
    workdir,
)


@pytest.mark.parametrize("backend", ["journal", "sqlite"])
def test_resume_after_sigkill_runs_every_cell_exactly_once(workdir, backend):
    """Dead-trial detection through heartbeats, on the default journal and on an RDB storage."""
    epochs = 30
    study = study_file(workdir, "killed", "", seeds=(0, 1), epochs=epochs, knn_every=5)
    storage = f"sqlite:///{workdir}/optuna.db" if backend == "sqlite" else None
    args = cli(workdir, study, "--heartbeat-interval", "1", *(["--storage", storage] if storage else []))
    worker = start(workdir, args)
    victim = wait_for_running_epoch(workdir, "killed", worker, epoch=3, storage=storage)
    worker.send_signal(signal.SIGKILL)
    worker.wait()

    assert main(args) == 0
    trials = optuna_trials(workdir, "killed", storage)
    assert len(complete_once_per_unit(trials)) == 2
    dead = trials[victim.number]
    assert dead.state == TrialState.FAIL and "error" not in dead.user_attrs
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == victim.number)
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["unit"] == victim.user_attrs["unit"]

    client, parents, children = mlflow_runs(workdir, "killed")
    assert all(r.info.status != "RUNNING" for r in parents + children)
    by_trial = {int(r.data.tags["optuna.trial"]): r for r in children}
    assert by_trial[victim.number].info.status == "KILLED"
    assert Counter(r.data.tags["ablations.unit"] for r in children if r.info.status == "FINISHED") == \
        Counter({unit: 1 for unit in (t.user_attrs["unit"] for t in trials if t.state == TrialState.COMPLETE)})
    # The retry resumed from the dead trial's checkpoint and still logged the whole history.
    history = client.get_metric_history(by_trial[retry.number].info.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(1, epochs + 1))


def test_a_changed_configuration_is_refused_on_resume(workdir, capsys):
    study = study_file(workdir, "drift", "")
    assert main(cli(workdir, study)) == 0
    study_file(workdir, "drift", "", epochs=EPOCHS + 1)
    assert main(cli(workdir, study)) == 2
    err = capsys.readouterr().err
    assert "train.epochs: 2 -> 3" in err and "new name" in err
    # Where the data lives is not what is trained: another SIMCLR_DATA or thread count is fine.
    study_file(workdir, "drift", "")
    assert main(cli(workdir, study, "--set", "train.num_threads=2", "--set", "data.root=/elsewhere")) == 0


def test_partial_journal_line_from_a_killed_writer_is_repaired(workdir):
    spec = load_study(study_file(workdir, "torn", ""))
    journal = workdir / "torn.journal"
    study, _ = search.open_study(spec, search.open_storage(str(journal), None, heartbeat_interval=30))
    enqueue_plan(study, spec)
    with open(journal, "ab") as handle:
        handle.write(b'{"op_code": 5, "worker_')  # what kill -9 during an append leaves
    study, created = search.open_study(spec, search.open_storage(str(journal), None, heartbeat_interval=30))
    assert not created and [t.state for t in study.get_trials()] == [TrialState.WAITING]
    study.enqueue_trial({})  # and it can be written again
    assert len(study.get_trials()) == 2


def test_tracking_store_comes_from_the_flag_then_the_environment_then_sqlite(monkeypatch):
    from ablations.stores.tracking_store import resolve_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None) == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert resolve_tracking_uri(None) == "sqlite:///elsewhere.db"
    assert resolve_tracking_uri("http://tracking:5000") == "http://tracking:5000"
    parsed = build_parser().parse_args(["study.yaml", "--tracking-uri", "http://tracking:5000"])
    assert tracking_uri(parsed) == "http://tracking:5000"


def test_a_journal_whose_mlflow_records_are_gone_is_refused_with_the_way_out(workdir, capsys):  # noqa: F811
    study = study_file(workdir, "orphaned", "search: {grid: {train.temperature: [0.2]}}\n", epochs=1)
    assert main(cli(workdir, study)) == 0
    # A new, empty tracking store beside the kept Optuna journal (mlflow.db deleted, or another
    # --tracking-uri). (A new file, not the deleted one again: MLflow caches a store per URI in a process.)
    capsys.readouterr()
    other = f"sqlite:///{workdir}/other.db"
    assert main([str(study), "--tracking-uri", other, "--no-progress", "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: study 'orphaned' has 1 finished trials") and "--tracking-uri" in err
    assert "remove runs/orphaned" in err and len(err.splitlines()) == 1
    assert len(optuna_trials(workdir, "orphaned")) == 1  # nothing added, nothing lost


def test_an_edit_that_extends_the_study_is_told_and_cells_left_out_are_marked(workdir, capsys):
    """Changing a grid value between runs extends the study (intended) but was silent, and the summary kept the
    cell no longer in the file without a mark."""
    study = study_file(workdir, "edited", "search: {grid: {train.temperature: [0.2, 0.5]}}\n", epochs=1, knn_every=0)
    assert main(cli(workdir, study)) == 0
    assert "adds" not in capsys.readouterr().out
    study_file(workdir, "edited", "search: {grid: {train.temperature: [0.2, 0.7]}}\n", epochs=1, knn_every=0)
    assert main(cli(workdir, study)) == 0
    out = capsys.readouterr().out
    assert "study edited: the study file adds 1 trial to those planned before (temperature=0.7 seed=0)" in out
    assert "study edited: 1 cell recorded before is no longer in the study file (temperature=0.5)" in out
    rows = {next(word for word in line.split() if word.startswith("temperature=")): line
            for line in out.splitlines() if line[:1].isdigit() and "temperature=" in line}  # the table's
    assert rows["temperature=0.5"].endswith("(not in the file)")
    assert not rows["temperature=0.7"].endswith("(not in the file)")


@pytest.mark.slow
@pytest.mark.parametrize("copies", [2, 4])
def test_copies_of_one_command_started_together_in_a_fresh_folder_all_finish(tmp_path, copies):
    """As a user pasting the quickstart into several terminals at once: a fresh folder, no mlflow.db, no
    journal; every copy finishes and every cell runs exactly once in Optuna and in MLflow."""
    study = study_file(tmp_path, "together", "search: {grid: {train.temperature: [0.2, 0.5, 1.0]}}\n", epochs=1,
                       knn_every=0)
    processes = [start(tmp_path, [str(study), "--no-progress", "--no-report"]) for _ in range(copies)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0] * copies, [out[-800:] for out in outputs]
    counts = complete_once_per_unit(optuna_trials(tmp_path, "together"))
    assert len(counts) == 3
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("together")
    runs = client.search_runs([experiment.experiment_id], "tags.`ablations.role` = 'trial'")
    finished = [r.info.run_name for r in runs if r.info.status == "FINISHED"]
    assert sorted(finished) == sorted({r for r in finished}) and len(finished) == 3
    parents = client.search_runs([experiment.experiment_id], "tags.`ablations.role` = 'parent'")
    assert len(parents) == 1
