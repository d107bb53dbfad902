"""ablations.stats.verdicts: each study's rule, in parts, on hand-made result tables; the vocabulary (holds,
holds in part, does not hold, undecided, outside the claim's regime) and the paper's values."""

import itertools

import pandas as pd
import pytest

from ablations.stats.verdicts import RULES, STATUSES, decide

# Seed effects shared by every cell (common random numbers) and a small per-run wobble: paired
# differences are then nearly constant, as they should be when a gap is real.
SEED_EFFECT = {0: 0.00, 1: 0.03, 2: -0.02, 3: 0.01, 4: -0.01}
WOBBLE = {0: 0.001, 1: -0.002, 2: 0.0015, 3: -0.0005, 4: 0.0008}


def runs_of(cells: dict[str, dict], means: dict[str, float], seeds=(0, 1, 2, 3), z_gap: float = 0.1) -> pd.DataFrame:
    rows = []
    for index, (cell, columns) in enumerate(cells.items()):
        for seed in seeds:
            value = means[cell] + SEED_EFFECT[seed] + WOBBLE[seed] * ((index % 3) - 1)
            rows.append({"cell": cell, "seed": seed, "probe_h": value, "probe_z": value - z_gap, **columns})
    return pd.DataFrame(rows)


OPS = ["crop", "color", "sobel", "noise"]
PAIR_CELLS = {f"augment.pipeline={a}+{b}" if a != b else f"augment.pipeline={a}": {"first": a, "second": b}
              for a, b in itertools.product(OPS, OPS)}


def pair_means(**changes) -> dict[str, float]:
    means = {cell: 0.45 for cell in PAIR_CELLS}
    means["augment.pipeline=crop+color"] = 0.55
    means["augment.pipeline=color+crop"] = 0.54
    means.update({f"augment.pipeline={k.replace('_', '+')}": v for k, v in changes.items()})
    return means


def test_crop_color_best_holds_in_three_parts_with_the_papers_margins():
    verdict = decide("crop_color_best", runs_of(PAIR_CELLS, pair_means()))
    assert verdict.status == "holds" and verdict.status in STATUSES
    assert [p.name for p in verdict.parts] == ["beats crop without colour", "beats colour without crop",
                                              "beats pairs of neither"]
    # 16 cells less the two crop-with-colour ones: crop with sobel or noise (5), colour with them (5), neither (4).
    assert [len(p.estimates) for p in verdict.parts] == [5, 5, 4]
    assert {e.contrast.better for e in verdict.estimates} == {"augment.pipeline=crop+color"}
    by_cell = {e.contrast.worse: e for e in verdict.estimates}
    # The paper's Figure 5: crop->color 56.3 against crop->sobel 46.0 and color 18.8.
    assert by_cell["augment.pipeline=crop+sobel"].contrast.margin == pytest.approx(0.103)
    assert by_cell["augment.pipeline=color"].contrast.margin == pytest.approx(0.375)
    assert verdict.candidates == ["augment.pipeline=crop+color"]


def test_crop_color_best_holds_in_part_when_one_part_ties():
    verdict = decide("crop_color_best", runs_of(PAIR_CELLS, pair_means(crop_sobel=0.5503)))
    assert verdict.status == "holds in part"
    assert [p.status for p in verdict.parts] == ["undecided", "holds", "holds"]
    assert [e.contrast.worse for e in verdict.parts[0].open] == ["augment.pipeline=crop+sobel"]
    assert "holds in part (holds: beats colour without crop, beats pairs of neither; undecided: beats crop " \
           "without colour)" in verdict.sentence
    assert "augment.pipeline=crop+sobel" in verdict.candidates


def test_crop_color_best_does_not_hold_when_its_parts_are_decided_against_or_open():
    # crop->sobel clearly better; the colour-without-crop and neither cells better too: no part holds.
    better = {k: 0.60 for k in ("color_sobel", "color_noise", "sobel_color", "noise_color", "color", "sobel",
                                "noise", "sobel_noise", "noise_sobel")}
    verdict = decide("crop_color_best", runs_of(PAIR_CELLS, pair_means(crop_sobel=0.65, **better)))
    assert [p.status for p in verdict.parts] == ["does not hold"] * 3
    assert verdict.status == "does not hold"
    # A tie where the rest holds: in part, not "does not hold".
    assert decide("crop_color_best", runs_of(PAIR_CELLS, pair_means(crop_sobel=0.65))).status == "holds in part"


def test_two_seeds_decide_nothing():
    verdict = decide("crop_color_best", runs_of(PAIR_CELLS, pair_means(), seeds=(0, 1)))
    assert verdict.status == "undecided"
    assert {e.decision for e in verdict.estimates} == {"too few seeds"}


STRENGTHS = {f"augment.color_strength={s}": {"augment.color_strength": s} for s in (0.125, 0.25, 0.5, 1.0)}


@pytest.mark.parametrize("means, status, parts", [
    ((0.40, 0.42, 0.44, 0.46), "holds", ["holds"] * 3),
    ((0.46, 0.44, 0.42, 0.40), "does not hold", ["does not hold"] * 3),
    # The shape of the committed study: rises to 1/2, falls at 1.
    ((0.40, 0.42, 0.44, 0.39), "holds in part", ["holds", "holds", "does not hold"]),
    ((0.40, 0.4005, 0.3995, 0.4002), "undecided", ["undecided"] * 3),
])
def test_color_strength_rises_step_by_step(means, status, parts):
    verdict = decide("color_strength_rises", runs_of(STRENGTHS, dict(zip(STRENGTHS, means))))
    assert verdict.status == status and [p.status for p in verdict.parts] == parts
    assert [p.name for p in verdict.parts] == ["s = 1/4 > s = 1/8", "s = 1/2 > s = 1/4", "s = 1 > s = 1/2"]
    # Table 1: 59.6, 61.0, 62.6, 63.2.
    assert [e.contrast.margin for e in verdict.estimates] == pytest.approx([0.014, 0.016, 0.006])


HEADS = {f"model.head={h}": {"model.head": h} for h in ("none", "linear", "mlp")}


def test_head_order_in_three_parts_with_h_against_z_on_its_own_values():
    means = {"model.head=none": 0.40, "model.head=linear": 0.44, "model.head=mlp": 0.47}
    verdict = decide("head_order", runs_of(HEADS, means))
    assert verdict.status == "holds"
    assert [p.name for p in verdict.parts] == ["mlp > linear", "linear > none", "h > z (mlp head)"]
    h_z = verdict.parts[2].estimates[0]
    assert h_z.basis == "own" and h_z.estimate == pytest.approx(0.1)
    assert [e.contrast.margin for e in verdict.estimates] == pytest.approx([0.03, 0.07, 0.10])
    # "About 3 points" is a value; "more than 10" (and so linear over none, more than about 7) are bounds.
    assert [e.contrast.margin_kind for e in verdict.estimates] == ["value", "at least", "at least"]
    # The committed study's shape: mlp a little below linear, the rest as the paper says.
    below = decide("head_order", runs_of(HEADS, {**means, "model.head=mlp": 0.43}))
    assert below.status == "holds in part" and [p.status for p in below.parts] == ["does not hold", "holds", "holds"]


TEMPERATURES = {f"temperature={t} batch_size={b}": {"train.temperature": t, "train.batch_size": b}
                for t in (0.1, 0.5, 1.0) for b in (128, 256)}


def test_temperature_half_best_is_outside_its_regime_at_short_training():
    means = {cell: 0.45 - abs(columns["train.temperature"] - 0.5) / 10 for cell, columns in TEMPERATURES.items()}
    runs = runs_of(TEMPERATURES, means)
    assert decide("temperature_half_best", runs).status == "holds"  # the regime not known: judged by its parts
    long = decide("temperature_half_best", runs, epochs=400)
    assert long.status == "holds" and "inside it" in long.regime
    short = decide("temperature_half_best", runs, epochs=6)
    assert short.status == "outside the claim's regime"
    assert [p.status for p in short.parts] == ["holds", "holds"]  # measured and reported all the same
    assert "300 epochs or more" in short.sentence and "6 epochs, outside it" in short.sentence
    means["temperature=0.1 batch_size=256"] = 0.50
    assert [p.status for p in decide("temperature_half_best", runs_of(TEMPERATURES, means)).parts] == [
        "holds", "does not hold"]


LENGTH_CELLS = {f"augment.pipeline={pipe} train.epochs={e}": {"first": "crop", "second": second, "train.epochs": e}
                for pipe, second in (("crop+color", "color"), ("crop+sobel", "sobel"), ("crop", "crop"))
                for e in (6, 12, 24)}


def length_means(gaps: dict[int, float]) -> dict[str, float]:
    means = {}
    for e, gap in gaps.items():
        means[f"augment.pipeline=crop+color train.epochs={e}"] = 0.52 + 0.01 * e / 6
        means[f"augment.pipeline=crop+sobel train.epochs={e}"] = 0.52 + 0.01 * e / 6 - gap
        means[f"augment.pipeline=crop train.epochs={e}"] = 0.42
    return means


def test_crop_color_lead_grows_with_training():
    opening = decide("crop_color_lead_grows", runs_of(LENGTH_CELLS, length_means({6: 0.01, 12: 0.03, 24: 0.06})))
    assert opening.status == "holds"
    assert [p.name for p in opening.parts] == ["lead above zero at 24 epochs", "lead grows from 6 to 24 epochs"]
    lead, growth = opening.estimates
    assert lead.estimate == pytest.approx(0.06, abs=1e-9) and lead.contrast.margin == pytest.approx(0.103)
    assert growth.estimate == pytest.approx(0.05, abs=1e-9) and growth.contrast.margin is None
    flat = decide("crop_color_lead_grows", runs_of(LENGTH_CELLS, length_means({6: 0.02, 12: 0.02, 24: 0.02})))
    assert flat.status == "holds in part" and [p.status for p in flat.parts] == ["holds", "undecided"]
    closing = decide("crop_color_lead_grows", runs_of(LENGTH_CELLS, length_means({6: 0.03, 12: 0.0, 24: -0.03})))
    assert closing.status == "does not hold"
