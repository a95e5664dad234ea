"""Pairs and report stages: summary quality beside faithfulness, so that fewer hallucinations
are not bought with empty or broken summaries: ROUGE against the highlights, length, empty and
degenerate outputs."""

from __future__ import annotations

import re
from collections import Counter

import pandas as pd

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
_WORDS = re.compile(r"\w+")
# A summary is degenerate when one word trigram occurs this often: the loops of a
# collapsing model ("the the the", a sentence repeated), rare in real highlights.
DEGENERATE_TRIGRAM_REPEATS = 3


def words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def is_degenerate(text: str) -> bool:
    tokens = words(text)
    trigrams = Counter(zip(tokens, tokens[1:], tokens[2:]))
    return bool(trigrams) and max(trigrams.values()) >= DEGENERATE_TRIGRAM_REPEATS


def is_failed(text) -> bool:
    """A summary that cannot count as clean: empty, punctuation only (no word character), or a
    loop (``is_degenerate``). Whatever the scorer finds in it, the evaluation counts it as a
    failure, and it is never the chosen side of a pair."""
    if not isinstance(text, str) or not _WORDS.search(text):
        return True
    return is_degenerate(text)


def rouge_f1(summaries: list[str], references: list[str]) -> pd.DataFrame:
    """ROUGE-1/2/L F1 of each summary against its reference (Porter stemming, as is usual)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    rows = [{k: v.fmeasure for k, v in scorer.score(ref, summ).items()} for summ, ref in zip(summaries, references)]
    return pd.DataFrame(rows, columns=list(ROUGE_TYPES))


def quality_table(summaries: pd.Series, references: pd.Series) -> pd.DataFrame:
    """Per-summary quality columns: rouge1/2/L, words, empty, degenerate."""
    summaries = summaries.fillna("").astype(str).reset_index(drop=True)
    table = rouge_f1(list(summaries), list(references.fillna("").astype(str)))
    table["words"] = summaries.map(lambda s: len(words(s)))
    table["empty"] = summaries.str.strip() == ""
    table["degenerate"] = summaries.map(is_degenerate)
    return table
