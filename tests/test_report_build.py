"""Writing one study's report (ablations.report.build): the files in the order they are printed, no
figure left from an earlier report that no longer applies, and a store that refuses the artifacts."""

import pytest
from mlflow import MlflowClient
from test_report_records import FakeStudy, store  # noqa: F401 (store is a fixture)

from ablations.report.build import build_report
from ablations.report.records import ReportError, read_study


def seeds_study(store: str, tmp_path):
    study = FakeStudy(store, "seeds", tmp_path)
    for seed in (0, 1):
        study.trial({"train.temperature": 0.5}, seed, 0.4 + 0.01 * seed)
    study.finish()
    return read_study(MlflowClient(store), store, "seeds")


def test_build_writes_tables_readme_then_figures_and_clears_stale_ones(store, tmp_path):  # noqa: F811
    records = seeds_study(store, tmp_path)
    figures_dir = tmp_path / "reports" / "seeds" / "figures"
    figures_dir.mkdir(parents=True)
    (figures_dir / "pair_grid.png").write_bytes(b"from an earlier report")  # this study has no pairs
    (figures_dir / "notes.txt").write_text("not the report's")
    written = build_report(records, tmp_path / "reports")
    study_dir = tmp_path / "reports" / "seeds"
    assert written.paths == [study_dir / "runs.parquet", study_dir / "history.parquet", study_dir / "summary.parquet",
                             study_dir / "README.md", figures_dir / "training_curves.png",
                             figures_dir / "training_curves.csv"]
    # The study names no verdict rule, so no comparisons.parquet either.
    assert list(written.readings) == ["training_curves"] and written.verdict is None
    assert not (study_dir / "comparisons.parquet").exists()
    assert not (figures_dir / "pair_grid.png").exists() and (figures_dir / "notes.txt").exists()


class RefusingArtifacts:
    """An MlflowClient whose log_artifact fails, as a read-only tracking server's would."""

    tracking_uri = "http://tracking.invalid"  # not SQLite: called once, not retried

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        return getattr(self.client, name)

    def log_artifact(self, *args):
        raise PermissionError("read-only artifact store")


def test_a_store_that_refuses_the_artifacts_is_one_clear_error(store, tmp_path):  # noqa: F811
    records = seeds_study(store, tmp_path)
    with pytest.raises(ReportError, match=r"wrote .*seeds, but could not log it to parent run \w+: read-only "
                                          r"artifact store \(--no-log to skip\)"):
        build_report(records, tmp_path / "reports", client=RefusingArtifacts(MlflowClient(store)))
    assert (tmp_path / "reports" / "seeds" / "README.md").exists()  # the files are written first


def test_the_report_of_another_run_of_the_same_study_name_is_kept(store, tmp_path, mlflow_template):  # noqa: F811
    """A committed result, or a study of the same name in another store: never written over unasked."""
    records = seeds_study(store, tmp_path)
    out = tmp_path / "reports"
    kept = out / "seeds"
    kept.mkdir(parents=True)
    written = build_report(records, out)
    assert written.paths[0] == kept / "runs.parquet"  # an empty folder, or this study's own: written
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mlflow.db").write_bytes(mlflow_template.read_bytes())
    elsewhere = f"sqlite:///{tmp_path}/other/mlflow.db"  # the same study name in another store
    other = FakeStudy(elsewhere, "seeds", tmp_path / "other")
    for seed in (0, 1):
        other.trial({"train.temperature": 0.5}, seed, 0.6)
    other.finish()
    before = (kept / "runs.parquet").read_bytes()
    client = MlflowClient(elsewhere)
    again = build_report(read_study(client, elsewhere, "seeds"), out)
    assert (kept / "runs.parquet").read_bytes() == before
    assert again.paths[0].parent.name.startswith("seeds-") and again.paths[0].exists()
    replaced = build_report(read_study(client, elsewhere, "seeds"), out, replace=True)
    assert replaced.paths[0] == kept / "runs.parquet" and (kept / "runs.parquet").read_bytes() != before


def test_a_full_disk_names_the_report_folder(store, tmp_path, monkeypatch):  # noqa: F811
    """pyarrow and matplotlib say only "[Errno 28] ... No space left on device" when a write fails."""
    from ablations.messages import describe_os_error
    from ablations.report import build
    records = seeds_study(store, tmp_path)

    def full_disk(*args, **kwargs):
        raise OSError(28, "Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(build, "write_figures", full_disk)
    with pytest.raises(OSError) as caught:
        build_report(records, tmp_path / "reports")
    study_dir = tmp_path / "reports" / "seeds"
    assert caught.value.filename == str(study_dir)
    assert describe_os_error(caught.value) == (f"{study_dir}: No space left on device; the disk is full; free "
                                               "space and run the same command again (what was recorded is kept)")
