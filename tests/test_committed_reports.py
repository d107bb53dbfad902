"""The committed reports say what their tables say: every estimate with its interval, every bare interval,
every "k of m decided" and every "X points on N df" that the current reading of an ANALYSIS.md (the
sections not marked superseded) or a row of the README's results table states is found in that report's
comparisons.parquet, its figures' data or its generated README, at the precision written. Earlier
readings are kept as written under headings marked "superseded" and are not checked."""

import itertools
import math
import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
# A study with a rule has its verdict's contrasts (comparisons.parquet); one without, its configurations
# compared (differences.parquet).
TABLES = ("comparisons.parquet", "differences.parquet")
REPORTS = sorted(p.parent.name for p in (ROOT / "reports").glob("*/ANALYSIS.md")
                 if any((p.parent / table).is_file() for table in TABLES))
NUMBER = r"[+−-]?\d+\.\d+"
TRIPLE = re.compile(rf"({NUMBER}) \[({NUMBER}), ({NUMBER})\]")
INTERVAL = re.compile(rf"\[({NUMBER}), ({NUMBER})\]")
DECIDED = re.compile(r"(\d+) of (\d+)(?: contrasts)? decided")
POOL = re.compile(r"(\d+\.\d+) points on (\d+(?:\.\d+)?) df")


def value(text: str) -> float:
    return float(text.replace("−", "-"))


def decimals(text: str) -> int:
    return len(text.split(".")[1])


def same(written: str, actual: float) -> bool:
    return math.isfinite(actual) and abs(value(written) - round(actual, decimals(written))) < 1e-9


class Tables:
    """What a report's tables hold, in percentage points."""

    def __init__(self, name: str):
        folder = ROOT / "reports" / name
        c = self.comparisons = pd.read_parquet(next(folder / t for t in TABLES if (folder / t).is_file()))
        if "part" not in c.columns:  # differences: one family, no parts
            c = c.assign(part="all")
        self.triples = [(e * 100, lo * 100, hi * 100) for e, lo, hi in zip(c["estimate"], c["ci_low"], c["ci_high"])]
        self.intervals = [(lo, hi) for _, lo, hi in self.triples]
        self.intervals += [(lo * 100, hi * 100) for lo, hi in zip(c["paired_low"], c["paired_high"])]
        for csv in (folder / "figures").glob("*.csv"):
            frame = pd.read_csv(csv)
            if {"estimate_points", "ci_low_points", "ci_high_points"} <= set(frame.columns):
                rows = list(zip(frame["estimate_points"], frame["ci_low_points"], frame["ci_high_points"]))
                self.triples += rows
                self.intervals += [(lo, hi) for _, lo, hi in rows]
        parts = [group for _, group in c.groupby("part", sort=False)]
        self.counts = set()
        for k in range(1, len(parts) + 1):
            for chosen in itertools.combinations(parts, k):
                both = pd.concat(chosen)
                self.counts.add((int(both["decision"].isin(["above", "below"]).sum()), len(both)))
        self.generated = (folder / "README.md").read_text().split("## Analysis")[0]

    def check(self, text: str, where: str) -> list[str]:
        wrong = []
        for match in TRIPLE.finditer(text):
            e, lo, hi = match.groups()
            if not any(same(e, a) and same(lo, b) and same(hi, c) for a, b, c in self.triples):
                wrong.append(f"{where}: {match.group(0)} is in no table")
        for match in INTERVAL.finditer(TRIPLE.sub("", text)):
            lo, hi = match.groups()
            if not any(same(lo, a) and same(hi, b) for a, b in self.intervals):
                wrong.append(f"{where}: {match.group(0)} is in no table")
        for match in DECIDED.finditer(text):
            if (int(match.group(1)), int(match.group(2))) not in self.counts:
                wrong.append(f"{where}: '{match.group(0)}' does not match the decisions")
        for match in POOL.finditer(text):
            if match.group(0) not in self.generated:
                wrong.append(f"{where}: '{match.group(0)}' is not what the report's model printed")
        return wrong


def current_reading(analysis: str) -> str:
    """The sections of an ANALYSIS.md not marked superseded."""
    sections = re.split(r"(?m)^(?=### )", analysis)
    return "".join(s for s in sections if "superseded" not in s.split("\n", 1)[0])


@pytest.mark.parametrize("name", REPORTS)
def test_the_current_reading_states_only_numbers_its_tables_hold(name):
    text = current_reading((ROOT / "reports" / name / "ANALYSIS.md").read_text())
    assert TRIPLE.search(text), "the current reading states no interval at all"
    assert Tables(name).check(text, f"reports/{name}/ANALYSIS.md") == []


def test_the_readme_results_table_states_only_numbers_its_reports_hold():
    rows = [line for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith("| ") and "(reports/" in line and "/README.md)" in line]
    checked = 0
    for row in rows:
        name = re.search(r"\(reports/([a-z_]+)/README\.md\)", row).group(1)
        if name in REPORTS:
            assert Tables(name).check(row, f"README.md row {name}") == []
            checked += 1
    assert checked == len(REPORTS) == 6


def test_the_checker_catches_a_number_that_drifted():
    tables = Tables("aug_pairs")
    assert tables.check("crop+color − crop+sobel +1.08 [−0.90, +3.06]", "x") == []
    assert tables.check("crop+color − crop+sobel +1.08 [−3.85, +6.01]", "x") != []
    assert tables.check("45 of 47 contrasts decided", "x") == []
    assert tables.check("46 of 47 contrasts decided", "x") != []
    assert tables.check("0.48 points on 77 df", "x") != []


def test_a_report_rebuilt_twice_from_its_parquet_gives_the_same_comparisons_without_loading_mlflow(tmp_path):
    import shutil
    import subprocess
    import sys

    folder = tmp_path / "projection_head"
    shutil.copytree(ROOT / "reports" / "projection_head", folder)
    script = ("import sys; from ablations.report.cli import main; code = main(['--from-parquet', sys.argv[1]]); "
              "print('mlflow loaded' if 'mlflow' in sys.modules else 'mlflow not loaded'); sys.exit(code)")
    contents = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().endswith("mlflow not loaded")
        contents.append((folder / "comparisons.parquet").read_bytes())
    assert contents[0] == contents[1]
    assert pd.read_parquet(folder / "comparisons.parquet").equals(
        pd.read_parquet(ROOT / "reports" / "projection_head" / "comparisons.parquet"))
