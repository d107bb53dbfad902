"""ablations.stats.results: which runs count, worked by hand, and one results table from either source
(Optuna's trials during a run, MLflow or runs.parquet afterwards) for the same runs of a tiny study."""

import math

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from test_run_support import cli, optuna_trials, study_file, uri, workdir  # noqa: F401

from ablations.report import saved
from ablations.report.parquet import write_records
from ablations.report.records import open_client, read_study
from ablations.report.tables import build_tables
from ablations.run import main
from ablations.stats.results import COLUMNS, RunResult, counting, results_table
from ablations.stores.confirm import results_frame


def run(cell, seed, h=0.5, *, finished=True, pruned=False, floor=False, started=None, **values):
    return RunResult(cell, seed, h, None, finished, pruned, floor, started, values=values)


def test_a_run_counts_when_finished_unpruned_and_first_of_its_cell_and_seed():
    runs = [run("a", 0, started=5.0), run("a", 0, started=1.0), run("a", 1, finished=False),
            run("a", 2, pruned=True), run("b", 0), run("b", 0), run(None, 0), run(None, 0)]
    # The second run of (a, 0) started first: it is the one that counts. Of two runs without a start time
    # the earlier in the list counts; runs naming no cell are never duplicates of each other.
    assert counting(runs) == [False, True, False, False, True, False, True, True]


def test_the_table_keeps_the_counting_runs_of_configurations_with_a_cell_and_the_objective():
    runs = [run("a", 0, 0.40, **{"train.temperature": 0.1}), run("floor", 0, 0.10, floor=True),
            run("b", 0, None, **{"train.temperature": 0.5}), run(None, 1, 0.30),
            run("b", 1, 0.45, **{"train.temperature": 0.5, "model.head": "mlp"}), run("a", 0, 0.99)]
    table = results_table(runs)
    assert list(table.columns) == [*COLUMNS, "train.temperature", "model.head"]
    assert table["cell"].tolist() == ["a", "b"] and table["seed"].tolist() == [0, 1]
    assert table["probe_h"].tolist() == [0.40, 0.45] and table["probe_z"].isna().all()
    assert table["train.temperature"].tolist() == [0.1, 0.5]
    assert math.isnan(table["model.head"].iloc[0]) and table["model.head"].iloc[1] == "mlp"


def test_optuna_trials_adapt_to_the_same_rows_as_the_runs_table():
    """A duplicate trial (it backed off: FAIL with duplicate_of) and a pruned one never count."""
    attrs = {"cell": "a", "seed": 0, "varied": {"train.temperature": 0.1, "train.seed": 0}, "probe_h": 0.4}
    trials = [optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.4, user_attrs=attrs),
              optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.4,
                                        user_attrs={**attrs, "seed": 1, "duplicate_of": 0}),
              optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs={**attrs, "seed": 2})]
    table = results_frame(trials)
    assert table.to_dict("records") == [{"cell": "a", "seed": 0, "probe_h": 0.4, "probe_z": pytest.approx(math.nan,
                                                                                                        nan_ok=True),
                                         "train.temperature": 0.1}]


@pytest.mark.slow
def test_optuna_mlflow_and_parquet_give_the_same_results_table(workdir):  # noqa: F811
    # A pair study (first/second, the pipeline left to them) crossed with a scalar key, with a floor: every
    # kind of column the rules read, and a run the table leaves out.
    study = study_file(workdir, "both", """\
search:
  pairs: [crop, color]
  grid: {train.temperature: [0.5]}
floor: true
""", seeds=(0, 1), epochs=1, knn_every=0)
    assert main(cli(workdir, study)) == 0
    from_optuna = results_frame(optuna_trials(workdir, "both"))

    records = read_study(open_client(uri(workdir)), uri(workdir), "both")
    from_mlflow = build_tables(records).results
    write_records(records, workdir)
    from_parquet = build_tables(saved.read(workdir)).results

    assert len(from_optuna) == 4 * 2 and "floor" not in set(from_optuna["cell"])
    assert list(from_optuna.columns) == [*COLUMNS, "first", "second", "train.temperature"]
    pd.testing.assert_frame_equal(from_mlflow, from_optuna)
    pd.testing.assert_frame_equal(from_parquet, from_optuna)
