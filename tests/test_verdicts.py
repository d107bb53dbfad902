"""ablations.verdicts: each study's rule on hand-made result tables."""

import itertools

import pandas as pd
import pytest

from ablations.verdicts import RULES, configurations_to_confirm

# Seed effects shared by every cell (common random numbers) and a small per-run wobble: paired
# differences are then nearly constant, as they should be when a gap is real.
SEED_EFFECT = {0: 0.00, 1: 0.03, 2: -0.02, 3: 0.01}
WOBBLE = {0: 0.001, 1: -0.002, 2: 0.0015, 3: -0.0005}


def runs_of(cells: dict[str, dict], means: dict[str, float], seeds=(0, 1, 2, 3), z_gap: float = 0.1) -> pd.DataFrame:
    rows = []
    for index, (cell, columns) in enumerate(cells.items()):
        for seed in seeds:
            value = means[cell] + SEED_EFFECT[seed] + WOBBLE[seed] * (1 + index)
            rows.append({"cell": cell, "seed": seed, "probe_h": value, "probe_z": value - z_gap, **columns})
    return pd.DataFrame(rows)


OPS = ["crop", "color", "sobel"]
PAIR_CELLS = {f"augment.pipeline={a}+{b}" if a != b else f"augment.pipeline={a}": {"first": a, "second": b}
              for a, b in itertools.product(OPS, OPS)}


def pair_means(**changes) -> dict[str, float]:
    means = {cell: 0.45 for cell in PAIR_CELLS}
    means["augment.pipeline=crop+color"] = 0.55
    means["augment.pipeline=color+crop"] = 0.54
    means.update({f"augment.pipeline={k.replace('_', '+')}": v for k, v in changes.items()})
    return means


def test_crop_color_best_holds_when_it_beats_every_other_cell():
    verdict = RULES["crop_color_best"](runs_of(PAIR_CELLS, pair_means()))
    assert verdict.status == "holds"
    assert len(verdict.comparisons) == 7  # 9 cells less the two crop-with-colour ones
    assert {c.better for c in verdict.comparisons} == {"augment.pipeline=crop+color"}
    assert all(c.decision == "above" for c in verdict.comparisons)
    assert configurations_to_confirm(verdict) == []


def test_crop_color_best_is_undecided_on_a_tie_and_names_the_cells_to_confirm():
    verdict = RULES["crop_color_best"](runs_of(PAIR_CELLS, pair_means(crop_sobel=0.5505)))
    assert verdict.status == "undecided"
    open_ = [c for c in verdict.comparisons if not c.decided]
    assert [c.worse for c in open_] == ["augment.pipeline=crop+sobel"]
    assert configurations_to_confirm(verdict) == ["augment.pipeline=crop+color", "augment.pipeline=crop+sobel"]
    assert "undecided" in verdict.sentence


def test_crop_color_best_does_not_hold_when_another_cell_is_clearly_better():
    verdict = RULES["crop_color_best"](runs_of(PAIR_CELLS, pair_means(crop_sobel=0.65)))
    assert verdict.status == "does not hold"
    assert configurations_to_confirm(verdict) == []


def test_one_seed_leaves_every_comparison_undecided():
    verdict = RULES["crop_color_best"](runs_of(PAIR_CELLS, pair_means(), seeds=(0,)))
    assert verdict.status == "undecided" and verdict.seeds_needed is None
    # The better crop-with-colour cell and the seven it is compared with (color->crop is in none).
    assert len(configurations_to_confirm(verdict)) == 8


STRENGTHS = {f"augment.color_strength={s}": {"augment.color_strength": s} for s in (0.125, 0.25, 0.5, 1.0)}


@pytest.mark.parametrize("means, status", [
    ((0.40, 0.42, 0.44, 0.46), "holds"),
    ((0.40, 0.42, 0.42, 0.46), "holds"),  # a flat step is not decided worse
    ((0.46, 0.44, 0.42, 0.40), "does not hold"),
    ((0.40, 0.46, 0.44, 0.47), "does not hold"),  # a decided step down
    ((0.40, 0.4005, 0.3995, 0.4002), "undecided"),
])
def test_color_strength_rises(means, status):
    verdict = RULES["color_strength_rises"](runs_of(STRENGTHS, dict(zip(STRENGTHS, means))))
    assert verdict.status == status
    # The strongest against the weakest first, then each step up.
    assert [c.better for c in verdict.comparisons][0] == "augment.color_strength=1.0"
    assert len(verdict.comparisons) == 4


HEADS = {f"model.head={h}": {"model.head": h} for h in ("none", "linear", "mlp")}


def test_head_order_holds_and_compares_h_with_z():
    means = {"model.head=none": 0.40, "model.head=linear": 0.44, "model.head=mlp": 0.47}
    verdict = RULES["head_order"](runs_of(HEADS, means))
    assert verdict.status == "holds"
    assert [(c.better, c.worse) for c in verdict.comparisons] == [
        ("model.head=mlp", "model.head=linear"), ("model.head=linear", "model.head=none"),
        ("model.head=mlp (h)", "model.head=mlp (z)")]
    reversed_z = RULES["head_order"](runs_of(HEADS, means, z_gap=-0.1))
    assert reversed_z.status == "does not hold"
    assert reversed_z.comparisons[2].decision == "below"


TEMPERATURES = {f"temperature={t} batch_size={b}": {"train.temperature": t, "train.batch_size": b}
                for t in (0.1, 0.5, 1.0) for b in (128, 256)}


def test_temperature_half_best_at_every_batch_size():
    means = {cell: 0.45 - abs(columns["train.temperature"] - 0.5) / 10 for cell, columns in TEMPERATURES.items()}
    verdict = RULES["temperature_half_best"](runs_of(TEMPERATURES, means))
    assert verdict.status == "holds" and len(verdict.comparisons) == 4
    means["temperature=0.1 batch_size=256"] = 0.50
    assert RULES["temperature_half_best"](runs_of(TEMPERATURES, means)).status == "does not hold"
