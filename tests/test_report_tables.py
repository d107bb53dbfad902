"""The report's tables (ablations.report.tables): one row per run with typed columns, one row per
configuration over the runs that count, and the values worked by hand."""

import math

import pandas as pd
import pytest
from mlflow import MlflowClient
from test_report_records import FakeStudy, store  # noqa: F401 (store is a fixture)

from ablations.report.records import _typed, read_study, runs_table
from ablations.design.plan import table_value
from ablations.report.tables import configuration_labels, duplicates, included, left_out_reasons, metric_columns, summarize


def test_summary_groups_by_cell_without_the_seed(store, tmp_path):  # noqa: F811
    study = FakeStudy(store, "seeds", tmp_path)
    for seed in (0, 1, 2):
        study.trial({"train.temperature": 0.5}, seed, 0.4 + 0.01 * seed)
    study.finish()

    runs, keys, pair = runs_table(read_study(MlflowClient(store), store, "seeds").trials)
    assert keys == ["train.temperature"] and not pair and list(runs["seed"]) == [0, 1, 2]
    assert list(runs["role"]) == ["trial"] * 3
    summary = summarize(runs, keys, metric_columns(runs))
    assert len(summary) == 1 and summary["n"].iloc[0] == 3
    assert summary["probe_h_mean"].iloc[0] == pytest.approx(0.41)


def runs_frame() -> pd.DataFrame:
    """Two configurations; one FAILED run and one pruned run that must not count."""
    return pd.DataFrame({
        "train.temperature": [0.1, 0.1, 0.5, 0.5, 0.5],
        "cell": ["t=0.1", "t=0.1", "t=0.5", "t=0.5", "t=0.5"],
        "status": ["FINISHED", "FINISHED", "FINISHED", "FAILED", "FINISHED"],
        "pruned": [False, False, False, False, True],
        "probe_h": [0.40, 0.44, 0.50, math.nan, 0.30],
    })


def test_summary_counts_only_finished_unpruned_runs():
    runs = runs_frame()
    assert list(included(runs).index) == [0, 1, 2]
    assert left_out_reasons(runs) == {"FAILED": 1, "pruned": 1}
    summary = summarize(runs, ["train.temperature"], ["probe_h"])
    assert list(summary.columns) == ["train.temperature", "cell", "n", "probe_h_mean", "probe_h_std"]
    assert list(summary["n"]) == [2, 1] and summary["n"].dtype == "int64"
    # (0.40 + 0.44) / 2 = 0.42; SD (ddof 1) = sqrt(2 * 0.02^2 / 1) = 0.02 sqrt(2); one run: mean 0.50, SD NaN.
    assert list(summary["probe_h_mean"]) == pytest.approx([0.42, 0.50])
    assert summary["probe_h_std"].iloc[0] == pytest.approx(0.02 * math.sqrt(2))
    assert math.isnan(summary["probe_h_std"].iloc[1])


def test_a_configuration_and_seed_finished_twice_counts_once_and_the_copy_is_named():
    """A store that lost a result had its unit trained again: the second run of (cell, seed) is no seed."""
    runs = pd.DataFrame({
        "run_id": ["a", "b", "c", "d", "e"], "run_name": ["t0 s0", "t0 s1", "t0 s0", "t0 s1", "t0 s2"],
        "cell": ["t=0.1"] * 5, "seed": [0, 1, 0, 1, 2], "trial": [0, 1, 5, 6, 7],
        "start_time": pd.to_datetime([1, 2, 5, 6, 7], unit="s", utc=True),
        "status": ["FINISHED"] * 4 + ["FAILED"], "pruned": [False] * 5, "probe_h": [0.40, 0.44, 0.90, 0.10, math.nan],
    })
    assert list(included(runs)["run_id"]) == ["a", "b"]
    assert list(duplicates(runs)["run_id"]) == ["c", "d"]
    assert left_out_reasons(runs) == {"FAILED": 1, "duplicate": 2}
    summary = summarize(runs, [], ["probe_h"])
    assert list(summary["n"]) == [2] and summary["probe_h_mean"].iloc[0] == pytest.approx(0.42)


def test_cell_values_and_column_types():
    assert table_value(["crop", "color"]) == "crop+color"
    assert table_value([{"op": "blur", "sigma": 1.5}, "crop"]) == "blur(sigma=1.5)+crop"
    assert table_value([]) == "[]" and table_value({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    assert table_value(0.5) == 0.5
    assert _typed([1, 2]).dtype == "int64" and _typed([1, None]).dtype == "Int64"
    assert _typed([1, 2.5]).dtype == "float64" and _typed([True, False]).dtype == "bool"
    text = _typed(["a", None])
    assert pd.api.types.is_string_dtype(text) and text.iloc[0] == "a" and text.isna().iloc[1]


def test_configuration_labels_name_pairs_and_varied_keys():
    runs = pd.DataFrame({"first": ["crop", "crop"], "second": ["color", "crop"], "train.batch_size": [256.0, 512.0]})
    assert configuration_labels(runs, ["first", "second", "train.batch_size"], pair=True) == [
        "crop+color batch_size=256", "crop batch_size=512"]
    assert configuration_labels(runs[["train.batch_size"]], [], pair=False) == ["base", "base"]
    # With the runner's cell ids (every table built from MLflow), the name is plan.cell_name's.
    cells = runs.assign(cell=["augment.pipeline=crop+color train.batch_size=256", "augment.pipeline=crop train.batch_size=512"])
    assert configuration_labels(cells, ["first", "second", "train.batch_size"], pair=True) == [
        "crop+color batch_size=256", "crop batch_size=512"]
