"""The study README (ablations.report.readme): the verdict and its rule, the wall-time row, the hand-written
analysis kept across rebuilds."""

import pandas as pd
from test_report_records import LOSING, pair_study, store  # noqa: F401 (store is a fixture)

from ablations.report import main
from ablations.report.readme import _verdict_section, _wall_time_row, with_analysis
from ablations.report.stats import pair_verdict


def test_readme_says_when_the_finding_does_not_hold(store, tmp_path):  # noqa: F811
    pair_study(store, tmp_path, LOSING)
    assert main(["--tracking-uri", store, "--out", str(tmp_path / "reports"), "--no-log"]) == 0  # every study
    readme = (tmp_path / "reports" / "pairs" / "README.md").read_text()
    assert "**The crop-plus-color finding does not hold at this budget.**" in readme
    assert "the best cell is noise→crop (65.0 %), not crop with colour" in readme


def test_hand_written_analysis_is_kept_across_rebuilds(store, tmp_path):  # noqa: F811
    pair_study(store, tmp_path, LOSING)
    study_dir = tmp_path / "reports" / "pairs"
    study_dir.mkdir(parents=True)
    (study_dir / "ANALYSIS.md").write_text("Noise wins here because the probe saw only 10 images.\n")
    for _ in range(2):
        assert main(["--study", "pairs", "--tracking-uri", store, "--out", str(tmp_path / "reports"), "--no-log"]) == 0
    readme = (study_dir / "README.md").read_text()
    assert readme.count("Noise wins here because the probe saw only 10 images.") == 1
    assert readme.index("## Analysis") > readme.index("does not hold at this budget")


def test_verdict_section_states_numbers_rule_and_budget():
    # Two seeds per cell with SD 0.01 each: pooled SD 1.00 point; crop→color 0.60 against crop→noise 0.42.
    stats = pd.DataFrame({"first": ["crop", "crop", "color"], "second": ["color", "noise", "color"],
                          "mean": [0.60, 0.42, 0.30], "std": [0.01, 0.01, 0.01], "n": [2, 2, 2]})
    lines = _verdict_section(pair_verdict(stats), budget="train.epochs=1")
    assert lines[3:] == [
        "**The crop-plus-color finding holds at this budget.**", "",
        "- Best cell: crop→color at 60.0 %.",
        "- Best cell that is not crop with colour: crop→noise at 42.0 %; margin of crop→color over it: "
        "18.0 pooled SD.",
        "- Pooled SD (seed-to-seed spread of one run, pooled over the cells with n ≥ 2): 1.00 points.",
        "- Why: crop→color is the best cell (60.0 %) and beats the best cell without crop and colour, "
        "crop→noise (42.0 %), by 18.0 pooled SD (> 2).",
        "- Rule: the finding holds when crop→color or color→crop is the best cell and beats every cell that does "
        "not combine crop with colour by more than 2 pooled SD."]
    noise_wins = stats.assign(mean=[0.60, 0.65, 0.30])
    assert _verdict_section(pair_verdict(noise_wins), budget="train.epochs=1")[-1] == (
        "- This is reported as measured, not tuned away: the budget (train.epochs=1) is far below the paper's "
        "(ImageNet, ResNet-50, batch 4096, 100 epochs).")


def test_wall_time_row():
    runs = pd.DataFrame({"wall_time_s": [30.0, 60.0, float("nan")], "duration_s": [40.0, 70.0, 5.0]})
    # 90 s of training is 1.5 min; 115 s of MLflow run time is 1.9 min; median of the finished runs 45 s.
    assert _wall_time_row(runs, runs.iloc[:2]) == (
        "| wall time | 1.5 min in all (sum of the runs' wall_time_s); 1.9 min summed over the MLflow runs' "
        "start-to-end durations (data loading and tracking included); median 45 s per finished run |")
    assert _wall_time_row(runs, runs.iloc[:0]) == "| wall time | 1.5 min in all (sum of the runs' wall_time_s) |"


def test_analysis_is_appended_only_when_written(tmp_path):
    assert with_analysis("# report\n", tmp_path) == "# report\n"
    (tmp_path / "ANALYSIS.md").write_text("Crop wins.\n")
    text = with_analysis("# report\n", tmp_path)
    assert text.startswith("# report\n\n## Analysis\n\nFrom [`ANALYSIS.md`](ANALYSIS.md)")
    assert text.endswith("Crop wins.\n")
