"""A study that names no rule gets estimates with intervals, not a verdict (issue 27, item 6): its
configurations compared by the study-wide inference, every pair of them (each with the best when there are
many), as one family. Checked on committed studies read back without their rule."""

from pathlib import Path

import pandas as pd
import pytest

from ablations.report import saved
from ablations.report.analysis import ALL_PAIRS_UP_TO, analyse, differences_compared
from ablations.report.readme import render_readme
from ablations.stores.tracking import VERDICT_TAG

REPORTS = Path(__file__).resolve().parent.parent / "reports"


def without_rule(name: str):
    records = saved.read(REPORTS / name)
    records.parent_tags = {k: v for k, v in records.parent_tags.items() if k != VERDICT_TAG}
    return records


def test_few_configurations_are_compared_in_every_pair_higher_mean_first():
    analysis = analyse(without_rule("projection_head"))
    assert analysis.verdict is None and analysis.comparisons is None
    diffs, summary = analysis.differences, analysis.tables.summary
    k = len(summary)
    assert 2 < k <= ALL_PAIRS_UP_TO and len(diffs) == k * (k - 1) // 2
    assert differences_compared(diffs) == "every pair"
    mean = dict(zip(summary["cell"], summary["probe_h_mean"]))
    for row in diffs.itertuples():
        # A balanced study: the block model's estimate is the difference of the two cells' means.
        assert row.estimate == pytest.approx(mean[row.better] - mean[row.worse], abs=1e-9)
        assert row.estimate >= 0 and row.n == 3
        assert row.ci_low == pytest.approx(row.estimate - row.critical * row.se)
        assert (row.decision == "above") == (row.ci_low > 0)  # higher first: never decided below
    assert diffs["critical"].nunique() == 1 and diffs["critical"].iloc[0] > 2.0  # one family, wider than one t


def test_many_configurations_are_each_compared_with_the_best():
    analysis = analyse(without_rule("aug_pairs"))
    diffs = analysis.differences
    assert differences_compared(diffs) == "each with the best" and len(diffs) == 48
    assert set(diffs["better"]) == {"augment.pipeline=crop+color"}
    # The same two cells' estimate as the verdict's (the family, and so the interval, differs).
    verdict = pd.read_parquet(REPORTS / "aug_pairs" / "comparisons.parquet").set_index("contrast")
    row = diffs.set_index("contrast").loc["crop+color − crop+sobel"]
    assert row["estimate"] == pytest.approx(verdict.loc["crop+color − crop+sobel", "estimate"], abs=1e-9)
    assert row["paper_margin"] == pytest.approx(0.103)  # Figure 5: 56.3 - 46.0
    assert diffs.set_index("contrast").loc["crop+color − color+crop", "paper_margin"] == pytest.approx(0.005)


def test_the_readme_says_they_are_estimates_with_their_table():
    analysis = analyse(without_rule("projection_head"))
    text = render_readme(analysis, {})
    assert "## Verdict" not in text
    assert "## Differences between configurations (estimates: the study named no rule)" in text
    assert "no claim was fixed before the run and nothing here is a verdict" in text
    first = analysis.differences.iloc[0]
    assert (f"| {first['contrast']} | 3 | {first['estimate'] * 100:+.2f} | "
            f"[{first['ci_low'] * 100:+.2f}, {first['ci_high'] * 100:+.2f}] |") in text


def test_a_study_with_a_rule_gets_its_verdict_and_no_table_of_differences():
    analysis = analyse(saved.read(REPORTS / "projection_head"))
    assert analysis.verdict is not None and analysis.differences is None
