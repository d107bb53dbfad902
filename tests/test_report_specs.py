"""The figure registry (ablations.report.specs): which figures a study gets, and the README lines each
figure's drawing function writes, worked by hand; and once through the command for a study that varies
temperature, batch size, head and colour strength (every non-pair figure)."""

from types import SimpleNamespace

import pytest
import matplotlib.pyplot as plt
import pandas as pd
from test_report_records import SEED_OFFSET, FakeStudy, store  # noqa: F401 (store is a fixture)

from ablations.report import main
from ablations.report.analysis import Analysis, analyse_tables
from ablations.report.specs import FIGURES, op_order
from ablations.report.tables import Tables


def test_grid_study_gets_its_figures_and_typed_columns(store, tmp_path):  # noqa: F811
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


def test_registry_entries():
    stems = [spec.stem for spec in FIGURES]
    assert stems == ["pair_grid", "pair_grid_vs_paper", "temperature_batch", "color_strength", "projection_head",
                     "gaps_by_length", "paired_differences", "training_curves"]  # the README's order
    assert all(spec.title and callable(spec.applies) and callable(spec.draw) for spec in FIGURES)
    assert [spec.stem for spec in FIGURES if spec.index] == ["pair_grid"]  # its CSV keeps the row labels


def test_op_order_follows_figure5_else_the_study():
    runs = pd.DataFrame({"first": ["color", "crop", "noise"], "second": ["crop", "crop", "noise"]})
    assert op_order(runs) == ["crop", "color", "noise"]  # Figure 5's order: crop, cutout, color, sobel, noise
    runs = pd.DataFrame({"first": ["hflip", "crop"], "second": ["crop", None]})
    assert op_order(runs) == ["hflip", "crop"]


def study_of(values: dict[str, list], probe_h: list[float], pair: bool = False, config_keys: list[str] | None = None,
             **columns) -> Analysis:
    """A finished, one-seed study of the given varied values, in memory (no MLflow), analysed; `columns`
    replace the defaults (probe_z is not recorded unless given); `config_keys`: the varied values' keys."""
    n = len(probe_h)
    runs = pd.DataFrame({"run_id": [f"r{i}" for i in range(n)], "run_name": [f"run {i}" for i in range(n)],
                         "seed": [0] * n, **values, "status": ["FINISHED"] * n, "pruned": [False] * n,
                         "probe_h": probe_h, "probe_z": [float("nan")] * n, **columns})
    records = SimpleNamespace(name="s", params={"data.dataset": "synthetic"})
    tables = Tables(runs, pd.DataFrame(), config_keys or list(values), ["probe_h"], pair=pair)
    return analyse_tables(records, tables, None, {}, FIGURES)


def drawn(study: Analysis) -> dict[str, list[str]]:
    """stem -> the two README lines, for every figure that applies."""
    readings = {}
    for spec in FIGURES:
        if spec.applies(study):
            result = spec.draw(study)
            plt.close(result.figure)
            readings[spec.stem] = result.reading
    return readings


def test_color_strength_reading_by_hand():
    study = study_of({"augment.color_strength": [0.25, 0.5, 1.0]}, [0.40, 0.45, 0.43])
    assert drawn(study) == {"color_strength": [
        "From s = 0.25 to s = 1 the probe goes from 40.0 % to 43.0 % (+3.0 points); best s = 0.5 at 45.0 %.",
        "The paper (ImageNet, Table 1) rises monotonically from 59.6 % at s = 1/8 to 63.2 % at s = 1; "
        "here the curve is not monotonic."]}


def test_temperature_batch_reading_by_hand():
    study = study_of({"train.temperature": [0.1, 0.5, 0.1, 0.5], "train.batch_size": [64, 64, 128, 128]},
                     [0.40, 0.45, 0.47, 0.44])
    assert drawn(study) == {"temperature_batch": [
        "Best: τ = 0.1, batch 128 at 47.0 ± 0.0 % (n = 1).",
        "Best τ per batch size: 64: 0.5, 128: 0.1 (paper, ImageNet batch 4096: τ = 0.1 best of 0.05-1.0, "
        "Table 5)."]}


def test_projection_head_reading_without_probe_z():
    study = study_of({"model.head": ["none", "linear", "mlp"]}, [0.30, 0.35, 0.41])
    assert drawn(study) == {"projection_head": [
        "Best head on h: mlp at 41.0 %; none 30.0 %, linear 35.0 %, mlp 41.0 %.",
        "probe_z was not recorded (probe.probe_z: false), so h and z cannot be compared."]}
    with_z = study_of({"model.head": ["linear", "mlp"]}, [0.35, 0.41], probe_z=[0.20, 0.25])
    assert drawn(with_z)["projection_head"][1] == (
        "h minus z: linear +15.0, mlp +16.0 points (paper: h beats z by more than 10 %, a nonlinear head beats a "
        "linear one by about 3 %).")


def test_paired_differences_figure_draws_the_deciding_intervals_and_the_papers_values():
    from ablations.report import contrast_figures
    from ablations.report.analysis import comparisons_table
    from ablations.stats.verdicts import decide

    runs = pd.DataFrame({"cell": ["cc"] * 3 + ["cn"] * 3 + ["cs"] * 3, "first": ["crop"] * 9,
                         "second": ["color"] * 3 + ["noise"] * 3 + ["sobel"] * 3, "seed": [0, 1, 2] * 3,
                         "probe_h": [0.60, 0.62, 0.61, 0.42, 0.41, 0.41, 0.605, 0.61, 0.615], "probe_z": [0.5] * 9})
    verdict = decide("crop_color_best", runs)
    figure, data = contrast_figures.paired_differences(comparisons_table(verdict), "title")
    assert list(data["contrast"]) == ["cc − cs", "cc − cn"]  # the first contrast on top
    by_name = data.set_index("contrast")
    assert by_name.loc["cc − cn", "decision"] == "above" and by_name.loc["cc − cn", "ci_low_points"] > 0
    assert by_name.loc["cc − cs", "decision"] == "undecided"
    assert by_name.loc["cc − cs", "ci_low_points"] < 0 < by_name.loc["cc − cs", "ci_high_points"]
    # The paper's values: 56.3 - 39.9 and 56.3 - 46.0, marked on the rows.
    assert list(by_name["paper_margin_points"]) == pytest.approx([10.3, 16.4])
    ax = figure.axes[0]
    assert len(ax.get_yticklabels()) == 2
    markers = [line for line in ax.lines if line.get_marker() == "|"]
    assert sorted(float(line.get_xdata()[0]) for line in markers) == pytest.approx([10.3, 16.4])
    plt.close(figure)


def test_a_study_of_a_few_pairs_over_training_lengths_draws_its_grid_at_the_longest_budget():
    # crop+color, crop+sobel and crop at 6 and 24 epochs: averaged over budgets the grid would mix them;
    # the grid shows the 24-epoch cells, in one row (every cell starts with crop).
    firsts, seconds = ["crop"] * 6, ["color", "sobel", "crop"] * 2
    study = study_of({"first": firsts, "second": seconds, "train.epochs": [6] * 3 + [24] * 3},
                     [0.52, 0.51, 0.42, 0.58, 0.55, 0.45], pair=True, config_keys=["augment.pipeline", "train.epochs"],
                     cell=[f"c{i}" for i in range(6)])
    readings = drawn(study)
    assert readings["pair_grid"] == [
        "Best cell at the longest budget, train.epochs = 24: crop+color at 58.0 %; "
        "best single transformation (diagonal): crop at 45.0 %.",
        "One row: every cell starts with crop (its mean 52.7 %)."]
    assert readings["pair_grid_vs_paper"][0] == (
        "Spearman rank correlation with the paper's ImageNet grid over the 3 shared cells (at the longest budget, "
        "train.epochs = 24): 1.00.")
    from ablations.report.specs import _grid_stats
    stats, budget, scope = _grid_stats(study)
    assert sorted(stats["mean"]) == pytest.approx([0.45, 0.55, 0.58])
    assert budget == "at the longest budget, train.epochs = 24"
    assert scope.startswith("at the longest budget, train.epochs = 24; n = 1")
