"""The report's statistics (ablations.report.stats), pure functions of tables, against values worked by
hand: cell means and SDs over seeds, the pooled SD, Spearman's rank correlation (with ties), the
crop-plus-colour verdict and its margin in pooled SDs."""

import math

import pandas as pd
import pytest
from test_report_records import LOSING, WINNING

from ablations.report.stats import cell_stats, is_monotonic, pair_verdict, pooled_sd, spearman, study_verdict
from ablations.report.tables import Tables


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


def test_pair_verdict_reasons_by_hand():
    # LOSING: best noise→crop 0.65; best crop-with-colour crop→color 0.60; best other noise→crop 0.65;
    # gap -0.05 over a pooled SD of 0.01: -5.0 SD, 5.0 points.
    losing = pair_verdict(cells_frame(LOSING))
    assert losing.reasons == [
        "the best cell is noise→crop (65.0 %), not crop with colour; the best crop-with-colour cell, crop→color, "
        "reaches 60.0 %",
        "crop→color trails noise→crop by 5.0 pooled SD (5.0 % points)"]
    empty = pair_verdict(cells_frame({}).reindex(columns=["first", "second", "mean", "std", "n"]))
    assert empty.holds is None and empty.reasons == ["no finished runs"]


def test_pooled_sd_weights_cells_by_degrees_of_freedom():
    stats = pd.DataFrame({"std": [0.1, 0.2, math.nan], "n": [2, 4, 1]})
    assert pooled_sd(stats) == (pytest.approx(math.sqrt((1 * 0.01 + 3 * 0.04) / 4)), 4)


def test_pooled_sd_is_undefined_without_two_seeds():
    sd, dof = pooled_sd(pd.DataFrame({"std": [math.nan, math.nan], "n": [1, 1]}))
    assert math.isnan(sd) and dof == 0


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


def test_study_verdict_only_for_pair_studies_with_results():
    runs = runs_frame()
    assert study_verdict(Tables(runs, pd.DataFrame(), ["train.temperature"], ["probe_h"], pair=False)) is None
    pairs = runs.assign(first=["crop", "crop", "color", "color", "color"], second="color")
    verdict = study_verdict(Tables(pairs, pd.DataFrame(), ["first", "second"], ["probe_h"], pair=True))
    # color alone (0.50, one seed) beats crop→color (0.42, two seeds): a gap of -0.08 over the only pooled
    # spread, crop→color's 0.02 sqrt(2), is -2 sqrt(2) pooled SD.
    assert verdict.best == ("color", "color") and verdict.best_mean == pytest.approx(0.50)
    assert verdict.best_crop_color == ("crop", "color") and verdict.best_crop_color_mean == pytest.approx(0.42)
    assert verdict.margin_sd == pytest.approx(-2 * math.sqrt(2)) and verdict.holds is False


def test_is_monotonic():
    assert is_monotonic([1.0, 1.0, 2.0]) and is_monotonic([]) and not is_monotonic([1.0, 3.0, 2.0])
