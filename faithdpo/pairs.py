"""Preference pairs for DPO: chosen = reference highlights, rejected = worst candidate.

Articles whose worst candidate has badness 0 are skipped: there is no hallucination
to push away from, and the pair would teach style alone.
"""

from __future__ import annotations

import logging

import pandas as pd

from faithdpo.io import read_parquet, write_parquet

log = logging.getLogger(__name__)

PAIR_COLUMNS = ["id", "prompt", "chosen", "rejected", "chosen_badness", "rejected_badness", "rejected_candidate"]
TOKEN_COLUMNS = ["chosen_tokens", "rejected_tokens"]


def completion(text: str) -> str:
    """A completion as it follows the prompt: one leading space, as generation produced it."""
    return " " + text.strip()


def worst_candidates(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per article: the candidate with the highest badness (ties: lowest index)."""
    ranked = scores.sort_values(["id", "badness", "candidate"], ascending=[True, False, True], kind="stable")
    return ranked.drop_duplicates("id", keep="first")


def build_pairs(scores: pd.DataFrame, prompts: pd.DataFrame, data: pd.DataFrame, min_badness: int = 1) -> pd.DataFrame:
    """Pair each article's highlights (chosen) with its worst candidate (rejected)."""
    worst = worst_candidates(scores)
    worst = worst[worst["badness"] >= min_badness]
    merged = (
        worst.merge(prompts[["id", "prompt"]], on="id", how="inner", validate="one_to_one")
        .merge(data[["id", "highlights"]], on="id", how="inner", validate="one_to_one")
    )
    order = {pid: i for i, pid in enumerate(data["id"])}
    merged = merged.sort_values("id", key=lambda s: s.map(order), kind="stable")
    return pd.DataFrame({
        "id": merged["id"],
        "prompt": merged["prompt"],
        "chosen": merged["highlights"].map(completion),
        "rejected": merged["summary"].map(completion),
        # The highlights are part of the reference, so they cannot hallucinate by definition.
        "chosen_badness": 0,
        "rejected_badness": merged["badness"].astype("int64"),
        "rejected_candidate": merged["candidate"].astype("int64"),
    }, columns=PAIR_COLUMNS).reset_index(drop=True)


def count_tokens(texts: pd.Series, tokenizer) -> pd.Series:
    """Token count of each completion under the policy's tokenizer (what DPO sees)."""
    if texts.empty:
        return pd.Series([], dtype="int64")
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return pd.Series([len(x) for x in ids], index=texts.index, dtype="int64")


def select_pairs(scores: str, prompts: str, data: str, model_dir: str, output: str, min_badness: int = 1) -> pd.DataFrame:
    """Read the candidate scores, write the DPO dataset (prompt/chosen/rejected) as parquet.

    The token lengths of both sides are stored too: the report uses them to show how far
    length alone could separate the pairs.
    """
    from faithdpo.models import load_tokenizer

    score_df = read_parquet(scores, ["id", "candidate", "summary", "badness"])
    pairs = build_pairs(score_df, read_parquet(prompts, ["id", "prompt"]),
                        read_parquet(data, ["id", "highlights"]), min_badness)
    tokenizer = load_tokenizer(model_dir)
    pairs["chosen_tokens"] = count_tokens(pairs["chosen"], tokenizer)
    pairs["rejected_tokens"] = count_tokens(pairs["rejected"], tokenizer)
    n_articles = score_df["id"].nunique()
    log.info("%d pairs from %d articles (%d skipped: worst candidate below badness %d)",
             len(pairs), n_articles, n_articles - len(pairs), min_badness)
    write_parquet(pairs, output)
    return pairs
