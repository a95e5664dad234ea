"""The consistency checker's inference (faithdpo.checker): MiniCheck's chunking, input and
score combination, on a randomly initialised model of the real checker's architecture."""

import numpy as np
import pandas as pd
import pytest

from faithdpo.checker import Checker, check_file, chunk_document, load_checker, score_summaries, sentences
from faithdpo.corpus import generate_corpus
from faithdpo.io import read_parquet, write_parquet
from faithdpo.tiny_checker import roberta_tokenizer

# MiniCheck-RoBERTa-Large's config (roberta-large's): what the window and the labels depend on
# is kept (514 positions with RoBERTa's offset of 2, one token type, 2 labels, the EOS joint);
# depth and width are cut so that a CPU runs it in a second.
ROBERTA_LARGE = {"max_position_embeddings": 514, "type_vocab_size": 1, "num_labels": 2, "layer_norm_eps": 1e-5,
                 "hidden_act": "gelu", "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2}


@pytest.fixture(scope="module")
def checker_dir(tmp_path_factory):
    """A random RoBERTa sequence classifier with its tokenizer, saved as a checker directory."""
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification

    corpus = generate_corpus(200, "checker-test", 0)
    tokenizer = roberta_tokenizer(list(corpus["article"]) + list(corpus["highlights"]), vocab_size=800)
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, **ROBERTA_LARGE)
    path = tmp_path_factory.mktemp("checker")
    RobertaForSequenceClassification(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return str(path)


def long_article(tokens=1300):
    """Synthetic stories, one paragraph each, until the article has ``tokens`` words or more."""
    stories = generate_corpus(60, "checker-long", 0)["article"]
    text = ""
    for story in stories:
        text = f"{text}\n{story}" if text else story
        if len(text.split()) * 1.3 >= tokens:
            break
    return text


def test_sentences_split_lines_then_sentences():
    assert sentences("Ajax beat Bayern 2-1 .\nCoach Anna Hall praises the team . Fans cheered.\n\n") == [
        "Ajax beat Bayern 2-1 .", "Coach Anna Hall praises the team .", "Fans cheered."]
    assert sentences("  \n ") == []


def test_chunks_pack_whole_sentences_up_to_the_limit_and_keep_line_breaks():
    words = len  # a "tokenizer" counting characters, to make the limits easy to see
    text = "Aaaa. Bbbbbb.\nCc. Ddddddddddddddddddddd."
    chunks = chunk_document(text, lambda s: words(s), chunk_tokens=12)
    # "Aaaa." (5) + "Bbbbbb." (7) = 12 fits; the line break is kept inside the next chunk's text;
    # a sentence longer than the limit is a chunk of its own
    assert chunks == ["Aaaa. Bbbbbb.", "Cc.", "Ddddddddddddddddddddd."]
    assert chunk_document("One. Two.", len, chunk_tokens=100) == ["One. Two."]
    assert chunk_document("Line one.\nLine two.", len, chunk_tokens=100) == ["Line one.\nLine two."]
    assert chunk_document("", len) == [""]


def test_the_real_architecture_chunks_a_1300_token_article_to_its_window(checker_dir):
    checker = load_checker(checker_dir)
    assert checker.max_length == 512  # 514 positions, RoBERTa's offset of 2
    article = long_article()

    def tokens(text):  # untruncated (count_tokens, as MiniCheck's, stops at the window)
        return len(checker.tokenizer(text, add_special_tokens=False)["input_ids"])

    assert tokens(article) >= 1300
    chunks = checker.chunks(article)
    sizes = [tokens(c) for c in chunks]
    assert len(chunks) >= 1300 // 400 + 1 and max(sizes) <= 400
    # nothing lost, nothing repeated, in order
    assert " ".join(c.replace("\n", " ") for c in chunks).split() == article.replace("\n", " ").split()
    claim = "Researchers followed 120 adults for 8 years ."
    encoded = [checker.tokenizer(checker.tokenizer.eos_token.join([c, claim]))["input_ids"] for c in chunks]
    # each input holds the whole claim: <s> chunk </s> claim </s>, inside the window
    assert all(len(ids) <= 512 and ids[0] == 0 and ids[-1] == 2 for ids in encoded)
    scores = score_summaries(checker, [article], [claim + "\nStudy led by Julia Miller ."], batch_size=3)
    per_pair = checker.support([(c, s) for s in sentences(claim + "\nStudy led by Julia Miller .") for c in chunks], 64)
    by_sentence = per_pair.reshape(2, len(chunks)).max(axis=1)
    assert scores.loc[0, "sentences"] == 2
    assert scores.loc[0, "support"] == pytest.approx(by_sentence.min(), abs=1e-6)
    assert 0 <= scores.loc[0, "support"] <= 1


class WordOverlap(Checker):
    """A checker whose support is known in advance: 0.9 where every word of the claim is in the
    chunk, else 0.1 (the combination rules are what is tested)."""

    def __init__(self):
        super().__init__(tokenizer=None, model=None, max_length=512, chunk_tokens=6)

    def count_tokens(self, text):
        return len(text.split())

    def support(self, pairs, batch_size):
        return np.array([0.9 if set(claim.split()) <= set(chunk.split()) else 0.1 for chunk, claim in pairs])


def test_support_is_the_weakest_sentence_of_the_best_chunk():
    article = "Ajax beat Bayern . It rained hard today .\nCoach Hall smiled ."
    scores = score_summaries(WordOverlap(), [article] * 3, [
        "Ajax beat Bayern .\nCoach Hall smiled .",  # each sentence in its own chunk: supported
        "Ajax beat Bayern .\nBayern beat Ajax today .",  # the second sentence is in no chunk
        "",  # claims nothing
    ], batch_size=2)
    assert list(scores["support"]) == [0.9, 0.1, 1.0]
    assert list(scores["sentences"]) == [2, 2, 0]
    assert scores.loc[1, "weakest_sentence"] == "Bayern beat Ajax today ."


def test_check_file_writes_each_summary_against_its_prompt_article(tmp_path, checker_dir):
    prompts = pd.DataFrame({"id": ["a", "b"], "article": ["Ajax beat Bayern 2-1 in Oslo .", "Rain fell ."]})
    summaries = pd.DataFrame({"id": ["a", "a", "b"], "candidate": [0, 1, 0],
                              "summary": ["Ajax beat Bayern .", "Bayern beat Ajax . Rain fell .", ""]})
    write_parquet(prompts, tmp_path / "prompts.parquet")
    write_parquet(summaries, tmp_path / "summaries.parquet")
    out = check_file(str(tmp_path / "summaries.parquet"), str(tmp_path / "prompts.parquet"), str(tmp_path / "c.parquet"),
                     checker_dir, batch_size=2, device="cpu")
    assert list(out.columns) == ["id", "candidate", "support", "sentences", "weakest_sentence"]
    assert list(out["sentences"]) == [1, 2, 0] and out["support"].between(0, 1).all()
    assert read_parquet(tmp_path / "c.parquet")["support"].dtype == np.float64
    write_parquet(summaries.assign(id=["a", "zz", "b"]), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="1 summaries have ids absent"):
        check_file(str(tmp_path / "bad.parquet"), str(tmp_path / "prompts.parquet"), str(tmp_path / "x.parquet"),
                   checker_dir, batch_size=2, device="cpu")


def test_a_checker_that_is_not_two_labels_or_has_no_weights_is_refused(tmp_path, checker_dir):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    with pytest.raises(FileNotFoundError, match="download_checker"):
        load_checker(str(tmp_path))
    config = AutoConfig.from_pretrained(checker_dir, num_labels=3)
    three = tmp_path / "three"
    AutoModelForSequenceClassification.from_config(config).save_pretrained(three)
    AutoTokenizer.from_pretrained(checker_dir).save_pretrained(three)
    with pytest.raises(ValueError, match="3 labels"):
        load_checker(str(three))
    with pytest.raises(ValueError, match="leave no room for a claim"):
        load_checker(checker_dir, chunk_tokens=512)


def test_device_cuda_without_a_gpu_stops_the_checker_at_once(tmp_path, checker_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="rule check_eval: the config says device: cuda"):
        check_file("none.parquet", "none.parquet", str(tmp_path / "c.parquet"), checker_dir, 2, "cuda",
                   rule="check_eval")
