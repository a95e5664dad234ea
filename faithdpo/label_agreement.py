"""CLI: how the regex + NER flags agree with a person's labels (``faithdpo score --labels``).

Only the command line (cli.py) runs it: apart from scoring.py so that editing how agreement
is measured reruns no scoring step.
"""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from faithdpo.scoring import Scorer, ScoringConfig, entity_key, normalize_number

LABEL_FIELDS = ["hallucinated_entities", "hallucinated_numbers"]


def read_labelled(path: str) -> pd.DataFrame:
    """Rows of ``article``, ``summary`` (``highlights`` optional) and the hallucinated items a
    person marked, under the output's own column names: JSON Lines, or a YAML list (``.yaml``,
    ``.yml``) like tests/data/scoring_golden.yaml."""
    from faithdpo.io import read_jsonl, read_yaml_rows

    read = read_yaml_rows if str(path).endswith((".yaml", ".yml")) else read_jsonl
    rows = read(path, ["article", "summary", *LABEL_FIELDS], strings=["article", "summary"], lists=LABEL_FIELDS)
    if "highlights" not in rows.columns:
        rows["highlights"] = ""
    rows["highlights"] = rows["highlights"].fillna("")
    return rows


def flag_agreement(flagged: Iterable[list[str]], labelled: Iterable[list[str]], key) -> dict[str, float | None]:
    """Precision and recall of flagged items against labelled ones, and the rows (0-based) where
    they differ. Items are compared per summary
    by ``key`` (:func:`entity_key` or :func:`normalize_number`, so "5" matches "five"; an item
    without a key compares as written)."""
    correct = n_flagged = n_labelled = 0
    differ = []
    for row, (got, want) in enumerate(zip(flagged, labelled)):
        got, want = {key(x) or x for x in got}, {key(x) or x for x in want}
        correct, n_flagged, n_labelled = correct + len(got & want), n_flagged + len(got), n_labelled + len(want)
        if got != want:
            differ.append(row)
    return {
        "labelled": n_labelled, "flagged": n_flagged, "correct": correct,
        "precision": correct / n_flagged if n_flagged else None,
        "recall": correct / n_labelled if n_labelled else None,
        "differ": differ,
    }


def score_labelled(path: str, config: ScoringConfig = ScoringConfig()) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Score a labelled file (``faithdpo score --labels``); return the scored rows, with the
    labels as ``labelled_entities``/``labelled_numbers``, and the agreement of each kind of flag."""
    rows = read_labelled(path)
    if rows.empty:
        raise ValueError(f"{path}: no labelled rows")
    labels = rows[LABEL_FIELDS].rename(columns=lambda c: c.replace("hallucinated_", "labelled_"))
    scored = pd.concat([Scorer(config).score(rows.drop(columns=LABEL_FIELDS)), labels], axis=1)
    agreement = {
        "entities": flag_agreement(scored["hallucinated_entities"], scored["labelled_entities"], entity_key),
        "numbers": flag_agreement(scored["hallucinated_numbers"], scored["labelled_numbers"], normalize_number),
    }
    return scored, agreement
