"""What pairing over seeds buys: for every two configurations of a study, the correlation of their probe
accuracy across seeds and the SD of their per-seed difference (paired) against the SD a difference of
independent runs would have (unpaired: sqrt(SD_a^2 + SD_b^2)). Pairing pays when one seed moves both
configurations alike (correlation near 1, paired SD far below unpaired); it buys nothing at 0.

Reads reports' runs.parquet files (or report folders) and compares two of them, "before" and "after",
on the configurations they share (by run name less the seed: `crop+color`, `crop`):

    python benchmarks/pairing.py BEFORE AFTER [--cells crop+color crop+sobel crop] [--where train.epochs=6]

`--where key=value` keeps the runs of one value of a varied key (the training-length study at 6 epochs).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_flags  # noqa: E402


def load(path: str, where: list[str]) -> pd.DataFrame:
    """seed x configuration table of probe_h (finished trial runs, floor left out)."""
    path = Path(path)
    runs = pd.read_parquet(path / "runs.parquet" if path.is_dir() else path)
    runs = runs[(runs["status"] == "FINISHED") & runs["probe_h"].notna()]
    if "role" in runs.columns:
        runs = runs[runs["role"] != "floor"]
    for condition in where:
        key, _, value = condition.partition("=")
        if key in runs.columns:
            runs = runs[runs[key].astype(str).str.removesuffix(".0") == value]
    runs = runs.assign(configuration=runs["run_name"].str.replace(r"\s*seed=\d+$", "", regex=True)
                       .str.replace(r"\s*epochs=\d+", "", regex=True))
    return runs.pivot_table(index="seed", columns="configuration", values="probe_h", aggfunc="mean")


def fisher_interval(r: float, n: int) -> tuple[float, float]:
    """95 % interval of a correlation over n seeds (Fisher's z, SE 1/sqrt(n-3)): with 5 seeds it spans
    most of [-1, 1] for one pair, so a change is read over many pairs, not one."""
    if n <= 3 or not math.isfinite(r) or abs(r) >= 1:
        return math.nan, math.nan
    z, half = math.atanh(r), 1.959964 / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


def pairs_table(table: pd.DataFrame, cells: list[str]) -> pd.DataFrame:
    rows = []
    for a, b in itertools.combinations(cells, 2):
        both = table[[a, b]].dropna()
        if len(both) < 3:
            continue
        difference = both[a] - both[b]
        unpaired = math.sqrt(both[a].var(ddof=1) + both[b].var(ddof=1))
        r = both[a].corr(both[b])
        low, high = fisher_interval(r, len(both))
        rows.append({"pair": f"{a} vs {b}", "seeds": len(both), "correlation": r, "r_low": low, "r_high": high,
                     "paired_sd": difference.std(ddof=1) * 100, "unpaired_sd": unpaired * 100,
                     "ratio": difference.std(ddof=1) / unpaired if unpaired else math.nan})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--cells", nargs="*", default=None, help="configurations to compare (default: all shared)")
    parser.add_argument("--where", nargs="*", default=[], help="key=value filters, e.g. train.epochs=6")
    args = parser.parse_args(argv)
    tables = {name: load(path, args.where) for name, path in (("before", args.before), ("after", args.after))}
    shared = [c for c in tables["before"].columns if c in tables["after"].columns]
    cells = [c for c in (args.cells or shared) if c in shared]
    print(f"# pairing over seeds, probe_h, points; CPU flags of this machine: {cpu_flags()}")
    for name, table in tables.items():
        frame = pairs_table(table, cells)
        print(f"\n## {name}: {Path(getattr(args, name))} ({len(table)} seeds; cells {', '.join(cells)})")
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if len(frame):
            print(f"median: correlation {np.median(frame['correlation']):+.2f}, paired SD "
                  f"{np.median(frame['paired_sd']):.2f} against unpaired {np.median(frame['unpaired_sd']):.2f} "
                  f"points (ratio {np.median(frame['ratio']):.2f})")


if __name__ == "__main__":
    main()
