"""The report's statistics (ablations.report.stats), pure functions of tables, against values worked by
hand: cell means and SDs over seeds, Spearman's rank correlation (with ties), rising curves. The
verdicts' paired statistics are tested in test_paired.py and test_verdicts.py."""

import math

import pandas as pd
import pytest

from ablations.report.stats import cell_stats, is_monotonic, spearman


def test_spearman_without_scipy_matches_the_definition():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # No ties: 1 - 6 sum d^2 / (n (n^2 - 1)); d = (0, 1, -1, 0, 0) -> 1 - 12/120.
    assert spearman([1, 2, 3, 4, 5], [1, 3, 2, 4, 5]) == pytest.approx(0.9)
    assert math.isnan(spearman([1, 2], [2, 1]))


def test_spearman_gives_ties_their_average_rank():
    # Ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4), both centred on 2.5: covariance sum 2.25 + 0 + 0 + 2.25
    # = 4.5, sums of squares 4.5 and 5.0, so rho = 4.5 / sqrt(4.5 * 5.0) = sqrt(0.9).
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(math.sqrt(0.9))
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))  # a constant side has no ranking
    assert spearman([1, 2, None, 3], [3, 2, 5, 1]) == pytest.approx(-1.0)  # the pair with a gap is dropped


def runs_frame() -> pd.DataFrame:
    """Temperature 0.1: two finished seeds; 0.5: one finished seed, one FAILED run, one pruned run."""
    return pd.DataFrame({
        "train.temperature": [0.1, 0.1, 0.5, 0.5, 0.5],
        "status": ["FINISHED", "FINISHED", "FINISHED", "FAILED", "FINISHED"],
        "pruned": [False, False, False, False, True],
        "probe_h": [0.40, 0.44, 0.50, 0.90, 0.30],
    })


def test_cell_stats_over_the_runs_that_count():
    stats = cell_stats(runs_frame(), ["train.temperature"])
    assert list(stats["train.temperature"]) == [0.1, 0.5] and list(stats["n"]) == [2, 1]
    # (0.40 + 0.44) / 2 = 0.42 with SD sqrt(2 * 0.02^2) = 0.0283; the FAILED 0.90 and pruned 0.30 do not count.
    assert list(stats["mean"]) == pytest.approx([0.42, 0.50])
    assert stats["std"].iloc[0] == pytest.approx(0.02 * math.sqrt(2)) and math.isnan(stats["std"].iloc[1])


def test_is_monotonic():
    assert is_monotonic([1.0, 1.0, 2.0]) and is_monotonic([]) and not is_monotonic([1.0, 3.0, 2.0])
