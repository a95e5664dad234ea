"""The checker's agreement with regex + NER (faithdpo.agreement)."""

import numpy as np
import pandas as pd
import pytest

from faithdpo.agreement import agreement, cohen_kappa, disagreements, table


def scores(regex, support, ids=None, summaries=None):
    n = len(regex)
    return pd.DataFrame({
        "id": ids or [f"a{i}" for i in range(n)], "summary": summaries or [f"s{i}" for i in range(n)],
        "ent_hallucinations": [int(r) for r in regex], "num_hallucinations": 0,
        "hallucinated_entities": [["Oslo"] if r else [] for r in regex], "hallucinated_numbers": [[] for _ in regex],
        "support": support, "sentences": 1, "weakest_sentence": "",
    })


@pytest.mark.parametrize("cells", [(20, 5, 3, 72), (10, 10, 10, 10), (0, 7, 9, 4), (40, 0, 0, 60)])
def test_kappa_is_statsmodels(cells):
    from statsmodels.stats.inter_rater import cohens_kappa

    both, regex_only, checker_only, neither = cells
    ours = cohen_kappa({"both": both, "regex_only": regex_only, "checker_only": checker_only, "neither": neither})
    theirs = cohens_kappa(np.array([[both, regex_only], [checker_only, neither]])).kappa
    assert ours == pytest.approx(theirs, abs=1e-12)


def test_kappa_is_undefined_when_both_flag_everything():
    assert cohen_kappa({"both": 5, "regex_only": 0, "checker_only": 0, "neither": 0}) is None


def test_the_table_counts_flags_and_the_threshold_is_inclusive():
    frame = scores([1, 1, 0, 0, 0], [0.5, 0.9, 0.1, 0.51, 0.7])
    result = agreement([frame], threshold=0.5, confidence=0.95, resamples=200, seed=0)
    # support 0.5 is unsupported (MiniCheck: supported above 0.5)
    assert result["table"] == {"both": 1, "regex_only": 1, "checker_only": 1, "neither": 2}
    assert table([True, False], [True, True]) == {"both": 1, "regex_only": 0, "checker_only": 1, "neither": 0}


def test_kappa_interval_resamples_articles_with_all_their_summaries():
    rng = np.random.default_rng(0)
    regex = rng.random(200) < 0.3
    checker = np.where(rng.random(200) < 0.8, regex, ~regex)  # agrees on ~80%
    base = scores(list(regex[:100]), list(np.where(checker[:100], 0.1, 0.9)))
    dpo = scores(list(regex[100:]), list(np.where(checker[100:], 0.1, 0.9)))
    result = agreement([base, dpo], threshold=0.5, confidence=0.95, resamples=500, seed=1)
    assert result["summaries"] == 200 and result["articles"] == 100
    assert result["kappa_low"] < result["kappa"] < result["kappa_high"]
    assert result == agreement([base, dpo], threshold=0.5, confidence=0.95, resamples=500, seed=1)  # seeded


def test_disagreements_come_both_ways_once_per_article():
    frame = scores([0, 0, 1, 1, 0], [0.3, 0.1, 0.8, 0.95, 0.1], ids=["a", "b", "c", "d", "b"])
    found = disagreements(frame.assign(model=["base"] * 5), threshold=0.5, n=5)
    assert [e["id"] for e in found["checker_only"]] == ["b", "a"]  # lowest support first, b once
    assert [e["id"] for e in found["regex_only"]] == ["d", "c"]  # highest support first
    assert found["regex_only"][0]["items"] == ["Oslo"] and found["checker_only"][0]["model"] == "base"
