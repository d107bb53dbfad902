"""How the report writes values in prose: percentages, pairs of ops, ordinals, config values, counts.

The README (`readme`), the figure readings (`specs`), the verdict's reasons (`stats`) and the figures'
axis labels all write through here, so a value reads the same wherever a report prints it.
"""

from __future__ import annotations

import math
from typing import Any


def pair_name(cell: tuple[str, str] | None) -> str:
    """`crop+color` for an ordered pair (crop, then colour), `crop` for the single op (the grid's diagonal):
    the configuration's name wherever it is shown (plan.cell_name, MLflow's run names and tag
    `ablations.config`, the terminal)."""
    if cell is None:
        return "none"
    first, second = cell
    return first if first == second else f"{first}+{second}"


def pct(value: float, unit: bool = True, sign: bool = False) -> str:
    """An accuracy held as a fraction, in percent with one decimal: `56.3 %`; `n/a` when missing."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value * 100:{'+' if sign else ''}.1f}" + (" %" if unit else "")


def pct_spread(mean: float, sd: float) -> str:
    """A mean accuracy and its SD over seeds, both held as fractions: `40.5 % ± 1.5` (the SD in points); the
    report's README and the run's terminal table both write a spread through here, so they read alike."""
    return f"{pct(mean)} ± {pct(nan_to_zero(sd), unit=False)}"


def nan_to_zero(value: float) -> float:
    """An SD that is NaN for a single seed, as 0 where a spread must still be printed."""
    return 0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else value


def ordinal(rank: float) -> str:
    """`1st`, `12th`; a pandas average rank of tied values as `2.5 (tied)`."""
    rank = float(rank)
    if not rank.is_integer():
        return f"{rank:g} (tied)"
    n = int(rank)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def value_text(value: Any) -> str:
    """A config value as a study file would write it: `256`, not `256.0` (Parquet keeps some as floats)."""
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)


def n_text(counts) -> str:
    """`n = 2`, or `n = 1 to 2` when configurations have different numbers of runs."""
    low, high = int(min(counts)), int(max(counts))
    return f"n = {low}" if low == high else f"n = {low} to {high}"


