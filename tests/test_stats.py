import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

from faithdpo.stats import (mcnemar, mcnemar_mde, mcnemar_p, mcnemar_power, mean_interval, paired_bootstrap,
                            paired_rate_interval,
                            paired_swap_test, verdict)


def table(base, dpo):
    base, dpo = np.asarray(base, bool), np.asarray(dpo, bool)
    return [[np.sum(base & dpo), np.sum(base & ~dpo)], [np.sum(~base & dpo), np.sum(~base & ~dpo)]]


@pytest.mark.parametrize("b, c, both, neither", [(3, 9, 10, 20), (0, 4, 5, 5), (7, 7, 1, 1), (30, 12, 40, 100)])
def test_mcnemar_matches_statsmodels(b, c, both, neither):
    base = [1] * b + [0] * c + [1] * both + [0] * neither
    dpo = [0] * b + [1] * c + [1] * both + [0] * neither
    ours = mcnemar(np.array(base), np.array(dpo))
    assert (ours["b"], ours["c"]) == (b, c)
    exact = b + c < 25
    ref = sm_mcnemar(table(base, dpo), exact=exact, correction=True)
    assert ours["exact"] is exact
    assert ours["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)


def test_mcnemar_without_discordant_pairs():
    assert mcnemar(np.array([1, 0, 1]), np.array([1, 0, 1]))["p_value"] == 1.0


def test_paired_bootstrap_matches_a_direct_resampling():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2, 200).astype(float)
    dpo = np.where(rng.random(200) < 0.2, 0.0, base)  # DPO fixes about a fifth of the hallucinations
    ci = paired_bootstrap(base, dpo, resamples=4000, seed=0)
    idx = np.random.default_rng(7).integers(0, 200, (4000, 200))
    deltas = dpo[idx].mean(axis=1) - base[idx].mean(axis=1)
    low, high = np.percentile(deltas, [2.5, 97.5])
    assert ci["delta"].low == pytest.approx(low, abs=0.01)
    assert ci["delta"].high == pytest.approx(high, abs=0.01)
    assert ci["delta"].high < 0  # the interval excludes zero
    assert ci["base"].low < base.mean() < ci["base"].high


def test_paired_bootstrap_is_seeded_and_pairs_the_articles():
    rng = np.random.default_rng(2)
    base = rng.integers(0, 2, 200).astype(float)
    dpo = np.where(rng.random(200) < 0.3, 1 - base, base)
    assert paired_bootstrap(base, dpo, seed=3) == paired_bootstrap(base, dpo, seed=3)
    assert paired_bootstrap(base, dpo, seed=3)["delta"] != paired_bootstrap(base, dpo, seed=4)["delta"]
    assert paired_bootstrap(base, dpo, seed=3)["base"] == mean_interval(base, seed=3)  # one draw for all
    assert paired_bootstrap(base, base)["delta"].low == paired_bootstrap(base, base)["delta"].high == 0.0
    delta = paired_bootstrap(base, base + 1)["delta"]  # every article one more item: the paired delta has no spread
    assert (delta.low, delta.high) == pytest.approx((1.0, 1.0))
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap(base, base[:5])


def test_paired_bootstrap_of_pooled_ratios():
    """With denominators each side is sum(num) / sum(den) over the resampled articles."""
    rng = np.random.default_rng(3)
    base_den, dpo_den = rng.poisson(5, 300), rng.poisson(5, 300)
    base, dpo = rng.binomial(base_den, 0.6), rng.binomial(dpo_den, 0.72)
    ci = paired_bootstrap(base, dpo, resamples=4000, base_den=base_den, dpo_den=dpo_den)
    idx = np.random.default_rng(7).integers(0, 300, (4000, 300))
    ratio = dpo[idx].sum(axis=1) / dpo_den[idx].sum(axis=1)
    deltas = ratio - base[idx].sum(axis=1) / base_den[idx].sum(axis=1)
    assert (ci["delta"].low, ci["delta"].high) == pytest.approx(tuple(np.percentile(deltas, [2.5, 97.5])), abs=0.01)
    assert (ci["dpo"].low, ci["dpo"].high) == pytest.approx(tuple(np.percentile(ratio, [2.5, 97.5])), abs=0.01)
    assert ci["delta"].low > 0  # the DPO side's share is clearly higher
    ones = np.ones(300)
    assert paired_bootstrap(base, dpo, base_den=ones, dpo_den=ones) == paired_bootstrap(base, dpo)


def test_paired_bootstrap_without_items():
    """Resamples where a side has no items leave its ratio out; a side with none at all has no interval."""
    num, den = np.r_[np.zeros(9), 1.0], np.r_[np.zeros(9), 2.0]  # one article holds every item
    ci = paired_bootstrap(num, np.ones(10), base_den=den, dpo_den=np.full(10, 2.0))
    assert (ci["base"].low, ci["base"].high) == (0.5, 0.5)
    assert (ci["delta"].low, ci["delta"].high) == (0.0, 0.0)  # 0.5 on both sides whenever defined
    ci = paired_bootstrap(num, np.ones(10), base_den=np.zeros(10), dpo_den=np.full(10, 2.0))
    assert np.isnan([ci["base"].low, ci["base"].high, ci["delta"].low, ci["delta"].high]).all()
    assert not np.isnan(ci["dpo"].low)
    assert np.isnan(paired_swap_test(num, np.ones(10), base_den=np.zeros(10), dpo_den=np.full(10, 2.0)))
    with pytest.raises(ValueError, match="both sides"):
        paired_bootstrap(num, num, base_den=den)
    with pytest.raises(ValueError, match="non-negative"):
        paired_bootstrap(num, num, base_den=-den, dpo_den=den)


def test_swap_test_matches_the_full_enumeration():
    """Ten articles: scipy enumerates all 2^10 swaps exactly."""
    from scipy.stats import permutation_test

    rng = np.random.default_rng(5)
    base = rng.integers(0, 4, 10).astype(float)
    dpo = base + np.array([1, 0, -1, 2, 1, 0, 1, -2, 1, 1.0])
    exact = permutation_test((base, dpo), lambda x, y, axis: np.mean(y, axis=axis) - np.mean(x, axis=axis),
                             permutation_type="samples", vectorized=True, alternative="two-sided").pvalue
    assert 0.2 < exact < 0.8
    assert paired_swap_test(base, dpo, resamples=20000) == pytest.approx(exact, abs=0.02)
    assert paired_swap_test(base, base) == 1.0


def test_swap_test_follows_the_mean_where_wilcoxon_does_not():
    """30 articles lose one item, 5 gain ten: the mean rises by 0.1, yet the signed ranks say "fewer"."""
    from scipy.stats import wilcoxon

    base = np.r_[np.ones(30), np.zeros(170)]
    dpo = np.r_[np.zeros(30), np.full(5, 10.0), np.zeros(165)]
    assert dpo.mean() - base.mean() == pytest.approx(0.1)
    assert wilcoxon(dpo, base).pvalue < 0.01
    assert paired_swap_test(base, dpo) > 0.2
    assert paired_swap_test(base, np.zeros(200)) < 0.01  # a real shift: 30 articles lose one, none gain
    assert paired_swap_test(np.r_[np.ones(60), np.zeros(140)], np.zeros(200)) < 0.01


def test_swap_test_of_pooled_ratios():
    rng = np.random.default_rng(0)
    base_den, dpo_den = rng.poisson(5, 300), rng.poisson(5, 300)
    base = rng.binomial(base_den, 0.6)
    same, higher = rng.binomial(dpo_den, 0.6), rng.binomial(dpo_den, 0.72)
    assert paired_swap_test(base, same, base_den=base_den, dpo_den=dpo_den) > 0.05
    assert paired_swap_test(base, higher, base_den=base_den, dpo_den=dpo_den) < 0.01
    assert paired_bootstrap(base, higher, base_den=base_den, dpo_den=dpo_den)["delta"].low > 0


def test_paired_rate_interval_is_tangos_score_interval():
    """Its ends solve Tango's score equation; with no changed article it is the closed form
    +-z^2 / (n + z^2); it excludes 0 exactly when uncorrected McNemar (its score test at 0) rejects."""
    from scipy.stats import norm

    z = norm.ppf(0.975)
    none = paired_rate_interval(0, 0, 200)
    assert (none.low, none.high) == pytest.approx((-z * z / (200 + z * z), z * z / (200 + z * z)), abs=1e-9)
    for b, c in [(7, 1), (20, 0), (12, 9), (3, 3), (40, 25)]:
        ci = paired_rate_interval(b, c, 200)
        assert ci.low < (c - b) / 200 < ci.high
        assert (ci.low > 0 or ci.high < 0) == (abs(c - b) / np.sqrt(b + c) > z)


def test_paired_rate_interval_covers_the_true_change_95_percent_of_the_time():
    """Coverage by simulation, also where few articles change (psi 2%) and a bootstrap collapses."""
    rng = np.random.default_rng(4)
    for n, psi, delta in [(200, 0.1, -0.05), (200, 0.02, 0.0), (60, 0.3, -0.1)]:
        cells = rng.multinomial(n, [(psi + delta) / 2, (psi - delta) / 2, 1 - psi], size=3000)
        # the rate changes by p_dpo - p_base = (only DPO - only base) / n; the rate falls by delta
        covered = [paired_rate_interval(b, c, n).low <= -delta <= paired_rate_interval(b, c, n).high
                   for b, c, _ in cells]
        assert 0.93 <= np.mean(covered) <= 0.99, (n, psi, delta, np.mean(covered))


def test_verdicts():
    assert verdict(-0.1, True) == "improved"
    assert verdict(0.1, True) == "worse"
    assert verdict(-0.1, False) == "no significant change"


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    from faithdpo.stats import holm

    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 12):
        p = rng.uniform(0, 0.2, m)
        np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])
    assert holm([]) == []


def test_mcnemar_p_is_binomtest_below_the_threshold_and_one_at_equal_counts():
    from scipy.stats import binomtest

    for d in range(1, 25):
        for b in range(d + 1):
            assert mcnemar_p(b, d - b) == pytest.approx(binomtest(b, d, 0.5).pvalue, rel=1e-9)
    equal = mcnemar(np.r_[np.ones(25), np.zeros(25)], np.r_[np.zeros(25), np.ones(25)])
    assert (equal["exact"], equal["statistic"], equal["p_value"]) == (False, 0.0, 1.0)


def simulated_power(n, discordant, delta, alpha, seed=1, draws=20000):
    """Share of multinomial paired samples statsmodels' McNemar test rejects at alpha."""
    psi = discordant / n
    b, c, _ = np.random.default_rng(seed).multinomial(n, [(psi + delta) / 2, (psi - delta) / 2, 1 - psi], draws).T
    pairs, counts = np.unique(np.stack([b, c], axis=1), axis=0, return_counts=True)
    rejects = [sm_mcnemar([[0, x], [y, 0]], exact=x + y < 25, correction=True).pvalue < alpha for x, y in pairs]
    return float(np.dot(rejects, counts) / draws)


@pytest.mark.parametrize("n, discordant, alpha", [(500, 50, 0.05), (400, 80, 0.0125), (200, 30, 0.05)])
def test_mcnemar_mde_has_the_promised_power(n, discordant, alpha):
    """At the detectable change McNemar's test rejects in 80% of simulated samples; at 0.8 of it, clearly fewer."""
    delta = mcnemar_mde(n, discordant, alpha)
    assert 0 < delta < discordant / n
    assert mcnemar_power(n, discordant / n, delta, alpha) == pytest.approx(0.8, abs=1e-6)
    assert simulated_power(n, discordant, delta, alpha) == pytest.approx(0.8, abs=0.02)
    smaller = simulated_power(n, discordant, 0.8 * delta, alpha)
    assert smaller < 0.72
    assert smaller == pytest.approx(mcnemar_power(n, discordant / n, 0.8 * delta, alpha), abs=0.02)


def test_mcnemar_power_and_mde_monotone():
    deltas = np.linspace(0, 0.1, 101)
    powers = [mcnemar_power(200, 0.1, x, 0.05) for x in deltas]
    assert np.all(np.diff(powers) > 0) and powers[0] <= 0.05  # no change: rejected at most alpha of the time
    assert mcnemar_power(200, 0.1, -0.05, 0.05) == pytest.approx(mcnemar_power(200, 0.1, 0.05, 0.05))
    # a stricter alpha or fewer articles need a larger change; (almost) none changed: nothing to see
    n, discordant, alpha = 400, 80, 0.05
    assert mcnemar_mde(n, discordant, alpha / 10) > mcnemar_mde(n, discordant, alpha)
    assert mcnemar_mde(n // 2, discordant // 2, alpha) > mcnemar_mde(n, discordant, alpha)
    assert mcnemar_mde(n, 3, alpha) is None and mcnemar_mde(n, 0, alpha) is None
    with pytest.raises(ValueError):
        mcnemar_power(n, 0.1, 0.2, alpha)
