"""ablations.stores.reconcile: the MLflow records and the Optuna storage, two witnesses of one unit, read side by
side on resume, so that no unit is trained twice and no study is split between two places."""

import shutil

import pytest
from optuna.trial import TrialState

from ablations.report.records import open_client, read_study
from ablations.report.tables import build_tables
from ablations.run import main
from test_run_support import cli, complete_once_per_unit, mlflow_runs, optuna_trials, study_file, uri, workdir  # noqa: F401

GRID = """\
search:
  sampler: grid
  grid:
    train.temperature: [0.2, 0.5]
"""


def _journal(workdir, name):
    return workdir / "runs" / name / "optuna.journal"


@pytest.mark.slow
def test_a_journal_cut_short_at_several_points_loses_no_result_and_counts_none_twice(workdir, capsys):
    """The journal cut at several points after a finished study (an editor, a bad copy, a full disk that
    kept only its head): the rerun trains no unit that MLflow holds finished, every unit ends finished exactly
    once in both stores, and the report's n is the number of seeds."""
    study = study_file(workdir, "cut", GRID, seeds=(0, 1))
    assert main(cli(workdir, study)) == 0
    journal = _journal(workdir, "cut")
    whole, database = journal.read_bytes(), (workdir / "mlflow.db").read_bytes()
    ready = whole.index(b"ablations.ready")
    head = whole.index(b"\n", ready) + 1  # the study is planned and its records open up to here
    cuts = sorted({head + (len(whole) - head) * share // 4 for share in (1, 2, 3)} | {len(whole) - 1200})
    capsys.readouterr()
    for cut in cuts:
        journal.write_bytes(whole[:cut])
        (workdir / "mlflow.db").write_bytes(database)
        shutil.rmtree(workdir / "mlartifacts", ignore_errors=True)
        assert main(cli(workdir, study)) == 0, cut
        out = capsys.readouterr().out
        assert "finished in MLflow" in out and "not trained again" in out, (cut, out)
        assert "had died" not in out, (cut, out)
        assert len(complete_once_per_unit(optuna_trials(workdir, "cut"))) == 4, cut
        _, parents, children = mlflow_runs(workdir, "cut")
        finished = [r.data.tags["ablations.unit"] for r in children if r.info.status == "FINISHED"]
        assert len(parents) == 1 and sorted(finished) == sorted(set(finished)) and len(finished) == 4, cut
        records = read_study(open_client(uri(workdir)), uri(workdir), "cut")
        assert build_tables(records).summary["n"].tolist() == [2, 2], cut


def test_a_study_rerun_under_another_storage_is_refused_naming_the_one_it_ran_with(workdir, capsys):
    study = study_file(workdir, "placed", GRID)
    storage = f"sqlite:///{workdir}/optuna.db"
    assert main(cli(workdir, study, "--storage", storage)) == 0
    _, parents, children = mlflow_runs(workdir, "placed")
    capsys.readouterr()
    assert main(cli(workdir, study)) == 2  # the default journal: a new, empty study
    err = capsys.readouterr().err
    assert f"--storage {storage}" in err and parents[0].info.run_id in err and "new name" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    _, parents_after, children_after = mlflow_runs(workdir, "placed")
    assert len(parents_after) == 1 and len(children_after) == len(children) == 2
    assert not _journal(workdir, "placed").exists() or _journal(workdir, "placed").stat().st_size == 0
    assert main(cli(workdir, study, "--storage", storage)) == 0  # the flag it names resumes it
    assert len(mlflow_runs(workdir, "placed")[2]) == 2
