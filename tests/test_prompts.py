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
