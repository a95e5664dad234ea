"""The demo's tiny checker (faithdpo.tiny_checker): its claims, and what it and regex + NER catch."""

import json
import re
from pathlib import Path

import pytest

from faithdpo.checker import load_checker
from faithdpo.scoring import Scorer, ScoringConfig
from faithdpo.tiny_checker import HELDOUT_SPLIT, TRAIN_SPLIT, _presence_labels, claim_examples, heldout_accuracy

COMMITTED = Path(__file__).resolve().parents[1] / "demo" / "tiny-checker"
# Held-out accuracy bands, per kind of claim. The committed checker (seed 0, this machine):
# supported 0.94, invented 0.965, swap 0.67, negation 1.0, balanced 0.909; regex + NER: 1.0,
# 1.0, 0.0, 0.0, balanced 0.667. A rebuild on another CPU, or with another seed, is another
# model: it must land in these bands, not on these numbers.
CHECKER_BANDS = {"supported": (0.8, 1.0), "invented": (0.8, 1.0), "swap": (0.5, 1.0), "negation": (0.9, 1.0),
                 "balanced": (0.8, 1.0)}
# regex + NER see invented details and nothing else: the line that the checker is there to cross
REGEX_NER_BANDS = {"supported": (0.95, 1.0), "invented": (0.95, 1.0), "swap": (0.0, 0.1), "negation": (0.0, 0.1)}


def in_bands(accuracy, bands):
    return {kind: accuracy[kind] for kind, (low, high) in bands.items() if not low <= accuracy[kind] <= high}


def test_claims_come_in_minimal_pairs_of_every_kind():
    claims = claim_examples(90, TRAIN_SPLIT, 0)
    assert list(claims["label"]) == [1, 0] * (len(claims) // 2)
    assert set(claims["kind"]) == {"supported", "invented", "swap", "negation"}
    for supported, wrong in zip(claims.iloc[::2].itertuples(), claims.iloc[1::2].itertuples()):
        assert supported.article == wrong.article and supported.claim != wrong.claim
    assert claim_examples(90, TRAIN_SPLIT, 0).equals(claims)  # seeded
    held = claim_examples(30, HELDOUT_SPLIT, 0)
    assert not set(held["article"]) & set(claims["article"])  # a split of their own


def test_swaps_and_negations_use_only_what_the_article_states():
    """The errors regex + NER cannot see: every name and figure of the claim is in the article."""
    claims = claim_examples(150, TRAIN_SPLIT, 0)
    scorer = Scorer(ScoringConfig())
    hidden = claims[claims["kind"].isin(["swap", "negation"])]
    scored = scorer.score(hidden.rename(columns={"claim": "summary"}).assign(highlights=""))
    assert (scored["ent_hallucinations"] == 0).all() and (scored["num_hallucinations"] == 0).all()
    swaps = hidden[hidden["kind"] == "swap"]["claim"]
    assert any(re.match(r"^.+ beat .+", c) for c in swaps)  # roles exchanged, "Ajax beat Bayern" style
    assert any(c.startswith("Nobody died") for c in hidden[hidden["kind"] == "negation"]["claim"])


def test_presence_labels_mark_claim_tokens_found_in_the_document():
    import torch

    #                   <s>  d   d  </s> c   c  </s> pad
    ids = torch.tensor([[0, 10, 11, 2, 11, 12, 2, 1]])
    assert _presence_labels(ids, eos_id=2).tolist() == [[-100, -100, -100, -100, 1, 0, -100, -100]]


def test_the_committed_checker_catches_what_regex_ner_cannot():
    info = json.loads((COMMITTED / "training_info.json").read_text())
    measured = heldout_accuracy(load_checker(str(COMMITTED)), 600, 0)
    assert measured["claims"] == info["heldout"]["claims"] == 1200
    assert not in_bands(measured["checker"], CHECKER_BANDS), measured
    assert not in_bands(measured["regex_ner"], REGEX_NER_BANDS), measured
    # what the demo shows: the checker sees swaps and negations, regex + NER none of them
    assert measured["checker"]["negation"] - measured["regex_ner"]["negation"] >= 0.9
    assert (COMMITTED / "model.safetensors").stat().st_size < 1_000_000


@pytest.mark.seedbands
@pytest.mark.parametrize("seed", [1])
def test_a_rebuilt_checker_lands_in_the_bands(tmp_path, seed):
    """build_tiny_checker from scratch with another seed (about a minute on 2 cores)."""
    from faithdpo.tiny_checker import build_tiny_checker

    info = build_tiny_checker(str(tmp_path / "checker"), seed=seed)
    assert not in_bands(info["heldout"]["checker"], CHECKER_BANDS), info["heldout"]
    assert not in_bands(info["heldout"]["regex_ner"], REGEX_NER_BANDS), info["heldout"]
