"""How the report writes values in prose (ablations.report.formatting)."""

import math

from ablations.report.formatting import n_text, nan_to_zero, ordinal, pair_name, pct, pct_spread, value_text
from ablations.stats.reference import strength_label


def test_pct_writes_fractions_as_percent():
    assert pct(0.5634) == "56.3 %" and pct(0.5634, unit=False) == "56.3"
    assert pct(0.012, sign=True) == "+1.2 %" and pct(-0.05) == "-5.0 %"
    assert pct(math.nan) == "n/a" and pct(None) == "n/a"
    # The SD in points without its own unit; one seed's NaN SD as 0.
    assert pct_spread(0.4047, 0.0152) == "40.5 % ± 1.5" and pct_spread(0.4, math.nan) == "40.0 % ± 0.0"


def test_pair_names_and_ordinals():
    # The configuration's name as MLflow's runs carry it (plan.cell_name): crop, then colour.
    assert pair_name(("crop", "color")) == "crop+color" and pair_name(("crop", "crop")) == "crop"
    assert pair_name(None) == "none"
    assert [ordinal(r) for r in (1, 2, 3, 4, 11, 12, 13, 21, 22, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "111th"]
    assert ordinal(2.5) == "2.5 (tied)"


def test_values_counts_and_strengths():
    assert value_text(256.0) == "256" and value_text(0.5) == "0.5" and value_text("mlp") == "mlp"
    assert nan_to_zero(math.nan) == 0.0 and nan_to_zero(0.25) == 0.25
    assert n_text([2, 2]) == "n = 2" and n_text([1, 2, 2]) == "n = 1 to 2"
    assert [strength_label(s) for s in (0.125, 0.25, 0.5, 1.0, 0.3, 2.0)] == ["1/8", "1/4", "1/2", "1", "0.3", "2"]
