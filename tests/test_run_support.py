"""Shared by the tests of `ablations.run` (tests/test_run_*.py); no tests of its own.

Tiny studies on the synthetic data set, the per-test working folder with its MLflow database, and
readers of what a run left in Optuna and MLflow.
"""

import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

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


def enqueue_plan(study: optuna.Study, spec) -> int:
    """Every planned unit, in plan order, without `resume.prepare`'s checks: a study as its creator plans
    it, for the tests that build one piece by piece (claiming, workers, sessions)."""
    from ablations.stores.resume import plan_attrs

    planned = spec.trials() if spec.search.sampler == "grid" else []
    study.add_trials([optuna.trial.create_trial(state=TrialState.WAITING, user_attrs=plan_attrs(p))
                      for p in planned])
    return len(planned)


# A wait in these tests ends when what it awaits appears or the process under test exits; this limit only
# ends a hang, far above what any load makes of a wait that would succeed.
SAFETY_LIMIT_S = 900


def wait_for_running_epoch(workdir: Path, name: str, process, epoch: int, storage: str | None = None):
    """Block until a trial is RUNNING past `epoch` (so its checkpoint exists); return that trial. Fails
    at once if the process exits first."""
    deadline = time.monotonic() + SAFETY_LIMIT_S
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
    raise AssertionError(f"no trial reached epoch {epoch} in {SAFETY_LIMIT_S} s (a hang?)")


def start(workdir: Path, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ablations.run", *args], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
