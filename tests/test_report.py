"""The report from MLflow records: Parquet schemas and values, the Figure 5 heatmap and its annotations,
failed and killed runs counted, the crop-plus-colour verdict, artifacts on the parent run, bad input;
and once end to end from a tiny real study on synthetic data."""

import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ablations.report import figures, main, reference
from ablations.report.records import read_study
from ablations.report.stats import cell_stats, pair_verdict, pooled_sd, spearman
from ablations.report.tables import runs_table, summarize

EPOCHS = 3
OPS = ("crop", "color", "noise")  # three of Figure 5's seven, in its order
SEED_OFFSET = {0: +0.01, 1: -0.01}  # probe_h = cell value +- 0.01: SD over the two seeds = 0.01 * sqrt(2)
# Crop with colour far ahead of everything else, as in the paper.
WINNING = {("crop", "crop"): 0.40, ("crop", "color"): 0.60, ("crop", "noise"): 0.42,
           ("color", "crop"): 0.58, ("color", "color"): 0.30, ("color", "noise"): 0.25,
           ("noise", "crop"): 0.38, ("noise", "color"): 0.28, ("noise", "noise"): 0.20}
# noise->crop wins: the finding does not hold.
LOSING = {**WINNING, ("noise", "crop"): 0.65}


# --------------------------------------------------------------------------------------------------
# A study's records, written with MlflowClient exactly as ablations.run and ablations.tracking write them


@pytest.fixture
def store(tmp_path, monkeypatch, mlflow_template):
    (tmp_path / "mlflow.db").write_bytes(mlflow_template.read_bytes())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return f"sqlite:///{tmp_path}/mlflow.db"


class FakeStudy:
    """A parent run and trial runs with the runner's tags, params and metrics."""

    def __init__(self, uri: str, name: str, workdir: Path):
        from mlflow import MlflowClient

        self.client = MlflowClient(uri)
        self.name = name
        self.experiment_id = self.client.create_experiment(
            name, artifact_location=str(workdir / "mlartifacts" / name), tags={"ablations.study": name})
        self.parent_id = self.client.create_run(self.experiment_id, run_name=name, tags={
            "ablations.role": "parent", "ablations.study": name, "ablations.study_uid": "uid-" + name,
            "optuna.study": name, "mlflow.note.content": f"{name}: a fake study", "git_commit": "abc123def4567890",
            "git_dirty": "false"}).info.run_id
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


def pair_study(uri: str, workdir: Path, cells: dict, name: str = "pairs") -> tuple[FakeStudy, dict]:
    """3x3 grid x 2 seeds; crop->color seed 0 first KILLED then retried; noise seed 1 FAILED.
    Returns the study and the probe_h values of the runs that count, per cell."""
    study = FakeStudy(uri, name, workdir)
    logged: dict[tuple[str, str], list[float]] = {}
    for first in OPS:
        for second in OPS:
            pipeline = [first] if first == second else [first, second]
            for seed in (0, 1):
                h = cells[first, second] + SEED_OFFSET[seed]
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


def test_pair_report_tables_figures_verdict_and_artifacts(store, tmp_path, capsys):
    study, logged = pair_study(store, tmp_path, WINNING)
    assert main(["--study", "pairs", "--tracking-uri", store, "--out", str(tmp_path / "reports")]) == 0
    out_dir = tmp_path / "reports" / "pairs"
    printed = capsys.readouterr().out
    assert str(out_dir / "runs.parquet") in printed and "The crop-plus-color finding holds" in printed

    # runs.parquet: every run, failed and killed included, with proper dtypes.
    runs = pd.read_parquet(out_dir / "runs.parquet")
    assert len(runs) == 9 * 2 + 1  # 17 finished, 1 failed, 1 killed
    assert runs["status"].value_counts().to_dict() == {"FINISHED": 17, "FAILED": 1, "KILLED": 1}
    for column in ("run_id", "run_name", "status", "first", "second", "cell", "device", "git_commit", "error"):
        assert pd.api.types.is_string_dtype(runs[column]), column
    for column in ("trial", "seed"):
        assert runs[column].dtype == "int64", column
    for column in ("probe_h", "probe_z", "knn_acc", "loss", "wall_time_s", "duration_s"):
        assert runs[column].dtype == "float64", column
    assert isinstance(runs["start_time"].dtype, pd.DatetimeTZDtype)
    assert sorted(runs["trial"]) == list(range(19))
    assert (runs["duration_s"] == 55.0).all()
    assert set(runs["device"]) == {"cpu (x86_64, 1 threads)"}
    failed = runs[runs["status"] == "FAILED"].iloc[0]
    assert (failed["first"], failed["second"], failed["seed"]) == ("noise", "noise", 1)
    assert "non-finite loss" in failed["error"] and math.isnan(failed["probe_h"])
    diagonal = runs[runs["first"] == runs["second"]]
    assert set(diagonal["run_name"].str.split().str[0]) == set(OPS)

    # summary.parquet: one row per cell over the finished runs; the left-out runs are counted.
    summary = pd.read_parquet(out_dir / "summary.parquet")
    assert len(summary) == 9
    assert list(summary.columns[:2]) == ["first", "second"]
    for column in ("probe_h_mean", "probe_h_std", "probe_z_mean", "probe_z_std", "n"):
        assert column in summary.columns
        assert pd.api.types.is_numeric_dtype(summary[column]), column
    assert summary["n"].dtype == "int64" and summary["n"].sum() == 17
    for (first, second), values in logged.items():
        row = summary[(summary["first"] == first) & (summary["second"] == second)].iloc[0]
        assert row["n"] == len(values)
        assert row["probe_h_mean"] == pytest.approx(np.mean(values))
        assert row["probe_z_mean"] == pytest.approx(np.mean(values) - 0.1)
        if len(values) > 1:
            assert row["probe_h_std"] == pytest.approx(np.std(values, ddof=1))
        else:
            assert math.isnan(row["probe_h_std"])
    metadata = pq.read_schema(out_dir / "summary.parquet").metadata
    assert json.loads(metadata[b"ablations.left_out"]) == 2
    assert json.loads(metadata[b"ablations.left_out_by_reason"]) == {"FAILED": 1, "KILLED": 1}
    assert summary.attrs["left_out"] == 2

    # The heatmap's data: 3 rows (first op) x 4 columns (second op, then the row mean), in percent.
    grid = pd.read_csv(out_dir / "figures" / "pair_grid.csv", index_col=0)
    assert grid.shape == (3, 4)
    assert list(grid.index) == list(OPS) and list(grid.columns) == [*OPS, "row mean"]
    assert grid.loc["crop", "color"] == pytest.approx(60.0)
    assert grid.loc["noise", "noise"] == pytest.approx(100 * (WINNING["noise", "noise"] + SEED_OFFSET[0]))
    assert grid.loc["crop", "row mean"] == pytest.approx(np.mean([40.0, 60.0, 42.0]))
    for stem in ("pair_grid", "pair_grid_vs_paper", "training_curves"):
        assert (out_dir / "figures" / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out_dir / "figures" / f"{stem}.csv").exists()
    for stem in ("temperature_batch", "color_strength", "projection_head"):  # nothing of these varies
        assert not (out_dir / "figures" / f"{stem}.png").exists()
    comparison = pd.read_csv(out_dir / "figures" / "pair_grid_vs_paper.csv")
    assert len(comparison) == 9
    assert comparison.set_index(["first", "second"]).loc[("crop", "color"), "paper_percent"] == 56.3

    # README: the header, a reading per figure, and the verdict.
    readme = (out_dir / "README.md").read_text()
    assert "cpu (x86_64, 1 threads) (19 runs)" in readme and "torch 2.14.1" in readme
    assert "19: 1 FAILED, 17 FINISHED, 1 KILLED; 2 left out of the summary" in readme
    assert "11.9 min in all" in readme  # 17 finished runs with wall_time_s = 42 s
    assert "**The crop-plus-color finding holds at this budget.**" in readme
    assert "Best cell: crop→color at 60.0 %" in readme
    assert "Best cell that is not crop with colour: crop→noise at 42.0 %" in readme
    assert "non-finite loss" in readme  # the left-out runs are listed with why
    for stem in ("pair_grid", "pair_grid_vs_paper", "training_curves"):
        assert f"![{stem}](figures/{stem}.png)" in readme

    # Logged to the parent run, so the MLflow UI shows them.
    client = study.client
    artifacts = {a.path for a in client.list_artifacts(study.parent_id, "report")}
    assert {"report/README.md", "report/runs.parquet", "report/summary.parquet", "report/figures"} <= artifacts
    figures_logged = {a.path for a in client.list_artifacts(study.parent_id, "report/figures")}
    assert {"report/figures/pair_grid.png", "report/figures/pair_grid.csv"} <= figures_logged


def test_pair_grid_heatmap_annotations(store, tmp_path):
    """The heatmap shows each cell's mean and SD over seeds in percent (n where one seed finished), and
    the row means, in the Figure 5 layout."""
    pair_study(store, tmp_path, WINNING)
    from mlflow import MlflowClient

    records = read_study(MlflowClient(store), store, "pairs")
    runs, *_ = runs_table(records)
    figure, data = figures.pair_grid(cell_stats(runs, ["first", "second"]), list(OPS), "test")
    ax = figure.axes[0]
    texts = [t.get_text() for t in ax.texts]
    sd = 100 * 0.01 * math.sqrt(2)
    assert len(texts) == 9 + 3
    assert f"61.0\n±{sd:.1f}" not in texts  # the cell value is the mean over seeds, not one seed's
    assert f"60.0\n±{sd:.1f}" in texts  # crop->color
    assert "21.0\nn=1" in texts  # noise alone: seed 1 failed
    assert f"{np.mean([40.0, 60.0, 42.0]):.1f}" in texts  # crop's row mean
    assert [t.get_text() for t in ax.get_yticklabels()] == list(OPS)
    assert [t.get_text() for t in ax.get_xticklabels()] == [*OPS, "row mean"]
    assert data.shape == (3, 4)
    import matplotlib.pyplot as plt

    plt.close(figure)


def test_readme_says_when_the_finding_does_not_hold(store, tmp_path):
    pair_study(store, tmp_path, LOSING)
    assert main(["--tracking-uri", store, "--out", str(tmp_path / "reports"), "--no-log"]) == 0  # every study
    readme = (tmp_path / "reports" / "pairs" / "README.md").read_text()
    assert "**The crop-plus-color finding does not hold at this budget.**" in readme
    assert "the best cell is noise→crop (65.0 %), not crop with colour" in readme


def test_hand_written_analysis_is_kept_across_rebuilds(store, tmp_path):
    pair_study(store, tmp_path, LOSING)
    study_dir = tmp_path / "reports" / "pairs"
    study_dir.mkdir(parents=True)
    (study_dir / "ANALYSIS.md").write_text("Noise wins here because the probe saw only 10 images.\n")
    for _ in range(2):
        assert main(["--study", "pairs", "--tracking-uri", store, "--out", str(tmp_path / "reports"), "--no-log"]) == 0
    readme = (study_dir / "README.md").read_text()
    assert readme.count("Noise wins here because the probe saw only 10 images.") == 1
    assert readme.index("## Analysis") > readme.index("does not hold at this budget")


def cells_frame(values: dict, n: int = 2, sd: float = 0.01) -> pd.DataFrame:
    return pd.DataFrame([{"first": f, "second": s, "mean": m, "std": sd if n > 1 else math.nan, "n": n}
                         for (f, s), m in values.items()])


def test_pair_verdict_rule():
    holds = pair_verdict(cells_frame(WINNING))
    assert holds.holds is True and holds.best == ("crop", "color") and holds.best_other == ("crop", "noise")
    assert holds.pooled_sd == pytest.approx(0.01) and holds.margin_sd == pytest.approx(18.0)
    # Best cell crop with colour, but only 1.5 pooled SD ahead of the next: within the noise.
    close = pair_verdict(cells_frame({**WINNING, ("crop", "color"): 0.435, ("color", "crop"): 0.41}))
    assert close.holds is False and close.margin_sd == pytest.approx(1.5)
    assert close.sentence == "The crop-plus-color finding does not hold at this budget."
    assert "not more than 2" in close.reasons[0]
    losing = pair_verdict(cells_frame(LOSING))
    assert losing.holds is False and losing.best == ("noise", "crop") and losing.margin_sd == pytest.approx(-5.0)
    single_seed = pair_verdict(cells_frame(WINNING, n=1))
    assert single_seed.holds is None and "cannot be judged" in single_seed.sentence
    no_color = pair_verdict(cells_frame({k: v for k, v in WINNING.items() if "color" not in k}))
    assert no_color.holds is None and "no crop-with-colour cell" in no_color.sentence


def test_pooled_sd_weights_cells_by_degrees_of_freedom():
    stats = pd.DataFrame({"std": [0.1, 0.2, math.nan], "n": [2, 4, 1]})
    assert pooled_sd(stats) == (pytest.approx(math.sqrt((1 * 0.01 + 3 * 0.04) / 4)), 4)


def test_spearman_without_scipy_matches_the_definition():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # No ties: 1 - 6 sum d^2 / (n (n^2 - 1)); d = (0, 1, -1, 0, 0) -> 1 - 12/120.
    assert spearman([1, 2, 3, 4, 5], [1, 3, 2, 4, 5]) == pytest.approx(0.9)
    assert math.isnan(spearman([1, 2], [2, 1]))


def test_reference_figure5_matches_its_row_means():
    """The transcribed grid averages to the paper's own row-mean column (a typo check). The cells are
    rounded to 0.1, so a mean may be off by 0.05; the noise row is off by 0.057 (15.557 against 15.5) in
    REFERENCE.md as in the paper, hence the tolerance."""
    for first, row in reference.FIGURE5.items():
        assert list(row) == list(reference.FIGURE5_OPS)
        assert np.mean(list(row.values())) == pytest.approx(reference.FIGURE5_ROW_MEAN[first], abs=0.06)


def test_grid_study_gets_its_figures_and_typed_columns(store, tmp_path):
    """A study varying temperature, batch size, head and colour strength: each applicable figure."""
    study = FakeStudy(store, "grid", tmp_path)
    for temperature in (0.1, 0.5):
        for batch in (64, 128):
            for head in ("linear", "mlp"):
                for strength in (0.25, 1.0):
                    for seed in (0, 1):
                        h = 0.3 + (temperature == 0.5) * 0.1 + (head == "mlp") * 0.05 + strength * 0.02
                        study.trial({"train.temperature": temperature, "train.batch_size": batch,
                                     "model.head": head, "augment.color_strength": strength}, seed,
                                    h + SEED_OFFSET[seed], z=h - 0.1)
    study.finish()
    assert main(["--study", "grid", "--tracking-uri", store, "--out", str(tmp_path / "reports")]) == 0
    out_dir = tmp_path / "reports" / "grid"
    runs = pd.read_parquet(out_dir / "runs.parquet")
    assert runs["train.temperature"].dtype == "float64" and runs["train.batch_size"].dtype == "int64"
    assert runs["augment.color_strength"].dtype == "float64"
    assert pd.api.types.is_string_dtype(runs["model.head"])
    assert "first" not in runs.columns
    summary = pd.read_parquet(out_dir / "summary.parquet")
    assert len(summary) == 16 and (summary["n"] == 2).all()
    assert list(summary.columns[:4]) == ["train.temperature", "train.batch_size", "model.head",
                                         "augment.color_strength"]
    for stem in ("temperature_batch", "color_strength", "projection_head", "training_curves"):
        assert (out_dir / "figures" / f"{stem}.png").exists() and (out_dir / "figures" / f"{stem}.csv").exists()
    assert not (out_dir / "figures" / "pair_grid.png").exists()
    heads = pd.read_csv(out_dir / "figures" / "projection_head.csv")
    assert set(zip(heads["model.head"], heads["representation"])) == {
        ("linear", "h"), ("linear", "z"), ("mlp", "h"), ("mlp", "z")}
    assert (heads["n"] == 16).all()  # averaged over the 8 other cells x 2 seeds
    readme = (out_dir / "README.md").read_text()
    assert "Best: τ = 0.5" in readme and "crop-plus-color" not in readme


def test_summary_groups_by_cell_without_the_seed(store, tmp_path):
    study = FakeStudy(store, "seeds", tmp_path)
    for seed in (0, 1, 2):
        study.trial({"train.temperature": 0.5}, seed, 0.4 + 0.01 * seed)
    study.finish()
    from mlflow import MlflowClient

    runs, keys, metrics, pair = runs_table(read_study(MlflowClient(store), store, "seeds"))
    assert keys == ["train.temperature"] and not pair and list(runs["seed"]) == [0, 1, 2]
    summary = summarize(runs, keys, metrics)
    assert len(summary) == 1 and summary["n"].iloc[0] == 3
    assert summary["probe_h_mean"].iloc[0] == pytest.approx(0.41)


@pytest.mark.parametrize("case, expected", [
    ("unknown", "error: study 'nope' not found in sqlite:///"),
    ("no_store", "error: no MLflow store at"),
    ("no_parent", "error: experiment 'bare' in"),
    ("no_trials", "error: study 'empty' in"),
])
def test_bad_input_exits_2_with_one_line(store, tmp_path, capsys, case, expected):
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


def test_report_from_a_tiny_real_study(store, tmp_path):
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
    curves = pd.read_csv(out_dir / "figures" / "training_curves.csv")
    assert sorted(set(curves["epoch"])) == [1, 2] and curves.groupby("run_id").size().eq(2).all()
    readme = (out_dir / "README.md").read_text()
    assert "The crop-plus-color finding cannot be judged at this budget" in readme
