"""Data stage: prompt construction with token-budget truncation of the article.

TRL 1.x truncates prompt + completion from the end, so an over-long article would cut
the summary itself (or drop the example). Articles are therefore pre-truncated by
tokens so that prompt + summary always fits ``max_length``.
"""

from __future__ import annotations

import logging

import pandas as pd

from faithdpo.io import read_parquet, write_parquet

log = logging.getLogger(__name__)


class PromptBuilder:
    """Fills ``template`` with an article cut to fit ``max_prompt_tokens`` tokens."""

    def __init__(self, tokenizer, template: str, max_prompt_tokens: int):
        if "{article}" not in template:
            raise ValueError("prompt.template must contain the placeholder {article}")
        self.tokenizer = tokenizer
        self.template = template
        overhead = self.count(template.replace("{article}", ""))
        self.article_budget = max_prompt_tokens - overhead
        if self.article_budget < 1:
            raise ValueError(
                f"prompt.max_prompt_tokens = {max_prompt_tokens} leaves no room for the article "
                f"(the template alone takes {overhead} tokens)"
            )

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate(self, article: str) -> tuple[str, int, bool]:
        """The article cut to the budget, its token count, and whether it was cut."""
        ids = self.tokenizer(article, add_special_tokens=False)["input_ids"]
        if len(ids) <= self.article_budget:
            return article, len(ids), False
        keep = self.article_budget
        while True:  # decoding can merge tokens differently; shrink until it fits
            text = self.tokenizer.decode(ids[:keep], skip_special_tokens=True)
            n = self.count(text)
            if n <= self.article_budget or keep <= 1:
                return text, n, True
            keep -= n - self.article_budget

    def build(self, article: str) -> dict:
        text, article_tokens, truncated = self.truncate(article)
        prompt = self.template.replace("{article}", text)
        return {"prompt": prompt, "article": text, "prompt_tokens": self.count(prompt), "truncated": truncated}


OVER_BUDGET = ("truncate", "skip", "fail")


def build_prompts(data: str, model_dir: str, output: str, template: str, max_prompt_tokens: int,
                  over_budget: str = "truncate") -> pd.DataFrame:
    """Write ``id, prompt, article, prompt_tokens, truncated`` for the articles of a split.

    ``article`` is the article as the prompt gives it (cut to the budget): the reference that
    scoring and the pairs check summaries against, since the model saw nothing past the cut.

    An article over the token budget is cut to fit (``truncate``), left out (``skip``; later
    steps see only the prompts' ids), or stops the run (``fail``).
    """
    from faithdpo.models import load_tokenizer

    if over_budget not in OVER_BUDGET:
        raise ValueError(f"prompt.over_budget = {over_budget!r}; allowed: {', '.join(OVER_BUDGET)}")
    builder = PromptBuilder(load_tokenizer(model_dir), template, max_prompt_tokens)
    df = read_parquet(data, ["id", "article"])
    rows = [{"id": i, **builder.build(a)} for i, a in zip(df["id"], df["article"])]
    out = pd.DataFrame(rows, columns=["id", "prompt", "article", "prompt_tokens", "truncated"])
    over = int(out["truncated"].sum())
    if over and over_budget == "fail":
        first = out.loc[out["truncated"].idxmax(), "id"]
        raise ValueError(
            f"{data}: {over} article(s) exceed the {builder.article_budget}-token article budget "
            f"(first: id {first!r}); raise prompt.max_prompt_tokens or set prompt.over_budget: truncate|skip."
        )
    if over_budget == "skip":
        out = out[~out["truncated"]].reset_index(drop=True)
    write_parquet(out, output)
    log.info("%s: %d prompts; %d article(s) over the %d-token article budget were %s",
             data, len(out), over, builder.article_budget, "skipped" if over_budget == "skip" else "truncated")
    return out
