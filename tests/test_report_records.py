"""Reading a study's records from MLflow (ablations.report.records), and the fake studies every report
test builds: a parent run and trial runs written with MlflowClient exactly as ablations.run and
ablations.stores.tracking write them. The other tests/test_report_*.py files import FakeStudy, pair_study and
the `store` fixture from here."""

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from ablations.report.records import (
    ReportError, as_int, list_studies, read_histories, read_study, shared_param,
)

EPOCHS = 3
OPS = ("crop", "color", "noise")  # three of Figure 5's seven, in its order
SEED_OFFSET = {0: +0.01, 1: -0.01, 2: 0.0}  # probe_h = cell value +- 0.01: SD over seeds 0, 1 = 0.01 * sqrt(2)
# A per-cell wobble on seed 2 only, so that a three-seed study's block model has residual noise.
WOBBLE_2 = {("crop", "crop"): 0.002, ("crop", "color"): -0.003, ("crop", "noise"): 0.001,
            ("color", "crop"): 0.0, ("color", "color"): -0.001, ("color", "noise"): 0.002,
            ("noise", "crop"): -0.002, ("noise", "color"): 0.003, ("noise", "noise"): -0.0015}
# Crop with colour far ahead of everything else, as in the paper.
WINNING = {("crop", "crop"): 0.40, ("crop", "color"): 0.60, ("crop", "noise"): 0.42,
           ("color", "crop"): 0.58, ("color", "color"): 0.30, ("color", "noise"): 0.25,
           ("noise", "crop"): 0.38, ("noise", "color"): 0.28, ("noise", "noise"): 0.20}
# noise->crop wins: the finding does not hold.
LOSING = {**WINNING, ("noise", "crop"): 0.65}


# --------------------------------------------------------------------------------------------------
# A study's records, written with MlflowClient exactly as ablations.run and ablations.stores.tracking write them


@pytest.fixture
def store(tmp_path, monkeypatch, mlflow_template):
    (tmp_path / "mlflow.db").write_bytes(mlflow_template.read_bytes())
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path}/mlflow.db"


class FakeStudy:
    """A parent run and trial runs with the runner's tags, params and metrics."""

    def __init__(self, uri: str, name: str, workdir: Path, verdict: str | None = None):
        from mlflow import MlflowClient

        self.client = MlflowClient(uri)
        self.name = name
        self.experiment_id = self.client.create_experiment(
            name, artifact_location=str(workdir / "mlartifacts" / name), tags={"ablations.study": name})
        self.parent_id = self.client.create_run(self.experiment_id, run_name=name, tags={
            "ablations.role": "parent", "ablations.study": name, "ablations.study_uid": "uid-" + name,
            "optuna.study": name, "mlflow.note.content": f"{name}: a fake study", "git_commit": "abc123def4567890",
            "git_dirty": "false", **({"ablations.verdict": verdict} if verdict else {})}).info.run_id
        self.trials = 0
        self.clock = 1_700_000_000_000

    def trial(self, values: dict, seed: int, h: float | None, z: float | None = None, status: str = "FINISHED",
              pair: tuple[str, str] | None = None, error: str | None = None, epochs: int = EPOCHS) -> str:
        from mlflow.entities import Metric, Param, RunTag

        number, self.trials = self.trials, self.trials + 1
        plain = {key: [op for op in value] if isinstance(value, list) else value for key, value in values.items()}
        label = lambda k, v: "+".join(v) if isinstance(v, list) else json.dumps(v) if not isinstance(v, str) else v  # noqa: E731
        cell = " ".join(f"{k}={label(k, v)}" for k, v in values.items())
        name = " ".join([label(k, v) if k == "augment.pipeline" else f"{k.split('.')[1]}={label(k, v)}"
                         for k, v in values.items()] + [f"seed={seed}"])
        tags = {"mlflow.parentRunId": self.parent_id, "ablations.role": "trial", "ablations.study": self.name,
                "ablations.study_uid": "uid-" + self.name, "optuna.study": self.name, "optuna.trial": str(number),
                "ablations.cell": cell, "ablations.unit": f"{cell} seed={seed}",
                "ablations.varied": json.dumps({**plain, "train.seed": seed}), "ablations.seed": str(seed),
                "torch_version": "2.14.1", "device": "cpu (x86_64, 1 threads)", "git_commit": "abc123def4567890",
                "git_dirty": "false"}
        if pair:
            tags["ablations.first"], tags["ablations.second"] = pair
        start = self.clock
        self.clock += 60_000
        run_id = self.client.create_run(self.experiment_id, start_time=start, tags=tags, run_name=name).info.run_id
        params = {"data.dataset": "synthetic", "model.encoder": "small_cnn", "train.epochs": EPOCHS,
                  "train.seed": seed, "train.temperature": 0.5, "train.batch_size": 256, "model.head": "mlp",
                  "augment.color_strength": 0.5, "augment.pipeline": ["crop", "hflip", "color"], **plain}
        metrics = []
        for epoch in range(1, epochs + 1):
            for key, value in {"loss": 5.0 - 0.5 * epoch, "contrastive_acc": 0.1 * epoch,
                               "knn_acc": (h or 0.3) * epoch / EPOCHS, "lr": 0.1 / epoch, "images_per_s": 500.0}.items():
                metrics.append(Metric(key, value, start + epoch * 1000, epoch))
        if h is not None:
            metrics += [Metric("probe_h", h, start + 50_000, 0), Metric("wall_time_s", 42.0, start + 50_000, 0)]
        if z is not None:
            metrics.append(Metric("probe_z", z, start + 50_000, 0))
        self.client.log_batch(run_id, metrics=metrics, params=[
            Param(k, v if isinstance(v, str) else json.dumps(v)) for k, v in params.items()])
        if error:
            self.client.log_batch(run_id, tags=[RunTag("ablations.error", error)])
        if status == "KILLED":
            self.client.log_batch(run_id, tags=[RunTag("ablations.killed", "its worker died or was interrupted")])
        self.client.set_terminated(run_id, status=status, end_time=start + 55_000)
        return run_id

    def finish(self):
        self.client.set_terminated(self.parent_id, "FINISHED")
        return self


def pair_study(uri: str, workdir: Path, cells: dict, name: str = "pairs", seeds=(0, 1),
               verdict: str | None = "crop_color_best") -> tuple[FakeStudy, dict]:
    """3x3 grid x 2 seeds (or `seeds`); crop->color seed 0 first KILLED then retried; noise seed 1
    FAILED. Its parent names the rule `verdict`, as a study file with `verdict:` does. Returns the study
    and the probe_h values of the runs that count, per cell."""
    study = FakeStudy(uri, name, workdir, verdict=verdict)
    logged: dict[tuple[str, str], list[float]] = {}
    for first in OPS:
        for second in OPS:
            pipeline = [first] if first == second else [first, second]
            for seed in seeds:
                h = cells[first, second] + SEED_OFFSET[seed] + (WOBBLE_2[first, second] if seed == 2 else 0.0)
                if (first, second, seed) == ("crop", "color", 0):
                    study.trial({"augment.pipeline": pipeline}, seed, None, status="KILLED", pair=(first, second),
                                epochs=1)
                if (first, second, seed) == ("noise", "noise", 1):
                    study.trial({"augment.pipeline": pipeline}, seed, None, status="FAILED", pair=(first, second),
                                error="RuntimeError: non-finite loss (nan) at epoch 2", epochs=1)
                    continue
                study.trial({"augment.pipeline": pipeline}, seed, h, z=h - 0.1, pair=(first, second))
                logged.setdefault((first, second), []).append(h)
    return study.finish(), logged


# --------------------------------------------------------------------------------------------------


def test_read_study_of_two_parents_asks_which_and_takes_that_ones_trials_in_trial_order(store, tmp_path):
    study = FakeStudy(store, "again", tmp_path)
    study.trial({"train.temperature": 0.1}, 0, 0.4)
    study.finish()
    # A second start of the same study name: a later parent run with its own trials.
    first_parent = study.parent_id
    study.parent_id = study.client.create_run(
        study.experiment_id, run_name="again", start_time=study.client.get_run(first_parent).info.start_time + 10_000,
        tags={"ablations.role": "parent", "ablations.study": "again"}).info.run_id
    later = [study.trial({"train.temperature": t}, 0, 0.5) for t in (0.2, 0.3)]
    study.finish()
    # Two parents: which one is meant is asked, naming both.
    with pytest.raises(ReportError, match="2 parent runs") as asked:
        read_study(MlflowClient(store), store, "again")
    assert first_parent in str(asked.value) and study.parent_id in str(asked.value) and "--parent" in str(asked.value)
    records = read_study(MlflowClient(store), store, "again", study.parent_id)
    assert records.parent_run_id == study.parent_id and records.earlier_parents == 1
    assert [run.info.run_id for run in records.trials] == later  # optuna.trial 1, 2; not the first parent's
    assert shared_param(records, "train.temperature") is None  # 0.2 and 0.3 differ
    assert shared_param(records, "data.dataset") == "synthetic"


def test_list_studies_names_only_experiments_with_a_parent_run(store, tmp_path):
    FakeStudy(store, "b", tmp_path)
    FakeStudy(store, "a", tmp_path)
    MlflowClient(store).create_experiment("bare")
    assert list_studies(MlflowClient(store), store) == ["a", "b"]


def test_read_study_of_a_deleted_experiment_says_so(store, tmp_path):
    study = FakeStudy(store, "gone", tmp_path)
    study.client.delete_experiment(study.experiment_id)
    with pytest.raises(ReportError, match="study 'gone' is deleted in .*no studies there yet"):
        read_study(MlflowClient(store), store, "gone")


def test_read_histories_keeps_the_last_value_logged_at_each_epoch(store, tmp_path):
    study = FakeStudy(store, "curves", tmp_path)
    run_id = study.trial({"train.temperature": 0.1}, 0, 0.4)
    # A resumed run logs epoch 2 again, later: that value wins.
    study.client.log_metric(run_id, "loss", 9.5, timestamp=study.clock + 1, step=2)
    records = read_study(MlflowClient(store), store, "curves")
    histories = read_histories(MlflowClient(store), records.trials, keys=("loss", "lr", "not_logged"))
    # FakeStudy logs loss = 5 - 0.5 epoch and lr = 0.1 / epoch at epochs 1..3.
    assert histories == {run_id: {"loss": {1: 4.5, 2: 9.5, 3: 3.5}, "lr": {1: 0.1, 2: 0.05, 3: 0.1 / 3}}}


def test_as_int_reads_tags_and_params():
    assert as_int("3") == 3 and as_int(7) == 7
    assert as_int(None) is None and as_int("3.5") is None and as_int("seed") is None
