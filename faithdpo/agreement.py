"""Report stage: how the checker and the regex + NER flags agree on the evaluation summaries.

A 2 x 2 table (regex + NER flagged or clean, the checker's unsupported or supported), Cohen's
kappa with a bootstrap interval over articles, and examples of each disagreement, so that a
reader sees what each catches. The two do not judge against the same evidence: regex + NER
accept an item found in the article or the reference highlights; the checker reads the article
alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CELLS = ("both", "regex_only", "checker_only", "neither")


def flags(scores: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per summary: ``regex`` (a hallucinated entity or number) and ``checker`` (support at most
    ``threshold``). An empty summary has neither flag: it claims nothing (support 1.0)."""
    regex = (scores["ent_hallucinations"] > 0) | (scores["num_hallucinations"] > 0)
    return pd.DataFrame({"id": scores["id"].to_numpy(), "regex": regex.to_numpy(),
                         "checker": (scores["support"] <= threshold).to_numpy()})


def table(regex: np.ndarray, checker: np.ndarray) -> dict[str, int]:
    regex, checker = np.asarray(regex, bool), np.asarray(checker, bool)
    return {"both": int((regex & checker).sum()), "regex_only": int((regex & ~checker).sum()),
            "checker_only": int((~regex & checker).sum()), "neither": int((~regex & ~checker).sum())}


def cohen_kappa(cells: dict[str, int]) -> float | None:
    """Cohen's kappa of a 2 x 2 table; None where it is undefined (both raters constant and equal)."""
    n = sum(cells.values())
    if n == 0:
        return None
    observed = (cells["both"] + cells["neither"]) / n
    regex_yes = (cells["both"] + cells["regex_only"]) / n
    checker_yes = (cells["both"] + cells["checker_only"]) / n
    expected = regex_yes * checker_yes + (1 - regex_yes) * (1 - checker_yes)
    return None if expected == 1 else (observed - expected) / (1 - expected)


def agreement(frames: list[pd.DataFrame], threshold: float, confidence: float, resamples: int, seed: int) -> dict:
    """The 2 x 2 table and kappa over every summary of ``frames`` (the base model's and each
    seed's scores with ``support``), kappa's interval a percentile bootstrap over articles (all of
    an article's summaries drawn together, since they share its evidence)."""
    flagged = pd.concat([flags(f, threshold) for f in frames], ignore_index=True)
    cells = table(flagged["regex"], flagged["checker"])
    ids, codes = np.unique(flagged["id"].to_numpy(), return_inverse=True)
    # per article, the count of summaries in each cell: a resample sums its articles' counts
    per_article = np.zeros((len(ids), 4))
    cell_of = np.select([flagged["regex"] & flagged["checker"], flagged["regex"], flagged["checker"]], [0, 1, 2], 3)
    np.add.at(per_article, (codes, cell_of), 1)
    rng = np.random.default_rng(seed)
    kappas = []
    for _ in range(resamples):
        counts = per_article[rng.integers(0, len(ids), len(ids))].sum(axis=0)
        k = cohen_kappa(dict(zip(CELLS, counts)))
        if k is not None:
            kappas.append(k)
    tail = 100 * (1 - confidence) / 2
    low, high = (np.percentile(kappas, [tail, 100 - tail]) if kappas else (None, None))
    return {"threshold": threshold, "summaries": len(flagged), "articles": len(ids), "table": cells,
            "kappa": cohen_kappa(cells), "kappa_low": None if low is None else float(low),
            "kappa_high": None if high is None else float(high)}


def disagreements(frame: pd.DataFrame, threshold: float, n: int) -> dict[str, list[dict]]:
    """Up to ``n`` summaries of each disagreement: the checker alone (lowest support first) and
    regex + NER alone (highest support first), one per article; ``frame`` may name each
    summary's ``model``."""
    f = flags(frame, threshold)
    out = {}
    for kind, mask, ascending in (("checker_only", ~f["regex"] & f["checker"], True),
                                  ("regex_only", f["regex"] & ~f["checker"], False)):
        picked = frame[mask.to_numpy()].sort_values(["support", "id"], ascending=[ascending, True])
        out[kind] = [{"id": row["id"], "model": row.get("model", ""), "summary": row["summary"],
                      "support": float(row["support"]), "sentences": int(row["sentences"]),
                      "weakest_sentence": row["weakest_sentence"],
                      "items": sorted(set(row["hallucinated_entities"]) | set(row["hallucinated_numbers"]))}
                     for _, row in picked.drop_duplicates("id").head(n).iterrows()]
    return out
