"""A verdict rule is defined in one place (`@rule` on its function in ablations.stats.verdicts): a toy rule
defined here is checked against a study file's grid when the file is read, judged, and reaches the report
(its sentence, its parts, comparisons.parquet) with nothing else edited."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from ablations.stats import verdicts
from ablations.stats.contrasts import Contrast
from ablations.report import saved
from ablations.report.build import build_report
from ablations.run.study_file import load_study
from ablations.design.keys import StudyError
from ablations.stores.tracking import VERDICT_TAG

ROOT = Path(__file__).resolve().parent.parent
TOY_TEXT = "the strongest colour against the weakest, one part (a toy rule defined in a test)"


@pytest.fixture
def toy_rule():

    @verdicts.rule("strongest_beats_weakest", ("augment.color_strength",), TOY_TEXT)
    def strongest_beats_weakest(runs: pd.DataFrame) -> verdicts.Plan:
        by_strength = sorted(runs.drop_duplicates("cell")[["augment.color_strength", "cell"]].itertuples(index=False))
        (_, weakest), (_, strongest) = by_strength[0], by_strength[-1]
        return verdicts.Plan("The strongest colour beats the weakest (toy)",
                             [verdicts.PartPlan("strongest > weakest", [Contrast.pair(strongest, weakest, "s max − s min")])])

    yield "strongest_beats_weakest"
    del verdicts.RULES["strongest_beats_weakest"]  # the toy leaves with the test


def test_every_shipped_rule_says_what_it_needs_and_how_it_reads():
    assert list(verdicts.RULES) == ["crop_color_best", "color_strength_rises", "head_order", "temperature_half_best",
                                    "crop_color_lead_grows"]
    documented = (ROOT / "reports" / "README.md").read_text()
    for name, rule in verdicts.RULES.items():
        assert rule.name == name and rule.requires and len(rule.text) > 40 and callable(rule.plan)
        assert f"| `{name}` |" in documented
    with pytest.raises(ValueError, match="defined twice"):
        verdicts.rule("head_order", ("model.head",), "again")(lambda runs: None)


def test_a_toy_rule_is_checked_in_the_study_file_and_reaches_the_report(toy_rule, tmp_path):
    study = tmp_path / "toy.yaml"
    study.write_text(f"name: toy\nsearch: {{grid: {{augment.color_strength: [0.25, 1.0]}}}}\nverdict: {toy_rule}\n")
    assert load_study(study).verdict == toy_rule
    study.write_text(f"name: toy\nsearch: {{grid: {{train.temperature: [0.2, 0.5]}}}}\nverdict: {toy_rule}\n")
    with pytest.raises(StudyError, match="augment.color_strength"):
        load_study(study)

    folder = tmp_path / "color_strength"
    shutil.copytree(ROOT / "reports" / "color_strength", folder)
    records = saved.read(folder)
    records.parent_tags[VERDICT_TAG] = toy_rule
    build_report(records, tmp_path, study_dir=folder)
    readme = (folder / "README.md").read_text()
    assert f"- Rule: {TOY_TEXT}." in readme and "The strongest colour beats the weakest (toy)" in readme
    table = pd.read_parquet(folder / "comparisons.parquet")
    assert list(table["part"]) == ["strongest > weakest"] and list(table["contrast"]) == ["s max − s min"]
    # s = 1 against s = 1/8 in the committed study: -1.93 points.
    assert table["estimate"].iloc[0] == pytest.approx(-0.0193, abs=5e-4)
