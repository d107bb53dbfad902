"""The study runner end to end, on the synthetic data set: Optuna trials, MLflow runs, resume after
Ctrl-C and kill -9, several workers on one storage, failures, dry runs, bad input."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from ablations import search
from ablations.run import main
from ablations.study import flat_config, load_study
from simclr_core.model import SimCLRModel

EPOCHS = 2
# Trials of about a second: 64 images of 16 px, a CNN of width 8, one torch thread.
TINY_BASE = """\
base:
  data: {{dataset: synthetic, synthetic_per_class: 16, synthetic_classes: 4, synthetic_size: 16}}
  model: {{encoder: small_cnn, width: 8}}
  train: {{epochs: {epochs}, batch_size: 16, num_threads: 1, device: cpu}}
  probe: {{max_iter: 50, knn_k: 10, knn_every: {knn_every}}}
"""


def study_file(workdir: Path, name: str, search_text: str, seeds=(0,), epochs=EPOCHS, knn_every=1) -> Path:
    path = workdir / f"{name}.yaml"
    path.write_text(f"name: {name}\n" + TINY_BASE.format(epochs=epochs, knn_every=knn_every)
                    + textwrap.dedent(search_text) + f"seeds: {list(seeds)}\n")
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch, mlflow_template):
    (tmp_path / "mlflow.db").write_bytes(mlflow_template.read_bytes())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def uri(workdir: Path) -> str:
    return f"sqlite:///{workdir}/mlflow.db"


def cli(workdir: Path, study: Path, *extra: str) -> list[str]:
    return [str(study), "--tracking-uri", uri(workdir), "--no-progress", "--no-report", *extra]


def optuna_trials(workdir: Path, name: str, storage: str | None = None) -> list[optuna.trial.FrozenTrial]:
    """The study's trials, from its --storage URL or the default journal."""
    if storage is None:
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(workdir / "runs" / name / "optuna.journal")))
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def mlflow_runs(workdir: Path, name: str):
    from mlflow import MlflowClient

    client = MlflowClient(uri(workdir))
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("ablations.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("ablations.role") == "trial"]
    return client, parents, children


def complete_once_per_unit(trials) -> Counter:
    counts = Counter(t.user_attrs["unit"] for t in trials if t.state == TrialState.COMPLETE)
    assert set(counts.values()) == {1}, counts
    return counts


def wait_for_running_epoch(workdir: Path, name: str, process, epoch: int, storage: str | None = None,
                           timeout: float = 90):
    """Block until a trial is RUNNING past `epoch` (so its checkpoint exists); return that trial."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        if storage or (workdir / "runs" / name / "optuna.journal").exists():
            try:
                for trial in optuna_trials(workdir, name, storage):
                    if trial.state == TrialState.RUNNING and trial.user_attrs.get("progress", {}).get("epoch", 0) >= epoch:
                        return trial
            except KeyError:  # the study is not created yet
                pass
        time.sleep(0.2)
    raise AssertionError("no trial started in time")


def start(workdir: Path, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ablations.run", *args], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


# --------------------------------------------------------------------------------------------------


def test_tiny_pair_study_end_to_end(workdir, capsys):
    study = study_file(workdir, "pairs", "search: {pairs: [crop, color]}\n")
    argv = [str(study), "--tracking-uri", uri(workdir), "--no-progress", "--set", "tracking.log_model=true"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"mlflow ui --backend-store-uri {uri(workdir)}" in out
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
    assert [t.state for t in optuna_trials(workdir, "diverge")] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.FAIL]


@pytest.mark.parametrize("backend", ["journal", "sqlite"])
def test_resume_after_sigkill_runs_every_cell_exactly_once(workdir, backend):
    """Dead-trial detection through heartbeats, on the default journal and on an RDB storage."""
    epochs = 30
    study = study_file(workdir, "killed", "search: {sampler: grid}\n", seeds=(0, 1), epochs=epochs, knn_every=5)
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


def test_ctrl_c_marks_the_trial_and_a_rerun_resumes(workdir):
    study = study_file(workdir, "stopped", "search: {sampler: grid}\n", seeds=(0, 1), epochs=30, knn_every=5)
    args = cli(workdir, study)
    worker = start(workdir, args)
    victim = wait_for_running_epoch(workdir, "stopped", worker, epoch=2)
    worker.send_signal(signal.SIGINT)
    output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 130, output
    assert "Traceback" not in output and "rerun the same command" in output
    interrupted = optuna_trials(workdir, "stopped")[victim.number]
    assert interrupted.state == TrialState.FAIL and interrupted.user_attrs["outcome"] == "interrupted"
    _, parents, children = mlflow_runs(workdir, "stopped")
    assert [r.info.status for r in children] == ["KILLED"]
    assert parents[0].info.status == "KILLED"

    assert main(args) == 0
    trials = optuna_trials(workdir, "stopped")
    assert len(complete_once_per_unit(trials)) == 2
    _, parents, children = mlflow_runs(workdir, "stopped")
    assert parents[0].info.status == "FINISHED"
    assert sorted(r.info.status for r in children) == ["FINISHED", "FINISHED", "KILLED"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the lost one, on purpose
def test_a_ctrl_c_lost_in_a_finaliser_is_raised_again():
    # Python prints a KeyboardInterrupt raised inside __del__ or a weakref callback and carries on;
    # torch.compile's caches run such callbacks. The runner's handler raises it again until handled.
    from ablations.run import _interrupts

    class InterruptedWhileCollected:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs here, inside __del__: this KeyboardInterrupt is lost

    with pytest.raises(KeyboardInterrupt), _interrupts():
        InterruptedWhileCollected()  # collected at once
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.01)
    assert time.monotonic() < deadline
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_two_workers_never_run_the_same_cell(workdir):
    study = study_file(workdir, "shared", "search: {pairs: [crop, color]}\n", seeds=(0, 1), epochs=10, knn_every=5)
    assert main(cli(workdir, study, "--workers", "2")) == 0
    trials = optuna_trials(workdir, "shared")
    assert len(complete_once_per_unit(trials)) == 8
    assert len(trials) == 8
    _, parents, children = mlflow_runs(workdir, "shared")
    assert sorted(Counter(r.data.tags["ablations.unit"] for r in children).values()) == [1] * 8
    assert all(r.info.status == "FINISHED" for r in parents + children)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both did work


CLAIMER = """
import os, random, sys, time
import optuna
from optuna.trial import TrialState
from ablations import search
from ablations.study import load_study
spec = load_study(sys.argv[1])
storage = search.open_storage(sys.argv[2], None, heartbeat_interval=30)
study, _ = search.open_study(spec, storage)
open(sys.argv[3] + "." + sys.argv[4], "w").close()  # ready
while not os.path.exists(sys.argv[3]):
    time.sleep(0.01)
while True:
    claim = search.claim_next(study, spec)
    if claim is None:
        if search.work_left(study, spec)[0] == 0:
            break
        continue
    time.sleep(random.random() * 0.01)
    search.finish(study, claim, value=0.5, state=TrialState.COMPLETE)
"""


@pytest.mark.parametrize("storage", ["race.journal", "sqlite:///race.db"])
def test_concurrent_claims_are_exactly_once_even_with_duplicate_copies(workdir, storage):
    """Two processes race through 49 cells, 10 of them enqueued twice (as two processes re-enqueueing
    one dead cell at once would): every cell is completed once, every copy backs off."""
    study_path = study_file(workdir, "race", "search: {pairs: [crop, cutout, color, sobel, noise, blur, rotate]}\n")
    spec = load_study(study_path)
    storage_url = storage if storage.endswith(".journal") else f"sqlite:///{workdir}/race.db"
    study, created = search.open_study(spec, search.open_storage(storage_url, workdir / "unused", heartbeat_interval=30))
    assert created and search.enqueue_plan(study, spec) == 49
    for planned in spec.trials()[::5]:
        study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, user_attrs=search.plan_attrs(planned)))
    go = workdir / "go"
    processes = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(study_path), str(storage_url), str(go), str(i)])
                 for i in range(2)]
    deadline = time.monotonic() + 120
    while not all((workdir / f"go.{i}").exists() for i in range(2)):  # both imported, at the barrier
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes)
        time.sleep(0.1)
    go.touch()
    assert [p.wait(timeout=120) for p in processes] == [0, 0]
    trials = study.get_trials()
    assert len(complete_once_per_unit(trials)) == 49
    duplicates = [t for t in trials if t.state != TrialState.COMPLETE]
    assert len(duplicates) == 10
    assert all(t.state == TrialState.FAIL and "duplicate_of" in t.user_attrs for t in duplicates)
    assert len({t.user_attrs["worker"] for t in trials if t.state == TrialState.COMPLETE}) == 2


def test_partial_journal_line_from_a_killed_writer_is_repaired(workdir):
    spec = load_study(study_file(workdir, "torn", "search: {sampler: grid}\n"))
    journal = workdir / "torn.journal"
    study, _ = search.open_study(spec, search.open_storage(str(journal), None, heartbeat_interval=30))
    search.enqueue_plan(study, spec)
    with open(journal, "ab") as handle:
        handle.write(b'{"op_code": 5, "worker_')  # what kill -9 during an append leaves
    study, created = search.open_study(spec, search.open_storage(str(journal), None, heartbeat_interval=30))
    assert not created and [t.state for t in study.get_trials()] == [TrialState.WAITING]
    study.enqueue_trial({})  # and it can be written again
    assert len(study.get_trials()) == 2


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


def test_dry_run_prints_trials_and_estimate_and_trains_nothing(workdir, capsys):
    study = study_file(workdir, "planned", "search: {pairs: [crop, color, blur]}\n", seeds=(0, 1))
    assert main([str(study), "--dry-run", "--tracking-uri", uri(workdir)]) == 0
    out = capsys.readouterr().out
    assert "9 cells x 2 seeds = 18 trials" in out
    assert "crop+blur seed=1" in out and "estimate:" in out and "nothing was trained" in out
    assert not (workdir / "runs").exists()


@pytest.mark.parametrize("args, expected", [
    (["missing.yaml"], "missing.yaml: cannot read"),
    (["{study}", "--set", "train.epochs=ten"], "train.epochs"),
    (["{study}", "--set", "data.dataset=cifar10", "--set", "data.root={empty}"], "SIMCLR_DATA"),
    (["{study}", "--storage", "not-a-url"], "--storage"),
    (["{study}", "--workers", "0"], "--workers"),
])
def test_bad_input_exits_2_with_one_line_and_no_traceback(workdir, capsys, args, expected):
    study = study_file(workdir, "bad", "search: {sampler: grid}\n")
    (workdir / "empty").mkdir()
    argv = [a.format(study=study, empty=workdir / "empty") for a in args] + ["--tracking-uri", uri(workdir)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_changed_configuration_is_refused_on_resume(workdir, capsys):
    study = study_file(workdir, "drift", "search: {sampler: grid}\n")
    assert main(cli(workdir, study)) == 0
    study_file(workdir, "drift", "search: {sampler: grid}\n", epochs=EPOCHS + 1)
    assert main(cli(workdir, study)) == 2
    err = capsys.readouterr().err
    assert "train.epochs: 2 -> 3" in err and "new name" in err
    # Where the data lives is not what is trained: another SIMCLR_DATA or thread count is fine.
    study_file(workdir, "drift", "search: {sampler: grid}\n")
    assert main(cli(workdir, study, "--set", "train.num_threads=2", "--set", "data.root=/elsewhere")) == 0


def test_tracking_store_comes_from_the_flag_then_the_environment_then_sqlite(monkeypatch):
    from ablations.tracking import resolve_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None) == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert resolve_tracking_uri(None) == "sqlite:///elsewhere.db"
    assert resolve_tracking_uri("http://tracking:5000") == "http://tracking:5000"
