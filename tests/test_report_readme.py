"""The study README (ablations.report.readme): the verdict and its rule, the wall-time row, the hand-written
analysis kept across rebuilds."""

import pandas as pd
from test_report_records import LOSING, pair_study, store  # noqa: F401 (store is a fixture)

from ablations.report import main
from ablations.report.readme import _verdict_section, _wall_time_row, with_analysis
from ablations.verdicts import RULES


def test_readme_says_when_the_finding_does_not_hold(store, tmp_path):  # noqa: F811
    pair_study(store, tmp_path, LOSING)
    assert main(["--tracking-uri", store, "--out", str(tmp_path / "reports"), "--no-log"]) == 0  # every study
    readme = (tmp_path / "reports" / "pairs" / "README.md").read_text()
    assert "**does not hold** (rule `crop_color_best`)" in readme
    # noise->crop (0.65) beats crop->color (0.60) by 5 points on both seeds: decided below.
    assert "| crop+color | noise+crop | 2 | -5.00 |" in readme
    assert "Reported as measured, not tuned away" in readme


def test_hand_written_analysis_is_kept_across_rebuilds(store, tmp_path):  # noqa: F811
    pair_study(store, tmp_path, LOSING)
    study_dir = tmp_path / "reports" / "pairs"
    study_dir.mkdir(parents=True)
    (study_dir / "ANALYSIS.md").write_text("Noise wins here because the probe saw only 10 images.\n")
    for _ in range(2):
        assert main(["--study", "pairs", "--tracking-uri", store, "--out", str(tmp_path / "reports"), "--no-log"]) == 0
    readme = (study_dir / "README.md").read_text()
    assert readme.count("Noise wins here because the probe saw only 10 images.") == 1
    assert readme.index("## Analysis") > readme.index("**does not hold**")


def test_verdict_section_states_rule_method_floor_and_comparisons_by_hand():
    # crop->color 0.60, 0.62 against crop->noise 0.42, 0.41: differences 0.18, 0.21, mean 0.195,
    # SD 0.03 / sqrt 2 = 0.0212; t(0.975, 1) = 12.706, so the interval is 0.195 -+ 12.706 * 0.015 =
    # [0.0044, 0.3856]; t = 0.195 / 0.015 = 13, and with one degree of freedom p = 1 - (2 / pi) atan 13
    # = 0.0489: under 0.05, decided.
    runs = pd.DataFrame({"cell": ["cc", "cc", "cn", "cn"], "first": ["crop", "crop", "crop", "crop"],
                         "second": ["color", "color", "noise", "noise"], "seed": [0, 1, 0, 1],
                         "probe_h": [0.60, 0.62, 0.42, 0.41], "probe_z": [0.5] * 4})
    verdict = RULES["crop_color_best"](runs)
    lines = _verdict_section(verdict, budget="train.epochs=1", floor="Untrained floor: 40.0 %.")
    assert lines[1] == "## Verdict: Crop with colour (either order) beats every pair without both (Figure 5)"
    assert lines[3].startswith("**holds** (rule `crop_color_best`).")
    assert "- Untrained floor: 40.0 %." in lines
    assert any(line.startswith("- Rule (chosen in the study file before it ran): holds when the better of") for line in lines)
    assert lines[-1] == "| cc | cn | 2 | +19.50 | [+0.44, +38.56] | 1.00 | 0.0489 | above |"
    losing = RULES["crop_color_best"](runs.assign(probe_h=[0.60, 0.62, 0.70, 0.73]))
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
