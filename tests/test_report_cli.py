"""The command (`python -m ablations.report`, ablations.report.cli): end to end from MLflow records to
Parquet tables, figures, README and artifacts on the parent run; bad input as one line and exit status 2;
and once from a tiny real study on synthetic data. Also `from ablations import report; report.main(argv)`,
which ablations.run calls when a study finishes."""

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_report_records import (  # noqa: F401 (store is a fixture)
    OPS, SEED_OFFSET, WINNING, FakeStudy, pair_study, store,
)

from ablations import report
from ablations.report import main


def test_pair_report_tables_figures_verdict_and_artifacts(store, tmp_path, capsys):  # noqa: F811
    study, logged = pair_study(store, tmp_path, WINNING, seeds=(0, 1, 2))
    assert main(["--study", "pairs", "--tracking-uri", store, "--out", str(tmp_path / "reports")]) == 0
    out_dir = tmp_path / "reports" / "pairs"
    printed = capsys.readouterr().out
    assert str(out_dir / "runs.parquet") in printed and str(out_dir / "history.parquet") in printed
    assert ("beats every pair without both (Figure 5): holds in part (holds: beats crop without colour, beats "
            "colour without crop; undecided: beats pairs of neither).") in printed

    # runs.parquet: every run, failed and killed included, with proper dtypes.
    runs = pd.read_parquet(out_dir / "runs.parquet")
    assert len(runs) == 9 * 3 + 1  # 26 finished, 1 failed, 1 killed
    assert runs["status"].value_counts().to_dict() == {"FINISHED": 26, "FAILED": 1, "KILLED": 1}
    assert set(runs["role"]) == {"trial"}  # this fake study ran no floor
    for column in ("run_id", "run_name", "role", "status", "first", "second", "cell", "device", "git_commit", "error"):
        assert pd.api.types.is_string_dtype(runs[column]), column
    for column in ("trial", "seed"):
        assert runs[column].dtype == "int64", column
    for column in ("probe_h", "probe_z", "knn_acc", "loss", "wall_time_s", "duration_s"):
        assert runs[column].dtype == "float64", column
    assert isinstance(runs["start_time"].dtype, pd.DatetimeTZDtype)
    assert sorted(runs["trial"]) == list(range(28))
    assert (runs["duration_s"] == 55.0).all()
    assert set(runs["device"]) == {"cpu (x86_64, 1 threads)"}
    failed = runs[runs["status"] == "FAILED"].iloc[0]
    assert (failed["first"], failed["second"], failed["seed"]) == ("noise", "noise", 1)
    assert "non-finite loss" in failed["error"] and math.isnan(failed["probe_h"])
    diagonal = runs[runs["first"] == runs["second"]]
    assert set(diagonal["run_name"].str.split().str[0]) == set(OPS)
    metadata = pq.read_schema(out_dir / "runs.parquet").metadata
    assert json.loads(metadata[b"ablations.parent_tags"])["ablations.verdict"] == "crop_color_best"
    assert json.loads(metadata[b"ablations.params"])["data.dataset"] == "synthetic"
    history = pd.read_parquet(out_dir / "history.parquet")
    assert len(history) == 26 * 3 and set(history["epoch"]) == {1, 2, 3}  # the finished runs, every epoch

    # summary.parquet: one row per cell over the finished runs; the left-out runs are counted.
    summary = pd.read_parquet(out_dir / "summary.parquet")
    assert len(summary) == 9
    assert list(summary.columns[:2]) == ["first", "second"]
    for column in ("probe_h_mean", "probe_h_std", "probe_z_mean", "probe_z_std", "n"):
        assert column in summary.columns
        assert pd.api.types.is_numeric_dtype(summary[column]), column
    assert summary["n"].dtype == "int64" and summary["n"].sum() == 26
    for (first, second), values in logged.items():
        row = summary[(summary["first"] == first) & (summary["second"] == second)].iloc[0]
        assert row["n"] == len(values)
        assert row["probe_h_mean"] == pytest.approx(np.mean(values))
        assert row["probe_z_mean"] == pytest.approx(np.mean(values) - 0.1)
        assert row["probe_h_std"] == pytest.approx(np.std(values, ddof=1))
    metadata = pq.read_schema(out_dir / "summary.parquet").metadata
    assert json.loads(metadata[b"ablations.left_out"]) == 2
    assert json.loads(metadata[b"ablations.left_out_by_reason"]) == {"FAILED": 1, "KILLED": 1}
    assert summary.attrs["left_out"] == 2

    # The heatmap's data: 3 rows (first op) x 4 columns (second op, then the row mean), in percent.
    grid = pd.read_csv(out_dir / "figures" / "pair_grid.csv", index_col=0)
    assert grid.shape == (3, 4)
    assert list(grid.index) == list(OPS) and list(grid.columns) == [*OPS, "row mean"]
    assert grid.loc["crop", "color"] == pytest.approx(100 * np.mean(logged["crop", "color"]))
    assert grid.loc["noise", "noise"] == pytest.approx(100 * np.mean(logged["noise", "noise"]))
    assert grid.loc["crop", "row mean"] == pytest.approx(
        np.mean([100 * np.mean(logged["crop", op]) for op in OPS]))
    for stem in ("pair_grid", "pair_grid_vs_paper", "paired_differences", "training_curves"):
        assert (out_dir / "figures" / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out_dir / "figures" / f"{stem}.csv").exists()
    for stem in ("temperature_batch", "color_strength", "projection_head", "gaps_by_length"):  # nothing of these varies
        assert not (out_dir / "figures" / f"{stem}.png").exists()
    comparison = pd.read_csv(out_dir / "figures" / "pair_grid_vs_paper.csv")
    assert len(comparison) == 9
    assert comparison.set_index(["first", "second"]).loc[("crop", "color"), "paper_percent"] == 56.3

    # README: the header, a reading per figure, and the verdict.
    readme = (out_dir / "README.md").read_text()
    assert "cpu (x86_64, 1 threads) (28 runs)" in readme and "torch 2.14.1" in readme
    assert "28: 1 FAILED, 26 FINISHED, 1 KILLED; 2 left out of the summary" in readme
    assert "18.2 min in all" in readme  # 26 finished runs with wall_time_s = 42 s
    # Every cell far from crop->color: decided on three seeds. noise->noise lost seed 1 (FAILED), so its
    # one contrast has two seeds, too few to decide: the part with it stays open, the verdict holds in part.
    assert "**holds in part** (rule `crop_color_best`, chosen in the study file before it ran)" in readme
    assert "Best cell: crop+color at 59.9 %" in readme
    assert "| beats crop without colour | crop+color − crop+noise | 3 | +17.87 |" in readme
    assert "| beats pairs of neither | crop+color − noise | 2 |" in readme and "too few seeds" in readme
    comparisons = pd.read_parquet(out_dir / "comparisons.parquet")
    assert len(comparisons) == 7 and (comparisons["decision"] == "above").sum() == 6
    by_worse = comparisons.set_index("worse")
    assert by_worse.loc["augment.pipeline=noise", "n"] == 2
    assert by_worse.loc["augment.pipeline=noise", "decision"] == "too few seeds"
    assert by_worse.loc["augment.pipeline=crop+noise", "estimate"] == pytest.approx(0.18 - 0.004 / 3)
    # Figure 5: crop->color 56.3 against crop->noise 39.9.
    assert by_worse.loc["augment.pipeline=crop+noise", "paper_margin"] == pytest.approx(0.164)
    assert "non-finite loss" in readme  # the left-out runs are listed with why
    for stem in ("pair_grid", "pair_grid_vs_paper", "training_curves"):
        assert f"![{stem}](figures/{stem}.png)" in readme

    # Logged to the parent run, so the MLflow UI shows them.
    client = study.client
    artifacts = {a.path for a in client.list_artifacts(study.parent_id, "report")}
    assert {"report/README.md", "report/runs.parquet", "report/history.parquet", "report/summary.parquet",
            "report/figures"} <= artifacts
    figures_logged = {a.path for a in client.list_artifacts(study.parent_id, "report/figures")}
    assert {"report/figures/pair_grid.png", "report/figures/pair_grid.csv"} <= figures_logged


def test_a_study_that_names_no_rule_gets_no_verdict_at_all(store, tmp_path, capsys):  # noqa: F811
    """A pair grid without `verdict:` (the quickstart): no verdict sentence, section, table or figure."""
    pair_study(store, tmp_path, WINNING, seeds=(0, 1, 2), verdict=None)
    assert main(["--study", "pairs", "--tracking-uri", store, "--out", str(tmp_path / "reports"), "--no-log"]) == 0
    printed = capsys.readouterr().out
    out_dir = tmp_path / "reports" / "pairs"
    readme = (out_dir / "README.md").read_text()
    for text in (printed, readme):
        assert "Verdict" not in text and "holds" not in text and "undecided" not in text
        assert "before it ran" not in text
    assert not (out_dir / "comparisons.parquet").exists()
    assert not (out_dir / "figures" / "paired_differences.png").exists()


def test_a_report_rebuilt_from_its_parquet_equals_the_one_from_mlflow(store, tmp_path, capsys):  # noqa: F811
    study = FakeStudy(store, "floored", tmp_path, verdict="head_order")
    for seed in (0, 1, 2):
        study.trial({"train.epochs": 0}, seed, 0.30 + 0.01 * seed, z=0.25)  # the floor, tagged below
        for head, level in (("none", 0.40), ("linear", 0.45), ("mlp", 0.47)):
            study.trial({"model.head": head}, seed, level + 0.01 * seed + 0.001 * (seed == 2) * len(head),
                        z=level - 0.05)
    for run in study.client.search_runs([study.experiment_id], "tags.`ablations.varied` LIKE '%train.epochs%'"):
        study.client.set_tag(run.info.run_id, "ablations.floor", "true")
    study.finish()
    from_mlflow = tmp_path / "from_mlflow"
    assert main(["--study", "floored", "--tracking-uri", store, "--out", str(from_mlflow), "--no-log"]) == 0
    saved = from_mlflow / "floored"
    runs = pd.read_parquet(saved / "runs.parquet")
    assert list(runs["role"]).count("floor") == 3 and runs.loc[runs["role"] == "floor", "model.head"].isna().all()
    from_parquet = tmp_path / "from_parquet"
    assert main(["--from-parquet", str(saved), "--out", str(from_parquet)]) == 0
    rebuilt = from_parquet / "floored"
    for name in ("runs.parquet", "history.parquet", "summary.parquet", "comparisons.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(saved / name), pd.read_parquet(rebuilt / name), check_like=False)
    assert sorted(p.name for p in (saved / "figures").iterdir()) == sorted(p.name for p in (rebuilt / "figures").iterdir())
    for csv in (saved / "figures").glob("*.csv"):
        assert csv.read_text() == (rebuilt / "figures" / csv.name).read_text(), csv.name

    def body(path):  # the README less its first paragraph, which says where it was built from
        return (path / "README.md").read_text().split("\n", 3)[3]

    assert body(saved) == body(rebuilt)
    assert "probe_h 31.0 ± 1.0 % (n = 3)" in body(saved)  # the floor, read back from runs.parquet
    assert "--from-parquet" in (rebuilt / "README.md").read_text().split("\n", 3)[2]


@pytest.mark.parametrize("case, expected", [
    ("unknown", "error: study 'nope' not found in sqlite:///"),
    ("no_store", "error: no MLflow store at"),
    ("no_parent", "error: experiment 'bare' in"),
    ("no_trials", "error: study 'empty' in"),
])
def test_bad_input_exits_2_with_one_line(store, tmp_path, capsys, case, expected):  # noqa: F811
    from mlflow import MlflowClient

    study = FakeStudy(store, "pairs", tmp_path)
    study.trial({"augment.pipeline": ["crop"]}, 0, 0.4, pair=("crop", "crop"))
    FakeStudy(store, "empty", tmp_path)
    MlflowClient(store).create_experiment("bare")
    uri = {"no_store": f"sqlite:///{tmp_path}/missing/mlflow.db"}.get(case, store)
    study_name = {"unknown": "nope", "no_parent": "bare", "no_trials": "empty"}.get(case, "pairs")
    assert main(["--study", study_name, "--tracking-uri", uri, "--out", str(tmp_path / "reports")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1 and "Traceback" not in err
    if case == "unknown":
        assert "studies there: empty, pairs" in err
    assert not (tmp_path / "missing").exists()


def test_report_from_a_tiny_real_study(store, tmp_path):  # noqa: F811
    """ablations.run on synthetic data, then the report on what it recorded."""
    from ablations.run import main as run_main

    study = tmp_path / "tiny.yaml"
    study.write_text(textwrap.dedent("""\
        name: tiny
        base:
          data: {dataset: synthetic, synthetic_per_class: 16, synthetic_classes: 4, synthetic_size: 16}
          model: {encoder: small_cnn, width: 8}
          train: {epochs: 2, batch_size: 16, num_threads: 1, device: cpu}
          probe: {max_iter: 50, knn_k: 10, knn_every: 1}
        search: {pairs: [crop, color]}
        seeds: [0]
        tracking: {preview: false}
        """))
    assert run_main([str(study), "--tracking-uri", store, "--no-progress"]) == 0
    assert main(["--study", "tiny", "--tracking-uri", store, "--out", str(tmp_path / "reports")]) == 0
    out_dir = tmp_path / "reports" / "tiny"
    runs = pd.read_parquet(out_dir / "runs.parquet")
    assert len(runs) == 4 and (runs["status"] == "FINISHED").all()
    assert runs["probe_h"].between(0, 1).all() and runs["probe_z"].between(0, 1).all()
    assert set(zip(runs["first"], runs["second"])) == {("crop", "crop"), ("crop", "color"), ("color", "crop"),
                                                       ("color", "color")}
    assert (runs["seed"] == 0).all() and runs["wall_time_s"].gt(0).all() and runs["git_commit"].notna().all()
    summary = pd.read_parquet(out_dir / "summary.parquet")
    assert len(summary) == 4 and (summary["n"] == 1).all()
    history = pd.read_parquet(out_dir / "history.parquet")
    assert sorted(set(history["epoch"])) == [1, 2] and history.groupby("run_id").size().eq(2).all()
    readme = (out_dir / "README.md").read_text()
    # What the probe saw (the synthetic set: 64 training images, 64 test images) and where time went.
    assert "fitted on the frozen features of all 64 training images of each run, scored on 64 test images" in readme
    assert "| time by phase | summed over the finished runs: data " in readme and "train " in readme
    assert runs["train_s"].gt(0).all() and runs["probe_s"].gt(0).all()
    # The data set is loaded on a worker's first trial and taken from its cache after.
    assert runs["data_s"].ge(0).all() and runs["data_s"].max() > 0
    assert runs["preview_s"].ge(0).all()  # this study makes no preview (tracking.preview: false)
    # The study names no rule: no verdict.
    assert "## Verdict" not in readme and not (out_dir / "comparisons.parquet").exists()
    # The store as a reader of the report can use it: relative to the working folder (the store fixture's),
    # though the study and the report were given its absolute path.
    assert store == f"sqlite:///{tmp_path}/mlflow.db" and "from MLflow `sqlite:///mlflow.db`" in readme
    assert str(tmp_path) not in readme and runs.attrs["source"] == "sqlite:///mlflow.db"


def test_run_calls_the_report_through_the_package():
    assert report.main is main
    help_text = subprocess.run([sys.executable, "-m", "ablations.report", "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0 and help_text.stdout.startswith("usage: python -m ablations.report")
    # How to rebuild a committed report without its store.
    text = " ".join(help_text.stdout.split())
    assert "--from-parquet PATH" in text and "python -m ablations.report --from-parquet reports/aug_pairs" in text


@pytest.mark.parametrize("damage, says", [
    *[(f"drop {column}", f"has no column {column}") for column in ("probe_h", "cell", "seed", "status", "run_name")],
    ("zero rows", "holds no runs (zero rows)"),
])
def test_a_damaged_runs_parquet_is_one_line_naming_the_file_and_what_is_missing(store, tmp_path, capsys, damage,  # noqa: F811
                                                                                  says):
    """Each was a traceback (ValueError, KeyError, NaTType) before."""
    import pyarrow.parquet as pq

    study = FakeStudy(store, "damaged", tmp_path)
    for seed in (0, 1):
        study.trial({"train.temperature": 0.5}, seed, 0.4 + 0.01 * seed)
    study.finish()
    assert main(["--study", "damaged", "--tracking-uri", store, "--out", str(tmp_path / "r"), "--no-log"]) == 0
    path = tmp_path / "r" / "damaged" / "runs.parquet"
    table = pq.read_table(path)
    table = table.slice(0, 0) if damage == "zero rows" else table.drop_columns([damage.split()[1]])
    pq.write_table(table, path)
    capsys.readouterr()
    assert main(["--from-parquet", str(path.parent)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(path) in err and says in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_missing_history_parquet_is_a_warning(store, tmp_path, capsys):  # noqa: F811
    study = FakeStudy(store, "curveless", tmp_path)
    study.trial({"train.temperature": 0.5}, 0, 0.4)
    study.finish()
    assert main(["--study", "curveless", "--tracking-uri", store, "--out", str(tmp_path / "r"), "--no-log"]) == 0
    (tmp_path / "r" / "curveless" / "history.parquet").unlink()
    capsys.readouterr()
    assert main(["--from-parquet", str(tmp_path / "r" / "curveless")]) == 0
    err = capsys.readouterr().err
    assert "warning: no history.parquet beside" in err and "no per-epoch curves" in err
