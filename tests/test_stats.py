import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

from faithdpo.stats import mcnemar, paired_bootstrap, verdict


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
    base = np.array([1, 0, 1, 1, 0, 1, 0, 0, 1, 1.0])
    assert paired_bootstrap(base, base)["delta"].low == paired_bootstrap(base, base)["delta"].high == 0.0
    shifted = base + 1  # every article one more item: the paired delta has no spread at all
    delta = paired_bootstrap(base, shifted)["delta"]
    assert (delta.low, delta.high) == pytest.approx((1.0, 1.0))
    a = paired_bootstrap(base, 1 - base, seed=3)
    assert a == paired_bootstrap(base, 1 - base, seed=3)
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap(base, base[:5])


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


def test_mcnemar_mde_has_the_promised_power():
    """At the detectable change, McNemar's test rejects in about 80% of simulated paired samples."""
    from faithdpo.stats import mcnemar, mcnemar_mde

    n, discordant, alpha = 400, 80, 0.05
    delta = mcnemar_mde(n, discordant, alpha)
    assert 0 < delta < discordant / n
    psi, rng = discordant / n, np.random.default_rng(1)
    p_only_base, p_only_dpo = (psi + delta) / 2, (psi - delta) / 2  # the rate falls by delta
    rejected = 0
    for _ in range(2000):
        cell = rng.choice(3, size=n, p=[p_only_base, p_only_dpo, 1 - psi])
        base, dpo = cell == 0, cell == 1
        rejected += mcnemar(base, dpo)["p_value"] < alpha
    assert 0.74 < rejected / 2000 < 0.86
    # a stricter alpha or fewer changed articles need a larger change; none changed: nothing to see
    assert mcnemar_mde(n, discordant, alpha / 10) > delta
    assert mcnemar_mde(n, 3, alpha) is None and mcnemar_mde(n, 0, alpha) is None
