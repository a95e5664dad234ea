"""Checker stage: a model-based consistency checker, the second opinion beside regex + NER.

The checker is a MiniCheck-class sequence classifier (MiniCheck-RoBERTa-Large or
-DeBERTa-v3-Large, Tang et al. 2024; FactCG-DeBERTa shares the label convention but not the
input format). It gives P(the claim is supported by the document). We follow MiniCheck's
published inference (github.com/Liyan06/MiniCheck, ``minicheck/inference.py`` at b58b9fa):

* **Chunking** (``chunk_text``, L17-26 and L112-143): the document is cut at line breaks, each
  block into sentences, and the sentences are packed greedily into chunks of at most
  ``chunk_tokens`` tokens of the checker's own tokenizer (400 for RoBERTa and DeBERTa), no
  overlap; a sentence longer than that is a chunk of its own.
* **Input** (L233, L248-254): chunk and claim joined by the tokenizer's EOS token
  (``<s>chunk</s>claim</s>`` for RoBERTa), truncated from the right to the model's window.
* **Score** (L211-218): softmax over the two logits, index 1 = supported, the maximum over
  the chunks; a claim is supported when that probability exceeds 0.5 (``minicheck.py`` L151).

Two differences, both stated in the docs: MiniCheck splits sentences with NLTK's punkt,
which it downloads at run time; we use spaCy's rule-based sentencizer (packaged, offline),
which splits on sentence-final punctuation and agrees with punkt on news prose but not on
every abbreviation. And MiniCheck scores one claim: it leaves multi-sentence claims to the
user and recommends splitting them; a summary here is split into sentences and its support
is the lowest of theirs, as MiniCheck's own LLM checker does (``LLMCheck``, L494-499): one
unsupported sentence makes the summary unsupported.

The checker judges each summary against the article as the prompt gave it (the highlights are
another summary, not evidence). The threshold is applied where the scores are read (report,
pairs), so that changing it never reruns this step.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from faithdpo.io import read_parquet, write_parquet
from faithdpo.models import check_model_dir, require_device

log = logging.getLogger(__name__)

# MiniCheck's chunk size for its RoBERTa and DeBERTa checkers, in the checker's tokens.
CHUNK_TOKENS = 400
# Columns a checker step writes beside the summaries' id and candidate index.
CHECK_COLUMNS = ["support", "sentences", "weakest_sentence"]


@lru_cache(maxsize=1)
def sentence_splitter():
    """spaCy's rule-based sentencizer on a blank English pipeline: no model, no download."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def sentences(text: str) -> list[str]:
    """The sentences of ``text``: line breaks first (news highlights are one per line), then
    spaCy's sentencizer within each line; blank ones dropped."""
    nlp = sentence_splitter()
    out = []
    for block in text.split("\n"):
        if block.strip():
            out += [s.text.strip() for s in nlp(block).sents if s.text.strip()]
    return out


def chunk_document(text: str, count_tokens, chunk_tokens: int = CHUNK_TOKENS) -> list[str]:
    """MiniCheck's chunking: sentences packed greedily into chunks of at most ``chunk_tokens``
    tokens (``count_tokens(sentence)``), line breaks kept; never empty (an empty document is
    one empty chunk, as MiniCheck's LLMCheck guards it)."""
    chunks, current, size = [], [], 0
    for b, block in enumerate(text.split("\n")):
        units = ([] if b == 0 else ["\n"]) + (sentences(block) if block.strip() else [])
        for unit in units:
            n = 0 if unit == "\n" else count_tokens(unit)
            if current and size + n > chunk_tokens:
                chunks.append(current)
                current, size = [], 0
            current.append(unit)
            size += n
    if current:
        chunks.append(current)
    cleaned = [" ".join(c).replace(" \n ", "\n").strip() for c in chunks]
    return [c for c in cleaned if c] or [""]


@dataclass
class Checker:
    """A loaded checker: tokenizer, model, and the window its inputs are cut to."""

    tokenizer: object
    model: object
    max_length: int
    chunk_tokens: int = CHUNK_TOKENS

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False, truncation=True,
                                  max_length=self.max_length)["input_ids"])

    def chunks(self, document: str) -> list[str]:
        return chunk_document(document, self.count_tokens, self.chunk_tokens)

    def support(self, pairs: list[tuple[str, str]], batch_size: int) -> np.ndarray:
        """P(supported) of each (chunk, claim) pair, in float64; batches sorted by length so
        that padding stays small, results returned in the given order."""
        import torch

        texts = [self.tokenizer.eos_token.join([chunk, claim]) for chunk, claim in pairs]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        probs = np.empty(len(texts), dtype=np.float64)
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                enc = self.tokenizer([texts[i] for i in idx], max_length=self.max_length, truncation=True,
                                     padding=True, return_tensors="pt").to(device)
                logits = self.model(**enc).logits.float()
                probs[idx] = torch.softmax(logits, dim=-1)[:, 1].double().cpu().numpy()
        return probs


def load_checker(path: str, device: str = "cpu", dtype: str = "float32", chunk_tokens: int = CHUNK_TOKENS) -> Checker:
    """Load a two-label sequence classifier and its tokenizer from ``path`` (safetensors only).

    The window is the model's position limit (RoBERTa: 514 positions, 2 of them offset, so 512),
    capped by the tokenizer's ``model_max_length`` where that is set.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    check_model_dir(path, "checker")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True, dtype=getattr(torch, dtype))
    if model.config.num_labels != 2:
        raise ValueError(
            f"checker {path} has {model.config.num_labels} labels; a MiniCheck-class checker has 2 "
            "(index 1 = supported)"
        )
    if tokenizer.eos_token is None:
        raise ValueError(f"checker {path}: its tokenizer has no EOS token to join document and claim with")
    model.to(device).eval()
    positions = getattr(model.config, "max_position_embeddings", None) or 512
    window = positions - 2 if model.config.model_type in ("roberta", "xlm-roberta") else positions
    tok_max = getattr(tokenizer, "model_max_length", None)
    if tok_max and tok_max < 1_000_000:
        window = min(window, tok_max)
    if chunk_tokens >= window:
        raise ValueError(f"checker {path}: chunks of {chunk_tokens} tokens leave no room for a claim "
                         f"in its {window}-token window")
    return Checker(tokenizer, model, window, chunk_tokens)


def score_summaries(checker: Checker, articles: list[str], summaries: list[str], batch_size: int) -> pd.DataFrame:
    """Each summary's support: per sentence the maximum over the article's chunks, then the
    minimum over the sentences. A summary with no sentence claims nothing: support 1.0, as
    regex + NER count it clean (the report counts such summaries as failures on their own)."""
    chunk_cache: dict[str, list[str]] = {}
    pairs, owner = [], []
    per_summary = []
    for i, (article, summary) in enumerate(zip(articles, summaries)):
        if article not in chunk_cache:
            chunk_cache[article] = checker.chunks(article)
        claims = sentences(summary)
        per_summary.append(claims)
        for s, claim in enumerate(claims):
            for chunk in chunk_cache[article]:
                pairs.append((chunk, claim))
                owner.append((i, s))
    probs = checker.support(pairs, batch_size) if pairs else np.empty(0)
    best: dict[tuple[int, int], float] = {}
    for key, p in zip(owner, probs):
        best[key] = max(best.get(key, -math.inf), float(p))
    rows = []
    for i, claims in enumerate(per_summary):
        scores = [best[(i, s)] for s in range(len(claims))]
        weakest = int(np.argmin(scores)) if scores else None
        rows.append({
            "support": min(scores) if scores else 1.0,
            "sentences": len(claims),
            "weakest_sentence": claims[weakest] if scores else "",
        })
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


def check_file(summaries: str, prompts: str, output: str, checker_dir: str, batch_size: int, device: str,
               chunk_tokens: int = CHUNK_TOKENS, rule: str = "check") -> pd.DataFrame:
    """Score a summaries parquet with the checker against the articles of its prompts; write
    ``id`` and ``candidate`` with :data:`CHECK_COLUMNS`."""
    found = require_device(device, rule)
    gen = read_parquet(summaries)
    keys = [c for c in ("id", "candidate") if c in gen.columns]
    refs = read_parquet(prompts, ["id", "article"])
    joined = gen[keys + ["summary"]].merge(refs, on="id", how="left", validate="many_to_one")
    if joined["article"].isna().any():
        raise ValueError(f"{summaries}: {int(joined['article'].isna().sum())} summaries have ids absent from {prompts}")
    checker = load_checker(checker_dir, device=found, dtype="float32", chunk_tokens=chunk_tokens)
    scores = score_summaries(checker, list(joined["article"]), list(joined["summary"].fillna("")), batch_size)
    out = pd.concat([joined[keys].reset_index(drop=True), scores], axis=1)
    write_parquet(out, output)
    log.info("checked %d summaries of %s with %s: mean support %.3f", len(out), summaries, checker_dir,
             out["support"].mean() if len(out) else float("nan"))
    return out
