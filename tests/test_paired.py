"""ablations.paired: paired statistics over seeds, against values worked by hand."""

import math

import pandas as pd
import pytest

from ablations.paired import compare, corrected, holm, paired_differences, seeds_needed, table


def test_differences_are_taken_on_the_shared_seeds_only():
    runs = pd.DataFrame({
        "config": ["A", "A", "A", "B", "B", "B"],
        "seed": [0, 1, 2, 1, 2, 3],
        "probe_h": [0.50, 0.60, 0.70, 0.55, 0.40, 0.90],
    })
    d = paired_differences(runs, "A", "B")
    assert list(d.index) == [1, 2]
    assert d.tolist() == pytest.approx([0.05, 0.30])


def test_three_seeds_by_hand():
    # d = 1, 2, 3: mean 2, SD 1; t(0.975, 2) = 4.302653, so the interval is 2 -+ 4.302653 / sqrt(3).
    # t = 2 / (1 / sqrt 3) = sqrt 12; with 2 degrees of freedom sf(t) = (1 - t / sqrt(t^2 + 2)) / 2,
    # so p = 1 - sqrt(12 / 14) = 0.0741799: not under 0.05, undecided.
    c = compare([1.0, 2.0, 3.0], "A", "B")
    assert (c.n, c.mean, c.sd) == (3, 2.0, 1.0)
    assert c.low == pytest.approx(2 - 4.302653 / math.sqrt(3), abs=1e-5)
    assert c.high == pytest.approx(2 + 4.302653 / math.sqrt(3), abs=1e-5)
    assert c.p_value == pytest.approx(1 - math.sqrt(12 / 14), abs=1e-7)
    assert c.p_improvement == 1.0
    assert c.decision == "undecided"
    # t(0.975, 3) = 3.182446: 3.182446 / 2 = 1.59 < 2 at n = 4, while n = 3 gives 2.48 > 2.
    assert c.seeds_needed == 4


def test_a_clear_difference_is_decided_either_way():
    above = compare([0.05, 0.06, 0.04, 0.05, 0.055])
    assert above.decision == "above" and above.low > 0 and above.seeds_needed is None
    below = compare([-0.05, -0.06, -0.04, -0.05, -0.055])
    assert below.decision == "below" and below.high < 0


def test_ties_count_one_half_and_one_seed_has_no_interval():
    assert compare([0.0, 1.0, -1.0, 2.0]).p_improvement == pytest.approx(2.5 / 4)
    one = compare([0.3])
    assert one.n == 1 and math.isnan(one.low) and math.isnan(one.p_value)
    assert one.decision == "undecided" and one.seeds_needed is None


def test_holm_by_hand():
    # Sorted 0.01, 0.03, 0.04 times 3, 2, 1 = 0.03, 0.06, 0.04; the running maximum makes the last 0.06.
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # 0.5 * 2 = 1.0; then 0.9 * 1 is under the running maximum 1.0.
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    adjusted = holm([math.nan, 0.02])
    assert math.isnan(adjusted[0]) and adjusted[1] == pytest.approx(0.02)


def test_correction_can_turn_a_decision_into_undecided():
    # Alone, d = (1, 1.2, 0.8, 1.1, 0.9) decides (p ~ 2e-4); two near-noise comparisons beside it do
    # not change that, but a borderline one (p ~ 0.03) loses its decision under Holm.
    strong = compare([1, 1.2, 0.8, 1.1, 0.9], "X", "a")
    borderline = compare([0.5, 0.1, 0.6, 0.2, 0.45], "X", "b")
    noise = compare([0.1, -0.1, 0.05, -0.05, 0.0], "X", "c")
    assert strong.decided and borderline.decided and not noise.decided
    judged = corrected([strong, borderline, noise])
    assert judged[0].decision == "above"
    assert judged[1].p_corrected == pytest.approx(min(1, 2 * borderline.p_value))
    assert judged[1].decision == ("above" if 2 * borderline.p_value < 0.05 else "undecided")
    assert judged[2].p_corrected == pytest.approx(1.0)


def test_seeds_needed_by_hand():
    assert seeds_needed(2.0, 1.0) == 4
    # With 3 comparisons Holm's strictest step is p < 0.05 / 3: t(1 - 0.05 / 6, n - 1) / sqrt(n) < 2
    # first at n = 5 (t(0.991667, 4) = 3.960 / 2.236 = 1.77), not at n = 4 (t(0.991667, 3) = 4.857 / 2 = 2.43).
    assert seeds_needed(2.0, 1.0, m=3) == 5
    assert seeds_needed(0.0, 1.0) is None
    assert seeds_needed(1e-6, 1.0) is None  # far too small to decide with seeds


def test_comparison_table_columns():
    frame = table([compare([1.0, 2.0, 3.0], "A", "B"), compare([0.3], "A", "C")])
    assert list(frame.columns) == ["better", "worse", "n", "mean_diff", "sd_diff", "ci_low", "ci_high",
                                   "p_improvement", "p_value", "p_holm", "decision", "seeds_needed"]
    assert frame["seeds_needed"].tolist()[0] == 4 and pd.isna(frame["seeds_needed"].tolist()[1])
