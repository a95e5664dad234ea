import pandas as pd
import pytest

from conftest import TEMPLATE
from faithdpo.corpus import generate_corpus
from faithdpo.generation import cut_at_stop, generate_file
from faithdpo.io import write_parquet


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    df = generate_corpus(6, "validation", seed=0)
    path = tmp_path_factory.mktemp("gen") / "prompts.parquet"
    write_parquet(pd.DataFrame({"id": df["id"], "prompt": [TEMPLATE.replace("{article}", a) for a in df["article"]]}),
                  path)
    return path


def test_cut_at_stop():
    assert cut_at_stop(" Summary one.\n\nArticle: next", ["\n\n"]) == "Summary one."
    assert cut_at_stop("a|b#c", ["#", "|"]) == "a"
    assert cut_at_stop(" plain ", []) == "plain"


def test_k_sampled_candidates_per_article_in_input_order(tiny_model_dir, prompts, tmp_path):
    params = dict(num_return_sequences=3, do_sample=True, temperature=1.0, top_p=0.95, max_new_tokens=24,
                  batch_size=4, seed=0)
    out = generate_file(str(prompts), tiny_model_dir, str(tmp_path / "a.parquet"), **params)
    ids = list(pd.read_parquet(prompts)["id"])
    assert list(out["id"]) == [i for i in ids for _ in range(3)]
    assert list(out["candidate"]) == [0, 1, 2] * len(ids)
    assert (out["new_tokens"] <= 24).all() and (out["prompt_tokens"] > 0).all()
    assert out["summary"].map(lambda s: isinstance(s, str)).all()
    # samples differ from one another, and the same seed gives the same file
    assert out.groupby("id")["summary"].nunique().max() > 1
    again = generate_file(str(prompts), tiny_model_dir, str(tmp_path / "b.parquet"), **params)
    pd.testing.assert_frame_equal(out, again)
    assert pd.read_parquet(tmp_path / "a.parquet").equals(out)


def test_greedy_output_does_not_depend_on_batch_size(tiny_model_dir, prompts, tmp_path):
    one = generate_file(str(prompts), tiny_model_dir, str(tmp_path / "one.parquet"), max_new_tokens=16, batch_size=1)
    many = generate_file(str(prompts), tiny_model_dir, str(tmp_path / "six.parquet"), max_new_tokens=16, batch_size=6)
    assert list(one["candidate"]) == [0] * 6
    assert list(one["summary"]) == list(many["summary"])


def test_several_samples_need_sampling(tiny_model_dir, prompts, tmp_path):
    with pytest.raises(ValueError, match="num_return_sequences > 1 needs sampling"):
        generate_file(str(prompts), tiny_model_dir, str(tmp_path / "x.parquet"), num_return_sequences=2)
    assert not (tmp_path / "x.parquet").exists()
