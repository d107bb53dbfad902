"""ablations.stats.paired: the per-seed view of one comparison, against values worked by hand."""

import math

import pytest

from ablations.stats.paired import compare


def test_three_seeds_by_hand():
    # d = 1, 2, 3: mean 2, SD 1; t(0.975, 2) = 4.302653, so the interval is 2 -+ 4.302653 / sqrt(3).
    # t = 2 / (1 / sqrt 3) = sqrt 12; with 2 degrees of freedom sf(t) = (1 - t / sqrt(t^2 + 2)) / 2,
    # so p = 1 - sqrt(12 / 14) = 0.0741799.
    c = compare([1.0, 2.0, 3.0])
    assert (c.n, c.mean, c.sd) == (3, 2.0, 1.0)
    assert c.low == pytest.approx(2 - 4.302653 / math.sqrt(3), abs=1e-5)
    assert c.high == pytest.approx(2 + 4.302653 / math.sqrt(3), abs=1e-5)
    assert c.p_value == pytest.approx(1 - math.sqrt(12 / 14), abs=1e-7)
    assert c.p_improvement == 1.0


def test_equal_values_are_certain_up_to_the_seeds_run():
    assert compare([0.5, 0.5, 0.5]).p_value == 0.0  # exactly equal in binary: SD 0
    assert compare([0.0, 0.0]).p_value == 1.0


def test_ties_count_one_half_and_one_seed_has_no_interval():
    assert compare([0.0, 1.0, -1.0, 2.0]).p_improvement == pytest.approx(2.5 / 4)
    one = compare([0.3])
    assert one.n == 1 and math.isnan(one.low) and math.isnan(one.p_value) and one.p_improvement == 1.0
    assert compare([]).n == 0
