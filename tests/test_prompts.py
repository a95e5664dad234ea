import pandas as pd
import pytest

from conftest import TEMPLATE
from faithdpo.models import load_tokenizer
from faithdpo.prompts import PromptBuilder


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(tiny_model_dir)


def test_short_article_is_kept_whole(tokenizer):
    built = PromptBuilder(tokenizer, TEMPLATE, 200).build("Maria Smith won in Paris.")
    assert built["prompt"] == TEMPLATE.replace("{article}", "Maria Smith won in Paris.")
    assert built["truncated"] is False
    assert built["prompt_tokens"] == len(tokenizer(built["prompt"], add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("budget", [60, 90, 131])
def test_long_article_is_cut_to_the_token_budget(tokenizer, budget):
    article = " ".join(f"Sentence {i} about Helen Moore in Oslo." for i in range(100))
    built = PromptBuilder(tokenizer, TEMPLATE, budget).build(article)
    assert built["truncated"] is True
    assert built["prompt_tokens"] <= budget
    assert built["prompt_tokens"] >= budget - 3  # the budget is used, not wasted
    assert built["prompt"].endswith("\n\nSummary:")  # the instruction survives; the article is cut
    assert built["prompt"].startswith("Summarize the following news article.\n\nArticle: Sentence 0")


def test_template_without_placeholder_is_rejected(tokenizer):
    with pytest.raises(ValueError, match=r"\{article\}"):
        PromptBuilder(tokenizer, "Summarize:", 100)


def test_budget_smaller_than_the_template_is_rejected(tokenizer):
    with pytest.raises(ValueError, match="max_prompt_tokens = 3 leaves no room"):
        PromptBuilder(tokenizer, TEMPLATE, 3)


@pytest.fixture
def data_file(tmp_path):
    from faithdpo.io import write_parquet

    path = tmp_path / "data.parquet"
    write_parquet(pd.DataFrame({"id": ["short", "long", "short2"],
                                "article": ["Rain fell.", "Rain fell on the town. " * 80, "Sun shone."]}), path)
    return str(path)


@pytest.mark.parametrize("policy, ids, truncated", [
    ("truncate", ["short", "long", "short2"], [False, True, False]),
    ("skip", ["short", "short2"], [False, False]),
])
def test_over_budget_articles_follow_the_policy(tiny_model_dir, data_file, tmp_path, policy, ids, truncated, caplog):
    from faithdpo.prompts import build_prompts

    caplog.set_level("INFO", logger="faithdpo")
    out = build_prompts(data_file, tiny_model_dir, str(tmp_path / "p.parquet"), TEMPLATE, 64, over_budget=policy)
    assert list(out["id"]) == ids and list(out["truncated"]) == truncated
    assert (out["prompt_tokens"] <= 64).all()
    # the article as the prompt gives it: the reference of scoring and pairs
    assert [TEMPLATE.replace("{article}", a) for a in out["article"]] == list(out["prompt"])
    assert [len(a) < 80 * 23 for a in out["article"]] == [True] * len(ids)
    assert "1 article(s) over the" in caplog.text and ("skipped" if policy == "skip" else "truncated") in caplog.text


def test_over_budget_fail_names_the_article(tiny_model_dir, data_file, tmp_path):
    from faithdpo.prompts import build_prompts

    with pytest.raises(ValueError, match=r"1 article\(s\) exceed the \d+-token article budget \(first: id 'long'\); "
                                         r"raise prompt.max_prompt_tokens"):
        build_prompts(data_file, tiny_model_dir, str(tmp_path / "p.parquet"), TEMPLATE, 64, over_budget="fail")
    assert not (tmp_path / "p.parquet").exists()
