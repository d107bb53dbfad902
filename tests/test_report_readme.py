"""The study README (ablations.report.readme): the verdict and its rule, the wall-time row, the hand-written
analysis kept across rebuilds."""

import pandas as pd
from test_report_records import LOSING, pair_study, store  # noqa: F401 (store is a fixture)

from ablations.report import main
from ablations.report.readme import _verdict_section, _wall_time_row, with_analysis
from ablations.stats.verdicts import decide


def test_readme_names_the_parts_that_hold_and_those_that_do_not(store, tmp_path):  # noqa: F811
    pair_study(store, tmp_path, LOSING, seeds=(0, 1, 2))
    assert main(["--tracking-uri", store, "--out", str(tmp_path / "reports"), "--no-log"]) == 0  # every study
    readme = (tmp_path / "reports" / "pairs" / "README.md").read_text()
    assert "**holds in part** (rule `crop_color_best`" in readme
    assert ("holds in part (holds: beats colour without crop; does not hold: beats crop without colour; "
            "undecided: beats pairs of neither)") in readme
    # noise->crop (0.65) beats crop->color (0.60) by 5 points on every seed: decided below.
    assert "| beats crop without colour | crop+color − noise+crop | 3 | -5.03 |" in readme
    assert "| beats crop without colour | **does not hold** | 2 / 1 / 0 / 0 / 0 |" in readme
    assert "Reported as measured, not tuned away" in readme
    assert "### Checks of the model" in readme and "Tukey" in readme


def test_hand_written_analysis_is_kept_across_rebuilds(store, tmp_path):  # noqa: F811
    pair_study(store, tmp_path, LOSING, seeds=(0, 1, 2))
    study_dir = tmp_path / "reports" / "pairs"
    study_dir.mkdir(parents=True)
    (study_dir / "ANALYSIS.md").write_text("Noise wins here because the probe saw only 10 images.\n")
    for _ in range(2):
        assert main(["--study", "pairs", "--tracking-uri", store, "--out", str(tmp_path / "reports"), "--no-log"]) == 0
    readme = (study_dir / "README.md").read_text()
    assert readme.count("Noise wins here because the probe saw only 10 images.") == 1
    assert readme.index("## Analysis") > readme.index("## Verdict")


def test_verdict_section_states_rule_method_floor_and_contrasts_by_hand():
    # crop->color 0.60, 0.62, 0.61 against crop->noise 0.42, 0.41, 0.41: differences 0.18, 0.21, 0.20,
    # mean 0.19667, SD 0.015275; with two cells the block model is the paired t-test: SE 0.0088192 on 2
    # degrees of freedom, t(0.975, 2) = 4.3027, interval [0.15872, 0.23461]. The paper: 56.3 - 39.9 = 16.4,
    # inside it.
    runs = pd.DataFrame({"cell": ["cc"] * 3 + ["cn"] * 3, "first": ["crop"] * 6,
                         "second": ["color"] * 3 + ["noise"] * 3, "seed": [0, 1, 2] * 2,
                         "probe_h": [0.60, 0.62, 0.61, 0.42, 0.41, 0.41], "probe_z": [0.5] * 6})
    verdict = decide("crop_color_best", runs)
    lines = _verdict_section(verdict, budget="train.epochs=1", floor="Untrained floor: 40.0 %.")
    assert lines[1] == "## Verdict: Crop with colour (either order) beats every pair without both (Figure 5)"
    assert lines[3].startswith("**holds** (rule `crop_color_best`, chosen in the study file before it ran).")
    assert "- Untrained floor: 40.0 %." in lines
    assert any(line.startswith("- Method (`ablations/stats/inference.py`): the study's trained runs as a randomized "
                               "complete block design") for line in lines)
    assert any(line.startswith("- Rule: the better of crop+color and color+crop against every cell") for line in lines)
    assert ("| beats crop without colour | cc − cn | 3 | +19.67 | [+15.87, +23.46] | moderated | 1.00 | above | "
            "+16.4: inside |") in lines
    assert "| beats crop without colour | **holds** | 1 / 0 / 0 / 0 / 0 |" in lines
    losing = decide("crop_color_best", runs.assign(probe_h=[0.60, 0.62, 0.61, 0.70, 0.73, 0.71]))
    assert losing.status == "does not hold"
    assert any("not tuned away" in line for line in _verdict_section(losing, "train.epochs=1", "floor"))


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
