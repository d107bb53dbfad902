"""ablations.inference: the block model, the guards and the simultaneous intervals, against values worked
by hand, scipy's Dunnett test, a Monte Carlo reference for the max-t quantile, and small tables built to
trip each guard (a noisy cell, a noisy pair, a pair steadier than the pool, n = 2)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ablations import inference as inf
from ablations import model_checks


def table(values: dict[str, list[float]], seeds=None) -> pd.DataFrame:
    """cell -> its probe_h on seeds 0, 1, ... as a runs table."""
    rows = []
    for cell, series in values.items():
        for seed, value in zip(seeds or range(len(series)), series):
            rows.append({"cell": cell, "seed": seed, "probe_h": value})
    return pd.DataFrame(rows)


def test_one_contrast_of_two_cells_is_the_paired_t_test_by_hand():
    # Differences a - b on three seeds: 0.18, 0.21, 0.20; mean 0.19667, SD 0.015275, SE SD / sqrt 3 =
    # 0.0088192. With two cells the block model's residual variance is SD^2 / 2 on 2 degrees of freedom,
    # so the contrast's SE is the paired one; one contrast: t(0.975, 2) = 4.3027, interval
    # 0.19667 -+ 0.037946 = [0.15872, 0.23461].
    runs = table({"a": [0.60, 0.62, 0.61], "b": [0.42, 0.41, 0.41]})
    model = inf.fit_blocks(runs)
    assert model.df == 2 and model.sigma == pytest.approx(0.015275 / math.sqrt(2), rel=1e-4)
    (e,) = inf.judge(runs, [inf.Contrast.pair("a", "b", "a - b")], model=model)
    assert e.basis == "pooled" and e.n == 3 and e.df == pytest.approx(2)
    assert e.estimate == pytest.approx(0.196667, abs=1e-6) and e.se == pytest.approx(0.0088192, rel=1e-4)
    assert (e.low, e.high) == pytest.approx((0.15872, 0.23461), abs=1e-5)
    assert e.critical == pytest.approx(4.302653, rel=1e-6) and e.decision == "above"
    assert e.p_improvement == 1.0 and list(e.per_seed.round(4)) == [0.18, 0.21, 0.20]


def test_many_to_one_without_blocks_matches_scipy_dunnett():
    rng = np.random.default_rng(0)
    samples = {cell: rng.normal(mu, 1.0, 6) for cell, mu in zip("abcd", (0.0, 0.5, 1.5, 3.0))}
    runs = pd.DataFrame([{"cell": c, "probe_h": v} for c, values in samples.items() for v in values])
    judged = inf.judge(runs, [inf.Contrast.pair(c, "a", f"{c} - a") for c in "bcd"],
                       model=inf.fit_blocks(runs, block=None))
    reference = stats.dunnett(samples["b"], samples["c"], samples["d"], control=samples["a"])
    interval = reference.confidence_interval()
    for e, p, low, high in zip(judged, reference.pvalue, interval.low, interval.high):
        assert e.basis == "pooled"
        assert e.p_adjusted == pytest.approx(p, abs=2e-3)  # both integrate the multivariate t by QMC
        assert (e.low, e.high) == pytest.approx((low, high), abs=2e-3)
    assert [e.decision for e in judged] == ["undecided", "undecided", "above"]


def test_block_model_by_hand_and_the_max_t_quantile_by_simulation():
    # 3 cells x 4 seeds, balanced. By hand: the two-way decomposition; residual df (3-1)(4-1) = 6;
    # each cell-vs-control contrast has SE sigma sqrt(2/4), the two correlate 0.5.
    values = {"control": [0.50, 0.53, 0.49, 0.52], "x": [0.55, 0.57, 0.55, 0.58], "y": [0.51, 0.55, 0.50, 0.52]}
    runs = table(values)
    grid = np.array(list(values.values()))
    residual = grid - grid.mean(1, keepdims=True) - grid.mean(0, keepdims=True) + grid.mean()
    sigma = math.sqrt((residual ** 2).sum() / 6)
    model = inf.fit_blocks(runs)
    assert model.df == 6 and model.sigma == pytest.approx(sigma)
    contrasts = [inf.Contrast.pair(c, "control", f"{c} - control") for c in ("x", "y")]
    judged = inf.judge(runs, contrasts, model=model)
    for e, cell in zip(judged, ("x", "y")):
        assert e.estimate == pytest.approx(grid[list(values).index(cell)].mean() - grid[0].mean())
        assert e.se == pytest.approx(sigma * math.sqrt(2 / 4))
    # The max-t quantile, against a simulation of max(|T1|, |T2|) for a bivariate t with correlation 0.5.
    rng = np.random.default_rng(1)
    z = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], size=400_000)
    t = z / np.sqrt(rng.chisquare(6, size=(400_000, 1)) / 6)
    simulated = float(np.quantile(np.abs(t).max(axis=1), 0.95))
    assert judged[0].critical == pytest.approx(simulated, abs=0.02)
    assert judged[0].critical > stats.t.ppf(0.975, 6)  # wider than one contrast alone


def test_max_t_quantile_is_students_for_one_contrast_and_bonferronis_for_dependent_ones():
    assert inf.max_t_critical(np.eye(1), 5) == pytest.approx(stats.t.ppf(0.975, 5))
    singular = np.array([[1.0, 1.0], [1.0, 1.0]])
    assert inf.max_t_critical(singular, 5) == pytest.approx(stats.t.ppf(1 - 0.05 / 4, 5))


def test_fewer_than_three_seeds_decide_nothing_whatever_the_p():
    runs = table({"a": [0.70, 0.71], "b": [0.40, 0.40], "c": [0.41, 0.42]})
    judged = inf.judge(runs, [inf.Contrast.pair("a", "b", "a - b"), inf.Contrast.pair("a", "c", "a - c")])
    assert [e.decision for e in judged] == ["too few seeds", "too few seeds"]
    assert all(e.n == 2 and e.estimate > 0.25 for e in judged)


def noisy_cell_study() -> pd.DataFrame:
    """Five quiet cells (SD about 0.3 points over seeds) and one whose runs swing by 3 points."""
    rng = np.random.default_rng(7)
    values = {f"c{i}": list(0.45 + 0.01 * i + rng.normal(0, 0.003, 4)) for i in range(5)}
    values["wild"] = [0.53, 0.47, 0.52, 0.46]
    return table(values)


def test_a_noisy_cell_keeps_its_own_variance_in_its_contrasts():
    runs = noisy_cell_study()
    model = inf.fit_blocks(runs)
    assert list(model.noisy_cells) == ["wild"]
    (e,) = inf.judge(runs, [inf.Contrast.pair("wild", "c0", "wild - c0")], model=model)
    own, pool = model.cell_variance["wild"], model.sigma ** 2
    # SE^2 = s_wild^2 / 4 + sigma^2 / 4; Welch-Satterthwaite df from (3, model df).
    assert e.se == pytest.approx(math.sqrt(own / 4 + pool / 4))
    df = (own / 4 + pool / 4) ** 2 / ((own / 4) ** 2 / 3 + (pool / 4) ** 2 / model.df)
    assert e.df == pytest.approx(df)
    # The pool alone would have claimed a narrower interval.
    assert e.se > math.sqrt(2 * pool / 4)
    # A contrast of quiet cells keeps the pool.
    (quiet,) = inf.judge(runs, [inf.Contrast.pair("c4", "c0", "c4 - c0")], model=model)
    assert quiet.df == model.df and quiet.decision == "above"


def test_a_pair_noisier_than_the_model_says_is_judged_on_its_own_values():
    # Ten cells share their seed effects; p and q also carry a seed-to-seed wobble of their own, in
    # opposite directions. Each cell on its own stays within the pool (no cell guard), but p - q swings
    # from seed to seed far more than the pool implies: the pair guard sends it to its own values.
    rng = np.random.default_rng(11)
    shared = np.array([0.00, 0.02, -0.02, 0.01, -0.01])
    wobble = 0.75 * np.array([0.004, -0.003, 0.002, -0.004, 0.001])
    values = {f"c{i}": list(0.45 + 0.005 * i + shared + rng.normal(0, 0.002, 5)) for i in range(8)}
    values["p"], values["q"] = list(0.50 + shared + wobble), list(0.49 + shared - wobble)
    runs = table(values)
    model = inf.fit_blocks(runs)
    assert model.noisy_cells == {}
    (e,) = inf.judge(runs, [inf.Contrast.pair("p", "q", "p - q")], model=model)
    assert e.basis == "own" and e.noisy_p < 0.05 and e.own_sd > e.implied_sd
    values_seen = e.per_seed.to_numpy()
    assert values_seen == pytest.approx(0.01 + 2 * wobble)
    assert e.estimate == pytest.approx(values_seen.mean()) and e.df == len(values_seen) - 1
    assert e.se == pytest.approx(values_seen.std(ddof=1) / math.sqrt(len(values_seen)))


def test_a_pair_steadier_than_the_pool_is_judged_on_its_own_values():
    # mlp and linear heads trained on the same views: their difference is the same on every seed, while
    # "none" wanders; the pool would hide how well the pair is measured.
    seeds = [0.00, 0.03, -0.02, 0.01]
    runs = table({"mlp": [0.550 + s for s in seeds], "linear": [0.557 + s + 0.0003 * k for k, s in enumerate(seeds)],
                  "none": [0.48, 0.47, 0.50, 0.46]})
    judged = inf.judge(runs, [inf.Contrast.pair("mlp", "linear", "mlp - linear"),
                              inf.Contrast.pair("linear", "none", "linear - none")])
    steady = judged[0]
    assert steady.basis == "own" and steady.own_sd < steady.implied_sd and steady.decision == "below"
    assert steady.estimate == pytest.approx(-0.00745, abs=1e-5)


def test_a_contrast_of_two_metrics_of_one_cell_has_no_pool():
    runs = table({"mlp": [0.55, 0.56, 0.54]}).assign(probe_z=[0.50, 0.51, 0.50])
    contrast = inf.Contrast("h - z", (inf.Term("mlp", 1.0, "probe_h"), inf.Term("mlp", -1.0, "probe_z")))
    (e,) = inf.judge(runs, [contrast])
    assert e.basis == "own" and e.estimate == pytest.approx(0.0466667, abs=1e-6) and e.decision == "above"


def test_the_best_is_found_among_the_cells_that_could_be_best():
    clear = table({"a": [0.60, 0.61, 0.60], "b": [0.50, 0.52, 0.51], "c": [0.45, 0.46, 0.44]})
    assert inf.best_candidates(clear, inf.fit_blocks(clear)) == ["a"]
    tie = table({"a": [0.600, 0.610, 0.601], "b": [0.601, 0.611, 0.600], "c": [0.45, 0.46, 0.44]})
    assert sorted(inf.best_candidates(tie, inf.fit_blocks(tie))) == ["a", "b"]


def test_checks_equal_variance_against_scipy_and_nonadditivity():
    runs = noisy_cell_study()
    model = inf.fit_blocks(runs)
    checks = model_checks.check_model(model)
    groups = [g["residual"].to_numpy() for _, g in model.data.groupby("cell", sort=False)]
    assert checks.bartlett_p == pytest.approx(stats.bartlett(*groups).pvalue)
    assert checks.levene_p == pytest.approx(stats.levene(*groups, center="median").pvalue)
    assert not checks.equal_variance and checks.noisy_cells.keys() == {"wild"}
    # Multiplicative: every cell scales the seed's effect by its own level; Tukey's test sees it.
    seeds = np.array([0.9, 1.0, 1.1, 1.2, 0.8])
    multiplicative = table({f"c{i}": list(level * seeds) for i, level in enumerate((0.3, 0.4, 0.5, 0.6))})
    assert model_checks.check_model(inf.fit_blocks(multiplicative)).tukey_p < 0.01
    rng = np.random.default_rng(3)
    additive = table({f"c{i}": list(0.1 * i + 0.05 * seeds + rng.normal(0, 0.01, 5)) for i in range(4)})
    assert model_checks.check_model(inf.fit_blocks(additive)).tukey_p > 0.05


def test_the_papers_value_against_the_interval():
    runs = table({"a": [0.52, 0.53, 0.515], "b": [0.51, 0.515, 0.52]})
    (e,) = inf.judge(runs, [inf.Contrast.pair("a", "b", "a - b", margin=0.103)])
    assert e.high < 0.103 and e.margin_relation == "excludes (below the paper)"
    (inside,) = inf.judge(runs, [inf.Contrast.pair("a", "b", "a - b", margin=0.005)])
    assert inside.margin_relation == "includes"
