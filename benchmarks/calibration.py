"""Calibration of the verdict method by simulation (issue "Verdicts a second reviewer signs"): the
family-wise rate of false decisions under nulls shaped like the shipped studies, and the power on their
observed effects, for this project's method (`ablations.stats.inference`, moderated cell variances) and for the
method shipped before it (the guards of commit 624993f, read from git history).

    python benchmarks/calibration.py [--studies 1000] [--shipped-studies 300] [--power-studies 200]

Each shape is a committed study's runs.parquet (its cells, seeds and rule; `ablations.stats.calibration`
says how a study is simulated). A method is calibrated when its null rate's 95 % interval reaches down
to 5 % or below. Prints one Markdown table (benchmarks/RESULTS.md keeps it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_flags  # noqa: E402

from ablations.stats import calibration  # noqa: E402
from ablations.report import saved  # noqa: E402
from ablations.report.tables import build_tables, included  # noqa: E402

SHIPPED = "624993f"  # the last commit with the guards (cell F-test, refit pool, pair F-test)
SHAPES = (("aug_pairs", "crop_color_best"), ("training_length", "crop_color_lead_grows"),
          ("color_strength", "color_strength_rises"), ("projection_head", "head_order"),
          ("temperature", "temperature_half_best"))


def shipped_method() -> calibration.Method:
    """The shipped inference module, loaded from git history as it was."""
    source = subprocess.run(["git", "show", f"{SHIPPED}:ablations/stats/inference.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType("shipped_inference")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{SHIPPED}:ablations/stats/inference.py", "exec"), module.__dict__)
    return lambda runs, contrasts: [e.decision for e in module.judge(runs, contrasts)]


def shape(name: str, rule: str) -> calibration.Shape:
    records = saved.read(ROOT / "reports" / name)
    return calibration.Shape.of(name, rule, included(build_tables(records).runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=1000, help="null studies per shape and scenario (this method)")
    parser.add_argument("--shipped-studies", type=int, default=300, help="null studies for the shipped method (slower)")
    parser.add_argument("--power-studies", type=int, default=200)
    parser.add_argument("--only", nargs="*", help="study names to run (default: all five)")
    parser.add_argument("--method", choices=("moderated", "shipped", "both"), default="both")
    args = parser.parse_args()
    print(f"machine: {cpu_flags()}; draws per critical value in the simulations: 20,000")
    methods = {}
    if args.method in ("moderated", "both"):
        methods["moderated (this)"] = (calibration.moderated(), args.studies)
    if args.method in ("shipped", "both"):
        methods[f"shipped ({SHIPPED})"] = (shipped_method(), args.shipped_studies)
    print("| study shape | cells x seeds | method | null, one SD | null, observed SDs | power (observed SDs) | "
          "wrong-way decisions | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rule in SHAPES:
        if args.only and name not in args.only:
            continue
        s = shape(name, rule)
        seeds = s.runs.groupby("cell")["seed"].nunique()
        design = f"{len(seeds)} x {seeds.min()}" + (f"-{seeds.max()}" if seeds.max() != seeds.min() else "")
        for label, (method, studies) in methods.items():
            start = time.perf_counter()
            equal = calibration.family_error(s, method, studies, observed_sds=False)
            observed = calibration.family_error(s, method, studies, observed_sds=True, seed=2)
            found = calibration.power(s, method, min(args.power_studies, studies), observed_sds=True)
            print(f"| {name} ({rule}) | {design} | {label} | {equal} | {observed} | {found.found} | "
                  f"{found.wrong_way} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
