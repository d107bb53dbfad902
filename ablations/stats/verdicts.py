"""Verdict rules: each study's claim from the paper, in named parts, judged on the whole study.

A rule is chosen in the study file (`verdict: <rule>`) before the study runs, and is a pure function of
the study's finished runs (one row per run: `cell`, `seed`, `probe_h`, `probe_z` and the varied keys'
columns; pairs as `first`, `second`). It names the claim's parts, each a set of contrasts with the
paper's value for each (`ablations.stats.reference`), and the regime the paper made the claim for. The
contrasts are judged together as one family by `ablations.stats.inference` (block model over the study's cells
and seeds with moderated cell variances, simultaneous 95 % intervals, no decision on fewer than 3 seeds). A part holds when all its contrasts are decided in the claim's direction, does not hold when
one is decided against it, and is undecided otherwise. The verdict says one of:
- holds: every part holds;
- holds in part: some parts hold, others do not or are open (the sentence names which);
- does not hold: no part holds and some part is decided against;
- undecided: no part is decided either way;
- outside the claim's regime: the paper made the claim for a regime the study is not in (B.9's
  tau = 0.5 for training of 300 epochs and more); the parts are still measured and reported.

The rules (reference figures in shared/REFERENCE.md):
- crop_color_best (Figure 5): the better crop-with-colour cell (crop->color or color->crop) beats every
  cell without both; parts: the cells with crop but no colour, with colour but no crop, with neither.
- color_strength_rises (Table 1): each step up in colour strength raises accuracy; one part per step.
- head_order (Section 4.2): on h, mlp head > linear head, linear > none; for the mlp head, h > z.
- temperature_half_best (Appendix B.9, CIFAR-10 with training of 300 epochs or more): at every batch
  size, tau = 0.5 beats every other temperature; one part per batch size.
- crop_color_lead_grows (Figure 5 against training length): crop->color beats crop->sobel at the longest
  budget, and its lead there is larger than at the shortest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ablations.stats import reference
from ablations.stats.contrasts import Contrast, Term
from ablations.design.plan import cell_name

if TYPE_CHECKING:  # the statistics load when a verdict is decided, not when a study file names its rule
    import pandas as pd

    from ablations.stats.inference import Estimate
    from ablations.stats.model_checks import Checks

CROP_COLOR_CELLS = frozenset({("crop", "color"), ("color", "crop")})
STATUSES = ("holds", "holds in part", "does not hold", "undecided", "outside the claim's regime")


@dataclass(frozen=True)
class PartPlan:
    """A part of a claim as a rule states it, before judging."""

    name: str  # `mlp > linear`
    contrasts: list[Contrast]


@dataclass(frozen=True)
class Plan:
    """What a rule asks of a study's runs: its parts, or why it cannot ask."""

    claim: str
    parts: list[PartPlan] = field(default_factory=list)
    note: str = ""  # why the study cannot be judged by this rule, where it cannot
    regime: str = ""  # the regime the paper made the claim for, where it states one
    min_epochs: int | None = None  # the regime as a training length
    best_of: list[str] = field(default_factory=list)  # cells among which the claim names a best


@dataclass(frozen=True)
class Part:
    name: str
    status: str  # "holds" | "does not hold" | "undecided"
    estimates: list[Estimate]

    @property
    def open(self) -> list[Estimate]:
        return [e for e in self.estimates if not e.decided]


@dataclass(frozen=True)
class Verdict:
    rule: str
    claim: str
    status: str  # one of STATUSES
    parts: list[Part] = field(default_factory=list)
    note: str = ""  # why it cannot be judged, where it cannot
    regime: str = ""  # the claim's regime against the study's, where the rule states one
    candidates: list[str] = field(default_factory=list)  # cells that could still be best (MCB), for "best" rules
    checks: Checks | None = None

    @property
    def estimates(self) -> list[Estimate]:
        return [e for part in self.parts for e in part.estimates]

    @property
    def sentence(self) -> str:
        """The verdict in one sentence, naming the parts that hold, fail and stay open."""
        if self.note:
            return f"{self.claim}: undecided ({self.note})."
        text = f"{self.claim}: {self.status}"
        groups = [(status, [p.name for p in self.parts if p.status == status])
                  for status in ("holds", "does not hold", "undecided")]
        named = "; ".join(f"{status}: {', '.join(names)}" for status, names in groups if names)
        if len(self.parts) > 1 or self.status == "outside the claim's regime":
            text += f" ({named})"
        if self.regime and self.status == "outside the claim's regime":
            text += f". {self.regime}"
        return text + "."


def decide(rule: str, runs: pd.DataFrame, epochs: int | None = None) -> Verdict:
    """The verdict of `rule` on the runs; `epochs`: the study's training length where the rule's claim has
    a regime (None: not known, the regime is not judged)."""
    from ablations.stats.block_model import fit_blocks
    from ablations.stats.inference import best_candidates, judge
    from ablations.stats.model_checks import check_model

    plan = RULES[rule].plan(runs)
    if plan.note or not plan.parts:
        return Verdict(rule, plan.claim, "undecided", note=plan.note or "no comparison has runs on both sides")
    model = fit_blocks(runs)
    contrasts = [c for part in plan.parts for c in part.contrasts]
    judged = iter(judge(runs, contrasts, model=model))
    parts = []
    for part in plan.parts:
        estimates = [next(judged) for _ in part.contrasts]
        if any(e.decision == "below" for e in estimates):
            status = "does not hold"
        elif all(e.decision == "above" for e in estimates):
            status = "holds"
        else:
            status = "undecided"
        parts.append(Part(part.name, status, estimates))
    statuses = [p.status for p in parts]
    regime, outside = "", False
    if plan.min_epochs is not None and epochs is not None:
        outside = epochs < plan.min_epochs
        regime = (f"The paper made this claim for {plan.regime}; this study trained for {epochs} epochs"
                  + (", outside it" if outside else ", inside it"))
    if outside:
        status = "outside the claim's regime"
    elif all(s == "holds" for s in statuses):
        status = "holds"
    elif "holds" in statuses:
        status = "holds in part"
    elif "does not hold" in statuses:
        status = "does not hold"
    else:
        status = "undecided"
    candidates = []
    if plan.best_of:
        candidates = best_candidates(runs, model) if len(model.cells) > 1 else list(model.cells)
    return Verdict(rule, plan.claim, status, parts, regime=regime, candidates=candidates, checks=check_model(model))


# --------------------------------------------------------------------------------------------------
# The rules: each defined once, where its function is, with everything the rest of the code reads of it


@dataclass(frozen=True)
class Rule:
    """A verdict rule: its name (what a study file's `verdict:` says), what a study must vary for the rule
    to have its comparisons ("pairs" for search.pairs, or dotted keys of the grid; checked when the study
    file is read), the rule in one sentence (the report prints it), and its function: the study's runs ->
    the claim's parts, their contrasts with the paper's values, and its regime."""

    name: str
    requires: tuple[str, ...]
    text: str
    plan: Callable[["pd.DataFrame"], Plan]


RULES: dict[str, Rule] = {}


def rule(name: str, requires: tuple[str, ...], text: str) -> Callable:
    """Registers the decorated function as the rule `name` (one place: adding a rule is this decorator on
    its function, a test and a line in reports/README.md)."""
    def register(function: Callable[["pd.DataFrame"], Plan]) -> Callable[["pd.DataFrame"], Plan]:
        if name in RULES:
            raise ValueError(f"verdict rule {name!r} is defined twice")
        RULES[name] = Rule(name, tuple(requires), text, function)
        return function
    return register


def _mean(runs: pd.DataFrame, cell: str) -> float:
    return float(runs.loc[runs["cell"] == cell, "probe_h"].mean())


def _cells_by(runs: pd.DataFrame, column: str) -> dict:
    """value of `column` -> the cell ids that have it (several where other keys vary too)."""
    return {value: sorted(group["cell"].unique()) for value, group in runs.groupby(column, sort=True)}


def _points(value: float | None) -> float | None:
    """A margin in percentage points as an accuracy difference (0.103 for 10.3 points)."""
    return None if value is None else value / 100


def _pair_contrast(better: str, worse: str, margin_points: float | None = None, margin_kind: str = "value") -> Contrast:
    return Contrast.pair(better, worse, f"{cell_name(better)} − {cell_name(worse)}", _points(margin_points),
                         margin_kind=margin_kind)


@rule("crop_color_best", ("pairs",),
      "the better of crop+color and color+crop against every cell without both, in three parts "
      "(cells with crop but no colour, with colour but no crop, with neither); a part holds when every contrast "
      "in it is decided above 0, does not hold when one is decided below")
def crop_color_best(runs: pd.DataFrame) -> Plan:
    claim = "Crop with colour (either order) beats every pair without both (Figure 5)"
    if not {"first", "second"} <= set(runs.columns):
        return Plan(claim, note="the study has no pair cells")
    cells = runs.drop_duplicates("cell")
    pair_of = {cell: (first, second) for cell, first, second in zip(cells["cell"], cells["first"], cells["second"])}
    crop_color = [cell for cell, pair in pair_of.items() if pair in CROP_COLOR_CELLS]
    if not crop_color:
        return Plan(claim, note="the study has no crop-with-colour cell")
    best = max(crop_color, key=lambda cell: _mean(runs, cell))
    best_paper = reference.FIGURE5["crop" if pair_of[best][0] == "crop" else "color"][pair_of[best][1]]

    def paper(cell: str) -> float | None:
        first, second = pair_of[cell]
        row = reference.FIGURE5.get(first, {})
        return None if second not in row else best_paper - row[second]

    groups = {"beats crop without colour": [], "beats colour without crop": [], "beats pairs of neither": []}
    for cell, pair in pair_of.items():
        if pair in CROP_COLOR_CELLS:
            continue
        key = ("beats crop without colour" if "crop" in pair else
               "beats colour without crop" if "color" in pair else "beats pairs of neither")
        groups[key].append(_pair_contrast(best, cell, paper(cell)))
    parts = [PartPlan(name, contrasts) for name, contrasts in groups.items() if contrasts]
    return Plan(claim, parts, best_of=list(pair_of))


@rule("color_strength_rises", ("augment.color_strength",),
      "each step up in colour strength, one part per step; a step holds when decided above 0, does not "
      "hold when decided below")
def color_strength_rises(runs: pd.DataFrame) -> Plan:
    claim = "Accuracy rises with colour strength (Table 1)"
    if "augment.color_strength" not in runs.columns:
        return Plan(claim, note="the study does not vary augment.color_strength")
    strengths = sorted(_cells_by(runs, "augment.color_strength").items())
    if len(strengths) < 2:
        return Plan(claim, note="fewer than two strengths")
    parts = []
    for (low, low_cells), (high, high_cells) in zip(strengths, strengths[1:]):
        paper = (reference.TABLE1_SIMCLR[high] - reference.TABLE1_SIMCLR[low]
                 if low in reference.TABLE1_SIMCLR and high in reference.TABLE1_SIMCLR else None)
        name = f"s = {reference.strength_label(high)} > s = {reference.strength_label(low)}"
        parts.append(PartPlan(name, [_pair_contrast(high_cells[0], low_cells[0], paper)]))
    return Plan(claim, parts)


@rule("head_order", ("model.head",),
      "on h, mlp head > linear head and linear head > no head, and for the mlp head h > z, one part each")
def head_order(runs: pd.DataFrame) -> Plan:
    claim = "Non-linear head > linear > none on h, and h > z (Section 4.2)"
    if "model.head" not in runs.columns:
        return Plan(claim, note="the study does not vary model.head")
    heads = _cells_by(runs, "model.head")
    parts = []
    # Section 4.2 gives the nonlinear head about 3 points over the linear one and more than 10 over none:
    # the first is a value, the second (and so linear over none, more than about 7) a bound.
    margins = {("mlp", "linear"): (reference.HEAD_NONLINEAR_OVER_LINEAR, "value"),
               ("linear", "none"): (reference.HEAD_NONLINEAR_OVER_NONE - reference.HEAD_NONLINEAR_OVER_LINEAR,
                                    "at least")}
    for (better, worse), (margin, kind) in margins.items():
        if better in heads and worse in heads:
            parts.append(PartPlan(f"{better} > {worse}",
                                  [_pair_contrast(heads[better][0], heads[worse][0], margin, kind)]))
    if "mlp" in heads and runs.loc[runs["cell"] == heads["mlp"][0], "probe_z"].notna().any():
        cell = heads["mlp"][0]
        contrast = Contrast(f"{cell_name(cell)}: h − z", (Term(cell, 1.0, "probe_h"), Term(cell, -1.0, "probe_z")),
                            _points(reference.HEAD_H_OVER_Z), f"{cell} (h)", f"{cell} (z)", "at least")
        parts.append(PartPlan("h > z (mlp head)", [contrast]))
    return Plan(claim, parts)


@rule("temperature_half_best", ("train.temperature", "train.batch_size"),
      "τ = 0.5 against every other temperature, one part per batch size; the paper made the claim for "
      "training of 300 epochs and more (Appendix B.9)")
def temperature_half_best(runs: pd.DataFrame) -> Plan:
    claim = "tau = 0.5 is best at every batch size (Appendix B.9, CIFAR-10)"
    if not {"train.temperature", "train.batch_size"} <= set(runs.columns):
        return Plan(claim, note="the study does not vary train.temperature and train.batch_size")
    parts = []
    for batch_size, group in runs.groupby("train.batch_size", sort=True):
        by_tau = _cells_by(group, "train.temperature")
        if 0.5 not in by_tau:
            continue
        contrasts = [_pair_contrast(by_tau[0.5][0], cells[0]) for tau, cells in by_tau.items() if tau != 0.5]
        if contrasts:
            parts.append(PartPlan(f"τ = 0.5 best at batch {int(batch_size)}", contrasts))
    return Plan(claim, parts, regime=f"CIFAR-10 trained for {reference.B9_MIN_EPOCHS} epochs or more (Appendix B.9)",
                min_epochs=reference.B9_MIN_EPOCHS)


@rule("crop_color_lead_grows", ("pairs", "train.epochs"),
      "crop+color − crop+sobel at the longest budget above 0, and that lead minus the same lead at the "
      "shortest budget above 0, one part each")
def crop_color_lead_grows(runs: pd.DataFrame) -> Plan:
    claim = ("crop+color's lead over crop+sobel grows with training and is above zero at the longest budget "
             "(Figure 5 against training length)")
    if not {"first", "second", "train.epochs"} <= set(runs.columns):
        return Plan(claim, note="needs pair cells at several train.epochs")
    by = {(first, second, epochs): cell for ((first, second), epochs), cell in pair_cells_by_epochs(runs).items()}
    budgets = sorted({e for (first, second, e) in by if (first, second) in (("crop", "color"), ("crop", "sobel"))})
    if len(budgets) < 2 or any(("crop", op, e) not in by for op in ("color", "sobel") for e in (budgets[0], budgets[-1])):
        return Plan(claim, note="needs crop+color and crop+sobel at two training lengths or more")
    short, long = budgets[0], budgets[-1]
    color_long, sobel_long = by[("crop", "color", long)], by[("crop", "sobel", long)]
    color_short, sobel_short = by[("crop", "color", short)], by[("crop", "sobel", short)]
    paper_gap = reference.FIGURE5["crop"]["color"] - reference.FIGURE5["crop"]["sobel"]
    lead = _pair_contrast(color_long, sobel_long, paper_gap)
    growth = Contrast(f"lead at {long} epochs − lead at {short} epochs",
                      (Term(color_long, 1.0), Term(sobel_long, -1.0), Term(color_short, -1.0), Term(sobel_short, 1.0)),
                      None, f"lead at {long} epochs", f"lead at {short} epochs")
    return Plan(claim, [PartPlan(f"lead above zero at {long} epochs", [lead]),
                        PartPlan(f"lead grows from {short} to {long} epochs", [growth])])


def pair_cells_by_epochs(runs: pd.DataFrame) -> dict[tuple[tuple[str, str], int], str]:
    """((first, second), epochs) -> cell of a pair study that varies train.epochs (its first run's cell
    where two share them); empty for any other study."""
    if not {"cell", "first", "second", "train.epochs"} <= set(runs.columns):
        return {}
    cells = runs.drop_duplicates("cell")
    return {((first, second), int(epochs)): cell for cell, first, second, epochs
            in zip(cells["cell"], cells["first"], cells["second"], cells["train.epochs"])}


def cell_of(side: str) -> str:
    """The cell a comparison side names: `<cell> (h)` and `<cell> (z)` are one cell's two probes."""
    return side.removesuffix(" (h)").removesuffix(" (z)")
