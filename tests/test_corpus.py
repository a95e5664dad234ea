import pandas as pd
import pytest

from faithdpo.corpus import generate_corpus, synthesize_split


def test_corpus_is_deterministic_and_shaped_like_cnn_dailymail():
    a = generate_corpus(30, "train", seed=3)
    b = generate_corpus(30, "train", seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["id", "article", "highlights"]
    assert a["id"].str.fullmatch(r"[0-9a-f]{40}").all()
    assert a["id"].is_unique


def test_splits_and_seeds_differ():
    train = generate_corpus(20, "train", seed=0)
    assert not set(train["id"]) & set(generate_corpus(20, "validation", seed=0)["id"])
    assert list(train["article"]) != list(generate_corpus(20, "train", seed=1)["article"])


def test_highlights_are_faithful_to_their_article(scorer):
    """The reference summaries hold no entity or number absent from the article."""
    df = generate_corpus(60, "validation", seed=0)
    scored = scorer.score(df.assign(summary=df["highlights"], highlights=""))
    assert scored["hallucinated_numbers"].map(len).sum() == 0
    assert scored["hallucinated_entities"].map(len).sum() == 0
    assert scored["entities"].map(len).mean() >= 2  # the stories really carry entities
    assert scored["numbers"].map(len).mean() >= 2


def test_synthesize_split_writes_parquet(tmp_path):
    out = tmp_path / "raw" / "train.parquet"
    synthesize_split(str(out), "train", 5, seed=0)
    pd.testing.assert_frame_equal(pd.read_parquet(out), generate_corpus(5, "train", seed=0))


@pytest.mark.parametrize("split", ["validation", "dev"])
def test_only_the_pretrain_highlights_invent_details(scorer, split):
    """The tiny model learns to hallucinate from its pretrain split: there, a detail the article
    leaves out is stated anyway in about OMIT_DETAIL x PRETRAIN_EXTRINSIC of the optional slots."""
    from faithdpo.corpus import OMIT_DETAIL, PRETRAIN_EXTRINSIC

    pretrain = generate_corpus(400, "pretrain", seed=0)
    scored = scorer.score(pretrain.assign(summary=pretrain["highlights"], highlights=""))
    invented = (scored["badness"] > 0).mean()
    expected = 1 - (1 - OMIT_DETAIL * PRETRAIN_EXTRINSIC) ** 2  # two optional details a story
    assert abs(invented - expected) < 0.08, invented
    faithful = generate_corpus(200, split, seed=0)
    scored = scorer.score(faithful.assign(summary=faithful["highlights"], highlights=""))
    assert (scored["badness"] == 0).all()
