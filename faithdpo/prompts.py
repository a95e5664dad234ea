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
    """Fills ``template`` with an article cut so that the whole prompt fits ``max_prompt_tokens`` tokens.

    With ``chat`` the prompt is the tokenizer's chat template rendered around the filled template
    (the user turn, after an optional ``system`` turn), and the budget counts the template's tokens too.
    """

    def __init__(self, tokenizer, template: str, max_prompt_tokens: int, chat: bool = False,
                 system: str | None = None, model: str = "the model"):
        if "{article}" not in template:
            raise ValueError("prompt.template must contain the placeholder {article}")
        if chat:
            from faithdpo.chat import require_chat_template

            require_chat_template(tokenizer, model)
        self.tokenizer = tokenizer
        self.template = template
        self.chat, self.system = chat, system
        self.max_prompt_tokens = max_prompt_tokens
        overhead = self.count(self.render(""))
        self.article_budget = max_prompt_tokens - overhead
        if self.article_budget < 1:
            raise ValueError(
                f"prompt.max_prompt_tokens = {max_prompt_tokens} leaves no room for the article "
                f"(the {'chat template and template' if chat else 'template'} alone take(s) {overhead} tokens)"
            )

    def render(self, article: str) -> str:
        """The prompt text around ``article``."""
        user = self.template.replace("{article}", article)
        if not self.chat:
            return user
        from faithdpo.chat import render

        return render(self.tokenizer, user, self.system)

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate(self, article: str, budget: int | None = None) -> tuple[str, int, bool]:
        """The article cut to ``budget`` tokens (the article budget), its token count, and whether it was cut."""
        budget = self.article_budget if budget is None else budget
        ids = self.tokenizer(article, add_special_tokens=False)["input_ids"]
        if len(ids) <= budget:
            return article, len(ids), False
        keep = budget
        while True:  # decoding can merge tokens differently; shrink until it fits
            text = self.tokenizer.decode(ids[:keep], skip_special_tokens=True)
            n = self.count(text)
            if n <= budget or keep <= 1:
                return text, n, True
            keep -= n - budget

    def build(self, article: str) -> dict:
        text, _, truncated = self.truncate(article)
        prompt = self.render(text)
        budget = self.article_budget
        # Tokens can merge across the article's edges, so the whole prompt may come out over the
        # budget by a token or two: cut the article by the excess until the prompt fits.
        while (over := self.count(prompt) - self.max_prompt_tokens) > 0 and budget > 1:
            budget = max(1, budget - over)
            text, _, truncated = self.truncate(article, budget)
            prompt = self.render(text)
        return {"prompt": prompt, "article": text, "prompt_tokens": self.count(prompt), "truncated": truncated}


OVER_BUDGET = ("truncate", "skip", "fail")


def build_prompts(data: str, model_dir: str, output: str, template: str, max_prompt_tokens: int,
                  over_budget: str = "truncate", chat: bool = False, system: str | None = None) -> pd.DataFrame:
    """Write ``id, prompt, article, prompt_tokens, truncated`` for the articles of a split.

    ``article`` is the article as the prompt gives it (cut to the budget): the reference that
    scoring and the pairs check summaries against, since the model saw nothing past the cut.

    An article over the token budget is cut to fit (``truncate``), left out (``skip``; later
    steps see only the prompts' ids), or stops the run (``fail``).

    ``chat`` (prompt.chat): the prompt is the model's chat template rendered around the filled
    template, with ``system`` (prompt.system) as a system turn when set; a model without a chat
    template stops here, named (faithdpo.chat).
    """
    from faithdpo.models import load_tokenizer

    if over_budget not in OVER_BUDGET:
        raise ValueError(f"prompt.over_budget = {over_budget!r}; allowed: {', '.join(OVER_BUDGET)}")
    builder = PromptBuilder(load_tokenizer(model_dir), template, max_prompt_tokens, chat, system, model_dir)
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
