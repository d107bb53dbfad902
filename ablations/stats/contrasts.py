"""What a verdict rule asks of a study: linear contrasts of its cells' means (crop->color - crop->sobel; a
difference of differences for "the gap grows"), each with the paper's value of the same contrast. Plain
data: a study file's rule is checked, and its contrasts named, without loading the statistics
(`ablations.stats.block_model` fits them, `ablations.stats.inference` judges them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    cell: str
    weight: float
    metric: str = "probe_h"


@dataclass(frozen=True)
class Contrast:
    """A linear combination of cell means the rule asks about, e.g. crop->color - crop->sobel."""

    name: str  # how tables name it: `crop+color − crop+sobel`
    terms: tuple[Term, ...]
    # The paper's value of the same contrast, in accuracy units (0.103); None: no figure. A bound the
    # paper states ("more than 10 points") has margin_kind "at least": an interval excludes it only
    # when it lies wholly below.
    margin: float | None = None
    better: str = ""  # for pairwise contrasts, the cell hoped to be larger (tables, confirmation)
    worse: str = ""
    margin_kind: str = "value"  # "value" | "at least"

    @classmethod
    def pair(cls, better: str, worse: str, name: str, margin: float | None = None, metric: str = "probe_h",
             margin_kind: str = "value") -> "Contrast":
        return cls(name, (Term(better, 1.0, metric), Term(worse, -1.0, metric)), margin, better, worse, margin_kind)

    @property
    def cells(self) -> list[str]:
        return list(dict.fromkeys(term.cell for term in self.terms))

    def cell_weights(self) -> dict[str, float]:
        """Each cell's total weight in the contrast (a cell may appear in several terms)."""
        weights: dict[str, float] = {}
        for term in self.terms:
            weights[term.cell] = weights.get(term.cell, 0.0) + term.weight
        return weights
