"""The verdict method's error rate by simulation, small (benchmarks/calibration.py runs the full table):
under nulls shaped like two committed studies the family-wise rate of false decisions is consistent with
5 % or less, and the same simulation does catch a method that is not calibrated.

The shapes are the committed reports' runs.parquet (cells, seeds, the rule); the simulated studies are
drawn with fixed seeds, so each figure below is the same on every run."""

from pathlib import Path

import pytest
from scipy import stats

from ablations.stats import calibration
from ablations.report import saved
from ablations.report.tables import build_tables, included

REPORTS = Path(__file__).resolve().parent.parent / "reports"


def shape(name: str, rule: str) -> calibration.Shape:
    return calibration.Shape.of(name, rule, included(build_tables(saved.read(REPORTS / name)).runs))


@pytest.fixture(scope="module")
def training_length():
    return shape("training_length", "crop_color_lead_grows")


@pytest.fixture(scope="module")
def aug_pairs():
    return shape("aug_pairs", "crop_color_best")


def test_the_shapes_are_the_studies(training_length, aug_pairs):
    assert training_length.runs["cell"].nunique() == 9 and set(training_length.runs["seed"]) == set(range(5))
    assert aug_pairs.runs["cell"].nunique() == 49 and len(aug_pairs.runs) == 146  # 98 planned + 48 confirmation
    assert len(aug_pairs.contrasts(aug_pairs.runs)) == 47
    # Observed cell SDs (2 degrees of freedom each) spread widely: the harsher null.
    sds = sorted(aug_pairs.cell_sd.values())
    assert sds[-1] > 8 * sds[0]


@pytest.mark.parametrize("observed_sds", [False, True], ids=["one SD", "observed SDs"])
def test_family_wise_error_under_the_null_is_at_most_five_percent(training_length, aug_pairs, observed_sds):
    for s, studies in ((training_length, 200), (aug_pairs, 60)):
        rate = calibration.family_error(s, calibration.moderated(), studies, observed_sds=observed_sds)
        low, high = rate.interval
        assert low <= 0.05, f"{s.name}: {rate}"
        assert rate.value <= 0.10, f"{s.name}: {rate}"


def test_the_simulation_catches_a_method_that_is_not_calibrated(aug_pairs):
    # One t-test per contrast at 5 %, no correction for the 47 contrasts: many null studies
    # decide something (about half: the contrasts all share crop+color, so their errors go together).
    def uncorrected(runs, contrasts):
        model = calibration.fit_blocks(runs, moderate=False)
        decisions = []
        for contrast in contrasts:
            estimate, (variance, df) = model.contrast_vector(contrast) @ model.coefficients, model.variance(contrast)
            p = 2 * stats.t.sf(abs(estimate) / variance ** 0.5, df)
            decisions.append(("above" if estimate > 0 else "below") if p < 0.05 else "undecided")
        return decisions

    rate = calibration.family_error(aug_pairs, uncorrected, 40, observed_sds=False)
    assert rate.interval[0] > 0.2, str(rate)  # 47.5 % [32.9, 62.5]: far above 5 %


def test_the_moderated_method_finds_the_effects_the_studies_show(training_length):
    found = calibration.power(training_length, calibration.moderated(), 30, observed_sds=True)
    assert found.true_contrasts == 2
    assert found.found.value >= 0.5 and found.wrong_way.hits == 0, (str(found.found), str(found.wrong_way))
