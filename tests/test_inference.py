"""ablations.stats.block_model and ablations.stats.inference: the block model, its moderated cell variances and the
simultaneous intervals, against values worked by hand, a literal transcription of limma's fitFDist,
scipy's Dunnett test, a Monte Carlo reference for the max-t quantile, and small tables built for each
case (a noisy cell, the shipped refit's unmarked cell, a noisy pair, the edge of the critical value, n = 2)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

from ablations.stats import block_model as bm
from ablations.stats.contrasts import Contrast, Term
from ablations.stats import inference as inf
from ablations.stats import model_checks


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
    model = bm.fit_blocks(runs)
    assert model.df == 2 and model.sigma == pytest.approx(0.015275 / math.sqrt(2), rel=1e-4)
    (e,) = inf.judge(runs, [Contrast.pair("a", "b", "a - b")], model=model)
    assert e.basis == "moderated" and e.n == 3 and e.df == pytest.approx(2)
    assert e.estimate == pytest.approx(0.196667, abs=1e-6) and e.se == pytest.approx(0.0088192, rel=1e-4)
    assert (e.low, e.high) == pytest.approx((0.15872, 0.23461), abs=1e-5)
    assert e.critical == pytest.approx(4.302653, rel=1e-6) and e.decision == "above"
    assert e.p_improvement == 1.0 and list(e.per_seed.round(4)) == [0.18, 0.21, 0.20]


def test_many_to_one_without_blocks_matches_scipy_dunnett():
    rng = np.random.default_rng(0)
    samples = {cell: rng.normal(mu, 1.0, 6) for cell, mu in zip("abcd", (0.0, 0.5, 1.5, 3.0))}
    runs = pd.DataFrame([{"cell": c, "probe_h": v} for c, values in samples.items() for v in values])
    judged = inf.judge(runs, [Contrast.pair(c, "a", f"{c} - a") for c in "bcd"],
                       model=bm.fit_blocks(runs, block=None, moderate=False))
    reference = stats.dunnett(samples["b"], samples["c"], samples["d"], control=samples["a"])
    interval = reference.confidence_interval()
    for e, p, low, high in zip(judged, reference.pvalue, interval.low, interval.high):
        assert e.basis == "moderated"
        assert e.p_adjusted == pytest.approx(p, abs=3e-3)  # both integrate the multivariate t numerically
        # scipy's interval lies within the one our draws' error allows (c's 99.9 % interval).
        assert e.estimate - e.critical_high * e.se - 1e-3 <= low <= e.estimate - e.critical_low * e.se + 1e-3
        assert e.estimate + e.critical_low * e.se - 1e-3 <= high <= e.estimate + e.critical_high * e.se + 1e-3
    assert [e.decision for e in judged] == ["undecided", "undecided", "above"]


def test_block_model_by_hand_and_the_max_t_quantile_by_simulation():
    # 3 cells x 4 seeds, balanced. By hand: the two-way decomposition; residual df (3-1)(4-1) = 6;
    # each cell-vs-control contrast has SE sigma sqrt(2/4), the two correlate 0.5.
    values = {"control": [0.50, 0.53, 0.49, 0.52], "x": [0.55, 0.57, 0.55, 0.58], "y": [0.51, 0.55, 0.50, 0.52]}
    runs = table(values)
    grid = np.array(list(values.values()))
    residual = grid - grid.mean(1, keepdims=True) - grid.mean(0, keepdims=True) + grid.mean()
    sigma = math.sqrt((residual ** 2).sum() / 6)
    model = bm.fit_blocks(runs, moderate=False)  # the homoscedastic model, by hand
    assert model.df == 6 and model.sigma == pytest.approx(sigma)
    contrasts = [Contrast.pair(c, "control", f"{c} - control") for c in ("x", "y")]
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


def test_max_t_quantile_is_students_for_one_contrast_and_for_two_that_are_one():
    values = {"a": [0.60, 0.62, 0.61, 0.60], "b": [0.42, 0.41, 0.41, 0.44], "c": [0.50, 0.50, 0.52, 0.51]}
    (e,) = inf.judge(table(values), [Contrast.pair("a", "b", "a - b")])
    assert e.critical == e.critical_low == e.critical_high == pytest.approx(stats.t.ppf(0.975, e.df))
    # The same contrast twice: the maximum of two equal |T| is one |T| (a singular correlation).
    twice = Contrast.pair("a", "b", "a - b again")
    draws = inf.MaxT.of(np.ones((2, 2)), 6.0)
    c, low, high = draws.quantile(0.95)
    assert low <= stats.t.ppf(0.975, 6) <= high and c == pytest.approx(stats.t.ppf(0.975, 6), abs=0.02)
    assert [x.decision for x in inf.judge(table(values), [Contrast.pair("a", "b", "a - b"), twice])] == ["above"] * 2


def test_fewer_than_three_seeds_decide_nothing_whatever_the_p():
    runs = table({"a": [0.70, 0.71], "b": [0.40, 0.40], "c": [0.41, 0.42]})
    judged = inf.judge(runs, [Contrast.pair("a", "b", "a - b"), Contrast.pair("a", "c", "a - c")])
    assert [e.decision for e in judged] == ["too few seeds", "too few seeds"]
    assert all(e.n == 2 and e.estimate > 0.25 for e in judged)


def noisy_cell_study() -> pd.DataFrame:
    """Five quiet cells (SD about 0.3 points over seeds) and one whose runs swing by 3 points."""
    rng = np.random.default_rng(7)
    values = {f"c{i}": list(0.45 + 0.01 * i + rng.normal(0, 0.003, 4)) for i in range(5)}
    values["wild"] = [0.53, 0.47, 0.52, 0.46]
    return table(values)


def fit_f_dist(variances: list[float], dfs: list[float]) -> tuple[float, float]:
    """limma's fitFDist (Smyth 2004, section 6.2), transcribed literally, one cell at a time."""
    n = len(variances)
    e = [math.log(v) - special.digamma(d / 2) + math.log(d / 2) for v, d in zip(variances, dfs)]
    mean = sum(e) / n
    spread = sum((x - mean) ** 2 for x in e) / (n - 1) - sum(special.polygamma(1, d / 2) for d in dfs) / n
    if spread <= 0:
        return math.inf, sum(v * d for v, d in zip(variances, dfs)) / sum(dfs)
    d0 = 2 * optimize.brentq(lambda y: special.polygamma(1, y) - spread, 1e-6, 1e6)
    return d0, math.exp(mean + special.digamma(d0 / 2) - math.log(d0 / 2))


def test_cell_variances_are_moderated_as_limma_moderates_them():
    runs = noisy_cell_study()
    model = bm.fit_blocks(runs)
    # Each cell's own variance: its residuals' sum of squares over its share of the residual df (the d_c
    # add up to the df: 15 = (6 - 1)(4 - 1) here, 2.5 each).
    assert sum(model.cell_df.values()) == pytest.approx(model.df) and model.df == 15
    for cell, group in model.data.groupby("cell"):
        assert model.cell_variance[cell] == pytest.approx((group["residual"] ** 2).sum() / 2.5)
    cells = list(model.cell_variance)
    d0, s0 = fit_f_dist([model.cell_variance[c] for c in cells], [model.cell_df[c] for c in cells])
    assert math.isfinite(d0) and (model.prior_df, model.prior_variance) == pytest.approx((d0, s0))
    for cell in cells:  # the posterior: the prior's evidence and the cell's own, weighed by their df
        posterior = (d0 * s0 + 2.5 * model.cell_variance[cell]) / (d0 + 2.5)
        assert model.moderated[cell] == pytest.approx(posterior)
        assert model.moderated_df[cell] == pytest.approx(min(d0 + 2.5, 15))
    # The wild cell keeps much of its noise (SD 3.2 points own, 2.0 moderated); the quiet ones are raised
    # towards the prior (0.6-0.8 own, 0.9 moderated), not to the wild one.
    assert model.moderated["wild"] > 4 * max(model.moderated[c] for c in cells if c != "wild")
    assert model.cell_variance["c0"] < model.moderated["c0"] < model.moderated["wild"] < model.cell_variance["wild"]
    (e,) = inf.judge(runs, [Contrast.pair("wild", "c0", "wild - c0")], model=model)
    assert e.basis == "moderated" and e.se == pytest.approx(math.sqrt((model.moderated["wild"] + model.moderated["c0"]) / 4))


def test_cells_no_more_unlike_than_chance_get_the_pool():
    values = {"a": [0.50, 0.52, 0.51, 0.53], "b": [0.55, 0.56, 0.57, 0.56], "c": [0.40, 0.43, 0.41, 0.42],
              "d": [0.47, 0.48, 0.49, 0.49]}
    model = bm.fit_blocks(table(values))
    assert model.prior_df == math.inf and model.prior_variance == pytest.approx(model.sigma ** 2)
    assert all(v == pytest.approx(model.sigma ** 2) for v in model.moderated.values())
    (e,) = inf.judge(table(values), [Contrast.pair("b", "a", "b - a")], model=model)
    assert e.df == model.df and e.se == pytest.approx(model.sigma * math.sqrt(2 / 4))


def test_the_prior_is_recovered_from_many_cells():
    # 400 cells whose true variances are scaled inverse chi-square (d0 = 6, s0^2 = 1e-4), 4 seeds each.
    rng = np.random.default_rng(5)
    variances = 6 * 1e-4 / rng.chisquare(6, 400)
    values = {f"c{i}": list(0.5 + rng.normal(0, math.sqrt(v), 4)) for i, v in enumerate(variances)}
    model = bm.fit_blocks(table(values))
    assert model.prior_df == pytest.approx(6, rel=0.3) and model.prior_variance == pytest.approx(1e-4, rel=0.15)
    assert bm.trigamma_inverse(float(special.polygamma(1, 2.5))) == pytest.approx(2.5, rel=1e-9)


def test_a_cell_only_the_old_refit_found_noisy_is_not_judged_on_a_pool_that_left_it_out():
    # The shipped guard (before 2026-12-07) tested each cell against the pool, refitted the pool without
    # the cells it flagged, and that refit flagged further cells without marking them: their contrasts
    # were judged on a quiet pool computed without them. Here "middling" is such a cell.
    rng = np.random.default_rng(3)
    seeds = rng.normal(0, 0.01, 3)
    values = {f"q{i}": list(0.50 + 0.002 * i + seeds + rng.normal(0, 0.002, 3)) for i in range(12)}
    values["wild1"] = list(0.52 + seeds + np.array([0.04, -0.035, -0.005]))
    values["wild2"] = list(0.51 + seeds + np.array([-0.03, 0.04, -0.01]))
    values["middling"] = list(0.53 + seeds + np.array([0.008, -0.007, -0.001]))
    runs = table(values)

    def guard(frame: pd.DataFrame) -> tuple[float, int, set[str]]:
        """The shipped guard's first look, literally: pool, df and the cells above it at p < 0.05."""
        grid = frame.pivot(index="cell", columns="seed", values="probe_h")
        residual = grid.sub(grid.mean(axis=1), axis=0).sub(grid.mean(axis=0), axis=1) + grid.to_numpy().mean()
        df = (grid.shape[0] - 1) * (grid.shape[1] - 1)
        pool = float((residual ** 2).to_numpy().sum()) / df
        seed_effect = grid.mean(axis=0) - grid.mean(axis=0).iloc[0]
        own = grid.sub(seed_effect, axis=1).var(axis=1, ddof=1)
        return pool, df, {c for c, v in own.items() if stats.f.sf(v / pool, 2, df) < 0.05}

    pool, df, first = guard(runs)
    quiet_pool, _, refit = guard(runs[~runs["cell"].isin(first)])
    assert first == {"wild1", "wild2"} and "middling" in refit  # only the refit finds it noisy
    shipped_se = math.sqrt(2 * quiet_pool / 3)  # what the shipped code used for middling - q0
    model = bm.fit_blocks(runs)
    (e,) = inf.judge(runs, [Contrast.pair("middling", "q0", "middling - q0")], model=model)
    # Now: middling's own moderated variance (and q0's) enter its contrast, as the method says.
    assert e.se == pytest.approx(math.sqrt((model.moderated["middling"] + model.moderated["q0"]) / 3))
    assert model.moderated["middling"] > model.moderated["q0"] and e.se > 1.3 * shipped_se


def test_a_variance_moves_smoothly_with_the_data():
    # One cell's spread scaled up step by step: its contrast's SE grows without a jump (the shipped
    # guards switched a cell or a pair from one basis to another at p = 0.05).
    rng = np.random.default_rng(2)
    base = {f"c{i}": 0.45 + 0.01 * i + rng.normal(0, 0.003, 4) for i in range(8)}
    deviation = np.array([0.004, -0.003, 0.002, -0.003])
    ses = []
    for k in np.linspace(1, 4, 31):
        values = {c: list(v) for c, v in base.items()}
        values["x"] = list(0.5 + k * deviation)
        (e,) = inf.judge(table(values), [Contrast.pair("x", "c0", "x - c0")])
        ses.append(e.se)
    steps = np.diff(ses) / np.array(ses[:-1])
    assert ses[-1] > 1.5 * ses[0] and steps.max() < 0.08


def test_the_paired_view_is_information_not_a_switch():
    # Ten cells share their seed effects; p and q also carry a seed-to-seed wobble of their own, in
    # opposite directions: p - q swings from seed to seed more than the model implies. The per-seed view
    # says so beside the model's judgement, which stays the model's.
    rng = np.random.default_rng(11)
    shared = np.array([0.00, 0.02, -0.02, 0.01, -0.01])
    wobble = 0.75 * np.array([0.004, -0.003, 0.002, -0.004, 0.001])
    values = {f"c{i}": list(0.45 + 0.005 * i + shared + rng.normal(0, 0.002, 5)) for i in range(8)}
    values["p"], values["q"] = list(0.50 + shared + wobble), list(0.49 + shared - wobble)
    runs = table(values)
    model = bm.fit_blocks(runs)
    (e,) = inf.judge(runs, [Contrast.pair("p", "q", "p - q")], model=model)
    assert e.basis == "moderated" and e.own_sd > e.implied_sd
    assert e.per_seed.to_numpy() == pytest.approx(0.01 + 2 * wobble)
    assert e.own_sd == pytest.approx(e.per_seed.std(ddof=1))
    assert e.implied_sd == pytest.approx(math.sqrt(model.moderated["p"] + model.moderated["q"]))


def test_the_same_data_give_the_same_decisions_and_a_bound_at_the_critical_value_is_at_the_edge():
    values = {"control": [0.50, 0.53, 0.49, 0.52], "x": [0.55, 0.57, 0.55, 0.58], "y": [0.51, 0.55, 0.50, 0.52]}
    contrasts = [Contrast.pair(c, "control", f"{c} - control") for c in ("x", "y")]
    first = inf.judge(table(values), contrasts)
    again = inf.judge(table(values), contrasts)
    assert [(e.low, e.high, e.p_adjusted, e.decision) for e in first] == \
        [(e.low, e.high, e.p_adjusted, e.decision) for e in again]
    e = first[1]
    assert e.critical_low < e.critical < e.critical_high and e.critical_high - e.critical_low < 0.08
    # Shift y so that its |t| is exactly the critical value: the SE and the correlation stay as they
    # were, and the draws are the same, so the decision would rest on the draws' own error.
    shift = e.critical * e.se - e.estimate
    edged = {**values, "y": [v + shift for v in values["y"]]}
    (_, on_edge) = inf.judge(table(edged), contrasts)
    assert on_edge.estimate / on_edge.se == pytest.approx(e.critical)
    assert on_edge.decision == "at the edge" and not on_edge.decided
    clear = {**values, "y": [v + shift + 3 * e.se for v in values["y"]]}
    assert inf.judge(table(clear), contrasts)[1].decision == "above"


def test_a_contrast_of_two_metrics_of_one_cell_has_no_pool():
    runs = table({"mlp": [0.55, 0.56, 0.54]}).assign(probe_z=[0.50, 0.51, 0.50])
    contrast = Contrast("h - z", (Term("mlp", 1.0, "probe_h"), Term("mlp", -1.0, "probe_z")))
    (e,) = inf.judge(runs, [contrast])
    assert e.basis == "own" and e.estimate == pytest.approx(0.0466667, abs=1e-6) and e.decision == "above"


def test_the_best_is_found_among_the_cells_that_could_be_best():
    clear = table({"a": [0.60, 0.61, 0.60], "b": [0.50, 0.52, 0.51], "c": [0.45, 0.46, 0.44]})
    assert inf.best_candidates(clear, bm.fit_blocks(clear)) == ["a"]
    tie = table({"a": [0.600, 0.610, 0.601], "b": [0.601, 0.611, 0.600], "c": [0.45, 0.46, 0.44]})
    assert sorted(inf.best_candidates(tie, bm.fit_blocks(tie))) == ["a", "b"]


def test_checks_equal_variance_against_scipy_and_nonadditivity():
    runs = noisy_cell_study()
    model = bm.fit_blocks(runs)
    checks = model_checks.check_model(model)
    groups = [g["residual"].to_numpy() for _, g in model.data.groupby("cell", sort=False)]
    assert checks.bartlett_p == pytest.approx(stats.bartlett(*groups).pvalue)
    assert checks.levene_p == pytest.approx(stats.levene(*groups, center="median").pvalue)
    assert not checks.equal_variance and math.isfinite(checks.prior_df)
    sd = checks.cell_sd.set_index("cell")
    assert sd.loc["wild", "moderated_sd"] == pytest.approx(math.sqrt(model.moderated["wild"]))
    assert sd.loc["wild", "own_sd"] == pytest.approx(math.sqrt(model.cell_variance["wild"]))
    # Multiplicative: every cell scales the seed's effect by its own level; Tukey's test sees it.
    seeds = np.array([0.9, 1.0, 1.1, 1.2, 0.8])
    multiplicative = table({f"c{i}": list(level * seeds) for i, level in enumerate((0.3, 0.4, 0.5, 0.6))})
    assert model_checks.check_model(bm.fit_blocks(multiplicative)).tukey_p < 0.01
    rng = np.random.default_rng(3)
    additive = table({f"c{i}": list(0.1 * i + 0.05 * seeds + rng.normal(0, 0.01, 5)) for i in range(4)})
    assert model_checks.check_model(bm.fit_blocks(additive)).tukey_p > 0.05


def test_the_papers_value_against_the_interval():
    runs = table({"a": [0.52, 0.53, 0.515], "b": [0.51, 0.515, 0.52]})
    (e,) = inf.judge(runs, [Contrast.pair("a", "b", "a - b", margin=0.103)])
    assert e.high < 0.103 and e.margin_relation == "excludes (below the paper)"
    (inside,) = inf.judge(runs, [Contrast.pair("a", "b", "a - b", margin=0.005)])
    assert inside.margin_relation == "includes"
    # A bound ("more than 0.5 points"): an interval above it does not exclude it, one below it does.
    (bound,) = inf.judge(runs, [Contrast.pair("a", "b", "a - b", margin=-0.05, margin_kind="at least")])
    assert bound.low > -0.05 and bound.margin_relation == "includes"
    (high_bound,) = inf.judge(runs, [Contrast.pair("a", "b", "a - b", margin=0.103, margin_kind="at least")])
    assert high_bound.margin_relation == "excludes (below the paper)"


def test_the_fit_is_statsmodels_ols_on_the_same_design():
    import statsmodels.api as sm

    runs = noisy_cell_study().iloc[:-1]  # unbalanced: the wild cell lost a seed
    model = bm.fit_blocks(runs)
    cells = pd.get_dummies(pd.Categorical(runs["cell"], categories=model.cells), dtype=float)
    seeds = pd.get_dummies(pd.Categorical(runs["seed"], categories=model.seeds), dtype=float).iloc[:, 1:]
    fit = sm.OLS(runs["probe_h"].to_numpy(), np.column_stack([cells, seeds])).fit()
    assert model.coefficients == pytest.approx(np.asarray(fit.params), abs=1e-12)
    assert model.sigma == pytest.approx(math.sqrt(fit.scale)) and model.df == round(fit.df_resid)
    assert model.data["residual"].to_numpy() == pytest.approx(np.asarray(fit.resid), abs=1e-12)
