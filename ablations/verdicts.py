"""Verdict rules: each study's claim from the paper, decided by paired comparisons over shared seeds.

A rule is chosen in the study file (`verdict: <rule>`) before the study runs, and is a pure function of
the study's finished runs (one row per run: `cell`, `seed`, `probe_h`, `probe_z` and the varied keys'
columns). It names the comparisons that decide the claim, judges them together (Holm-corrected, 95 %,
`ablations.paired`) and says one of:
- holds: every comparison is decided in the claim's direction;
- does not hold: some comparison is decided against it;
- undecided: neither yet; `seeds_needed` estimates the shared seeds that would decide the open ones.

The rules (reference figures in shared/REFERENCE.md):
- crop_color_best (Figure 5): the better crop-with-colour cell (crop->color or color->crop) beats every
  cell that does not combine crop with colour.
- color_strength_rises (Table 1): the strongest colour distortion beats the weakest, and no step up in
  strength is decided worse than the one below it.
- head_order (Section 4.2): on h, mlp head > linear head > no head; and for the mlp head, h > z.
- temperature_half_best (Appendix B.9, CIFAR-10 with long training): at every batch size, tau = 0.5
  beats every other temperature.
- crop_color_lead_grows (Figure 5 against training length): crop->color beats crop->sobel at the longest
  budget, and its lead there is larger than at the shortest budget.
The confirmation step (`confirm:` in a study file) adds seeds to the configurations of the open
comparisons (`configurations_to_confirm`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from ablations.paired import Comparison, compare, corrected, paired_differences
from ablations.rule_catalog import REQUIRES  # noqa: F401 (what each rule needs varied; read here by the report)

CROP_COLOR_CELLS = frozenset({("crop", "color"), ("color", "crop")})


@dataclass(frozen=True)
class Verdict:
    rule: str
    claim: str  # the paper's claim, in words
    status: str  # "holds" | "does not hold" | "undecided"
    comparisons: list[Comparison] = field(default_factory=list)
    note: str = ""  # why it cannot be judged, where it cannot

    @property
    def seeds_needed(self) -> int | None:
        """Shared seeds the open comparisons would need (the most of them); None if decided or unknown."""
        needed = [c.seeds_needed for c in self.comparisons if not c.decided and c.seeds_needed is not None]
        return max(needed) if needed and self.status == "undecided" else None

    @property
    def sentence(self) -> str:
        if self.note:
            return f"{self.claim}: undecided ({self.note})."
        open_ = [c for c in self.comparisons if not c.decided]
        text = f"{self.claim}: {self.status}"
        if self.status == "undecided":
            text += f" ({len(open_)} of {len(self.comparisons)} comparisons open"
            text += f"; about {self.seeds_needed} shared seeds would decide them)" if self.seeds_needed else ")"
        return text + "."


def _judge(rule: str, claim: str, comparisons: list[Comparison]) -> Verdict:
    judged = corrected(comparisons)
    if not judged:
        return Verdict(rule, claim, "undecided", [], "no comparison has runs on both sides")
    if any(c.decision == "below" for c in judged):
        status = "does not hold"
    elif all(c.decision == "above" for c in judged):
        status = "holds"
    else:
        status = "undecided"
    return Verdict(rule, claim, status, judged)


def _compare(runs: pd.DataFrame, better: str, worse: str, metric: str = "probe_h") -> Comparison | None:
    differences = paired_differences(runs, better, worse, metric=metric, config="cell")
    return compare(differences, better, worse) if len(differences) else None


def _cells_by(runs: pd.DataFrame, column: str) -> dict:
    """value of `column` -> the cell ids that have it (several where other keys vary too)."""
    return {value: sorted(group["cell"].unique()) for value, group in runs.groupby(column, sort=True)}


def _mean(runs: pd.DataFrame, cell: str) -> float:
    return float(runs.loc[runs["cell"] == cell, "probe_h"].mean())


def crop_color_best(runs: pd.DataFrame) -> Verdict:
    claim = "Crop with colour (either order) beats every pair without both (Figure 5)"
    cells = runs.drop_duplicates("cell")
    pair_of = {cell: (first, second) for cell, first, second in zip(cells["cell"], cells["first"], cells["second"])}
    crop_color = [cell for cell, pair in pair_of.items() if pair in CROP_COLOR_CELLS]
    if not crop_color:
        return Verdict("crop_color_best", claim, "undecided", [], "the study has no crop-with-colour cell")
    best = max(crop_color, key=lambda cell: _mean(runs, cell))
    others = [cell for cell, pair in pair_of.items() if pair not in CROP_COLOR_CELLS]
    return _judge("crop_color_best", claim, [c for c in (_compare(runs, best, o) for o in others) if c])


def color_strength_rises(runs: pd.DataFrame) -> Verdict:
    claim = "Accuracy rises with colour strength (Table 1)"
    strengths = sorted(_cells_by(runs, "augment.color_strength").items())
    cells = [group[0] for _, group in strengths]
    if len(cells) < 2:
        return Verdict("color_strength_rises", claim, "undecided", [], "fewer than two strengths")
    # The strongest against the weakest first, then each step up (with two strengths they are one).
    steps = [(cells[i + 1], cells[i]) for i in range(len(cells) - 1)] if len(cells) > 2 else []
    endpoint = _compare(runs, cells[-1], cells[0])
    if endpoint is None:
        return Verdict("color_strength_rises", claim, "undecided", [], "the strongest and weakest share no seed")
    judged = corrected([endpoint] + [c for c in (_compare(runs, a, b) for a, b in steps) if c])
    endpoint, steps = judged[0], judged[1:]
    if endpoint.decision == "below" or any(c.decision == "below" for c in steps):
        status = "does not hold"
    elif endpoint.decision == "above":
        status = "holds"
    else:
        status = "undecided"
    return Verdict("color_strength_rises", claim, status, judged)


def head_order(runs: pd.DataFrame) -> Verdict:
    claim = "Non-linear head > linear > none on h, and h > z (Section 4.2)"
    heads = _cells_by(runs, "model.head")
    comparisons = []
    for better, worse in (("mlp", "linear"), ("linear", "none")):
        if better in heads and worse in heads:
            comparisons.append(_compare(runs, heads[better][0], heads[worse][0]))
    if "mlp" in heads:
        mlp = runs[runs["cell"] == heads["mlp"][0]].dropna(subset=["probe_h", "probe_z"])
        if len(mlp):
            differences = (mlp["probe_h"] - mlp["probe_z"]).set_axis(mlp["seed"]).sort_index()
            comparisons.append(compare(differences, f"{heads['mlp'][0]} (h)", f"{heads['mlp'][0]} (z)"))
    return _judge("head_order", claim, [c for c in comparisons if c])


def temperature_half_best(runs: pd.DataFrame) -> Verdict:
    claim = "tau = 0.5 is best at every batch size (Appendix B.9, CIFAR-10)"
    comparisons = []
    for _, group in runs.groupby("train.batch_size", sort=True):
        by_tau = _cells_by(group, "train.temperature")
        if 0.5 not in by_tau:
            continue
        for tau, cells in by_tau.items():
            if tau != 0.5:
                comparisons.append(_compare(group, by_tau[0.5][0], cells[0]))
    return _judge("temperature_half_best", claim, [c for c in comparisons if c])


def crop_color_lead_grows(runs: pd.DataFrame) -> Verdict:
    claim = "crop->color's lead over crop->sobel grows with training and is above zero at the longest budget (Figure 5)"
    rule = "crop_color_lead_grows"
    cells = runs.drop_duplicates("cell")
    by = {(first, second, epochs): cell for cell, first, second, epochs
          in zip(cells["cell"], cells["first"], cells["second"], cells["train.epochs"])}
    budgets = sorted({epochs for (first, second, epochs) in by if (first, second) in (("crop", "color"), ("crop", "sobel"))})
    if len(budgets) < 2 or any(("crop", op, e) not in by for op in ("color", "sobel") for e in (budgets[0], budgets[-1])):
        return Verdict(rule, claim, "undecided", [], "needs crop->color and crop->sobel at two training lengths or more")
    short, long = budgets[0], budgets[-1]
    lead_long = _compare(runs, by[("crop", "color", long)], by[("crop", "sobel", long)])
    lead_short = paired_differences(runs, by[("crop", "color", short)], by[("crop", "sobel", short)], config="cell")
    lead_at_long = paired_differences(runs, by[("crop", "color", long)], by[("crop", "sobel", long)], config="cell")
    shared = lead_at_long.index.intersection(lead_short.index)
    growth = compare(lead_at_long[shared] - lead_short[shared], f"lead at {long} epochs", f"lead at {short} epochs")
    return _judge(rule, claim, [c for c in (lead_long, growth if len(shared) else None) if c])


RULES: dict[str, Callable[[pd.DataFrame], Verdict]] = {
    "crop_color_best": crop_color_best,
    "color_strength_rises": color_strength_rises,
    "head_order": head_order,
    "temperature_half_best": temperature_half_best,
    "crop_color_lead_grows": crop_color_lead_grows,
}



def configurations_to_confirm(verdict: Verdict) -> list[str]:
    """The cells in the verdict's open comparisons, in order: each gets one more seed per round."""
    if verdict.status != "undecided":
        return []
    cells: list[str] = []
    for comparison in verdict.comparisons:
        if not comparison.decided:
            for name in (comparison.better, comparison.worse):
                cell = cell_of(name)
                if cell not in cells:
                    cells.append(cell)
    return cells


def cell_of(side: str) -> str:
    """The cell a comparison side names: `<cell> (h)` and `<cell> (z)` are one cell's two probes."""
    return side.removesuffix(" (h)").removesuffix(" (z)")
