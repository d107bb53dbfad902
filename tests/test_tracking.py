"""ablations.stores.tracking: creating a fresh SQLite tracking store from several processes at once, and a
store left half-migrated."""

import sqlite3
import subprocess
import sys
import textwrap

import pytest

from ablations.run.study_file import load_study
from ablations.design.plan import cell_name
from ablations.stores.tracking import Tracker
from ablations.stores.tracking_store import TrackingError

OPEN_AND_LOG = textwrap.dedent("""
    import sys
    from ablations.stores.tracking import Tracker
    tracker = Tracker(sys.argv[1], "race")
    run = tracker.client.create_run(tracker.experiment_id, run_name=sys.argv[2])
    tracker.client.set_terminated(run.info.run_id)
""")


@pytest.mark.slow
@pytest.mark.parametrize("processes", [2, 4])
def test_processes_started_together_on_a_fresh_sqlite_store_all_finish(tmp_path, processes):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    started = [subprocess.Popen([sys.executable, "-c", OPEN_AND_LOG, uri, f"run{i}"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for i in range(processes)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in started]
    assert [rc for rc, _ in results] == [0] * processes, [err[-500:] for _, err in results]
    tracker = Tracker(uri, "race")
    runs = tracker.client.search_runs([tracker.experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"run{i}" for i in range(processes)]
    with sqlite3.connect(tmp_path / "mlflow.db") as connection:
        assert not connection.execute("SELECT name FROM sqlite_master WHERE name LIKE '_alembic_tmp_%'").fetchall()


def test_a_half_migrated_store_is_reported_and_left_alone(tmp_path, mlflow_template):
    db = tmp_path / "mlflow.db"
    db.write_bytes(mlflow_template.read_bytes())
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE _alembic_tmp_tags (key TEXT)")
    before = db.read_bytes()
    with pytest.raises(TrackingError, match=r"half-migrated .* _alembic_tmp_tags.*mlflow db upgrade"):
        Tracker(f"sqlite:///{db}", "study")
    assert db.read_bytes() == before


def test_a_study_experiment_opens_on_its_training_runs(tmp_path, mlflow_template):
    db = tmp_path / "mlflow.db"
    db.write_bytes(mlflow_template.read_bytes())
    tracker = Tracker(f"sqlite:///{db}", "study")
    experiment = tracker.client.get_experiment(tracker.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    # An experiment made before the tag existed gets it when the study is opened again.
    tracker.client.delete_experiment_tag(tracker.experiment_id, "mlflow.experimentKind")
    again = Tracker(f"sqlite:///{db}", "study")
    assert again.client.get_experiment(again.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_trial_runs_recorded_before_the_config_tag_get_it(tmp_path, mlflow_template):
    db = tmp_path / "mlflow.db"
    db.write_bytes(mlflow_template.read_bytes())
    tracker = Tracker(f"sqlite:///{db}", "study")
    old = tracker.client.create_run(tracker.experiment_id, run_name="temperature=0.1 batch_size=256 seed=3",
                                    tags={"ablations.role": "trial",
                                          "ablations.cell": "train.temperature=0.1 train.batch_size=256"})
    new = tracker.client.create_run(tracker.experiment_id, run_name="crop seed=0",
                                    tags={"ablations.role": "trial", "ablations.config": "kept as recorded"})
    parent = tracker.client.create_run(tracker.experiment_id, run_name="study", tags={"ablations.role": "parent"})
    assert tracker.label_configs() == 1
    tags = {run_id: tracker.client.get_run(run_id).data.tags for run_id in
            (old.info.run_id, new.info.run_id, parent.info.run_id)}
    assert tags[old.info.run_id]["ablations.config"] == "temperature=0.1 batch_size=256"
    assert tags[new.info.run_id]["ablations.config"] == "kept as recorded"
    assert "ablations.config" not in tags[parent.info.run_id]
    assert tracker.label_configs() == 0
    # The runs view's first save labels what is unlabelled; later saves (every start) read no runs: the
    # view's presence means every run older than it was labelled, and the runner tags the new ones.
    def unlabelled():
        return tracker.client.create_run(tracker.experiment_id, run_name="crop seed=1",
                                         tags={"ablations.role": "trial", "ablations.cell": "augment.pipeline=crop"})

    def config_of(run):
        return tracker.client.get_run(run.info.run_id).data.tags.get("ablations.config")

    before_view = unlabelled()
    tracker.save_runs_view({"selectedColumns": []})
    assert config_of(before_view) == "crop"
    after_view = unlabelled()
    tracker.save_runs_view({"selectedColumns": []})
    assert config_of(after_view) is None


def test_cell_name_reads_like_a_run_name_without_its_seed(tmp_path):
    assert cell_name("augment.pipeline=crop+color") == "crop+color"
    assert cell_name("train.temperature=0.1 train.batch_size=256") == "temperature=0.1 batch_size=256"
    assert cell_name("model.head=mlp") == "head=mlp" and cell_name("floor") == "floor" and cell_name("base") == "base"
    # The same rule as ablations.design.plan's run names, for every planned trial of a study that varies a
    # pipeline (pairs), a grid key and the floor.
    study = tmp_path / "s.yaml"
    study.write_text("name: s\nbase: {data: {dataset: synthetic}}\nfloor: true\nseeds: [0, 3]\n"
                     "search: {pairs: [crop, color], grid: {train.temperature: [0.1, 0.5]}}\n")
    planned = load_study(study).trials()
    assert len(planned) == 2 * (4 * 2 + 1)
    for trial in planned:
        assert f"{cell_name(trial.cell.id)} seed={trial.seed}" == trial.run_name


def test_ctrl_c_while_the_schema_is_made_waits_until_it_is_whole(tmp_path, monkeypatch):
    """A first start interrupted while MLflow created its tables left mlflow.db half-migrated, refused by every
    later run. The signal is held until the schema is made, then ends the command as any Ctrl-C does."""
    import os
    import signal
    import threading

    from mlflow import MlflowClient

    made = []
    create = MlflowClient.search_experiments

    def interrupted_while_creating(self, *args, **kwargs):
        # To the process, as from a terminal: the kernel may hand it to any thread (a run has torch's), and
        # Python runs the handler in the main thread at once, unless held.
        os.kill(os.getpid(), signal.SIGINT)
        result = create(self, *args, **kwargs)
        made.append(True)
        return result

    monkeypatch.setattr(MlflowClient, "search_experiments", interrupted_while_creating)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    other_thread_ends = threading.Event()
    other_thread = threading.Thread(target=other_thread_ends.wait)
    other_thread.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            Tracker(f"sqlite:///{tmp_path}/mlflow.db", "study")
    finally:
        signal.signal(signal.SIGINT, previous)
        other_thread_ends.set()
        other_thread.join()
    assert made == [True]
    with sqlite3.connect(tmp_path / "mlflow.db") as connection:
        assert not connection.execute("SELECT name FROM sqlite_master WHERE name LIKE '_alembic_tmp_%'").fetchall()



def test_metrics_keep_four_decimals_and_a_tiny_time_is_not_zero():
    from ablations.stores.tracking import rounded
    assert rounded("probe_h", 0.39899998) == 0.399
    assert rounded("seconds/train", 12.345678) == 12.3457
    assert rounded("lr", 1.23456789e-5) == 1.23456789e-5
    # A synthetic data set loads in tens of microseconds: rounded to 4 decimals it read 0.0 (and the tiny
    # study's report test, which asserts the data phase took time, failed now and then); it reads as the
    # smallest step instead, still with 4 decimals at most.
    assert rounded("seconds/data", 0.0000412345) == 0.0001
    assert rounded("seconds/data", -0.00002) == -0.0001
    assert rounded("seconds/preview", 0.0) == 0.0


def test_a_store_file_replaced_during_a_run_is_named_and_nothing_more_is_written(tmp_path, mlflow_template):
    """Before, another file moved over mlflow.db went unnoticed: pooled connections wrote on into the moved
    file and new ones into its replacement, each holding part of the study."""
    from ablations.stores.errors import StoreUnavailable
    db = tmp_path / "mlflow.db"
    db.write_bytes(mlflow_template.read_bytes())
    tracker = Tracker(f"sqlite:///{db}", "study")
    run = tracker.call(tracker.client.create_run, tracker.experiment_id, run_name="before")
    kept = tmp_path / "kept.db"
    db.rename(kept)
    (tmp_path / "other.db").write_bytes(mlflow_template.read_bytes())
    (tmp_path / "other.db").rename(db)  # a backup restored, another study's store: not the file opened
    with pytest.raises(StoreUnavailable) as caught:  # stops the worker, as a lost store does
        tracker.call(tracker.client.set_tag, run.info.run_id, "after", "1")
    message = str(caught.value)
    assert f"its file {db} was replaced by another file while the study ran" in message
    assert "Put the original file back" in message and "--tracking-uri" in message and "\n" not in message
    with sqlite3.connect(kept) as moved, sqlite3.connect(db) as replacement:
        assert moved.execute("select name from runs").fetchall() == [("before",)]  # what was recorded, kept
        assert moved.execute("select count(*) from tags where key = 'after'").fetchone() == (0,)
        assert replacement.execute("select count(*) from runs").fetchone() == (0,)
