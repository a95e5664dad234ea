"""Scoring speed: this implementation vs the original recipe's naive loop, on the same generated set.

The naive loop runs the full spaCy pipeline on the article and on the summary of every
candidate, one call each, as the seed did. This implementation runs NER only (plus the
tok2vec it listens to) on the summaries, batched with ``nlp.pipe``, and matches the
reference as text. Both apply the same matching rules, so their outputs must be equal:
the benchmark checks that before it prints the ratio. Each time includes loading the
model (startup), as a user's run does. A last line times the matching rules alone (reference
index, numbers in words and digits), which is what abbreviations, aliases, demonyms and
number words add on top of NER.

    python benchmarks/bench_scoring.py                  # 500 articles x 4 candidates
    python benchmarks/bench_scoring.py --articles 100   # quicker
"""

from __future__ import annotations

import argparse
import random
import re
import time

import pandas as pd

from faithdpo.corpus import CITIES, COUNTRIES, FIRST_NAMES, LAST_NAMES, generate_corpus
from faithdpo.scoring import (
    Scorer,
    ScoringConfig,
    doc_entities,
    entity_supported,
    extract_numbers,
    load_pipeline,
    normalize_number,
    reference_index,
    reference_number_values,
)

NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
CAPITALISED = re.compile(r"\b(?:" + "|".join(FIRST_NAMES + LAST_NAMES + CITIES + COUNTRIES) + r")\b")


def candidate_set(n_articles: int, k: int, seed: int = 0) -> pd.DataFrame:
    """K candidates per article: its highlights with some numbers and names swapped."""
    rng = random.Random(seed)
    rows = []
    for row in generate_corpus(n_articles, "validation", seed).itertuples():
        for c in range(k):
            summary = NUMBER.sub(lambda m: str(rng.randint(1, 3000)) if rng.random() < 0.3 else m.group(0),
                                 row.highlights)
            summary = CAPITALISED.sub(lambda m: rng.choice(CITIES) if rng.random() < 0.2 else m.group(0), summary)
            rows.append({"id": row.id, "candidate": c, "article": row.article, "highlights": row.highlights,
                         "summary": summary})
    return pd.DataFrame(rows)


def naive_score(frame: pd.DataFrame, nlp, config: ScoringConfig) -> list[tuple[list[str], list[str]]]:
    """The original recipe's loop: the full pipeline on every article and every summary, one at a time."""
    from faithdpo.scoring import compile_number_pattern

    pattern = compile_number_pattern(config.number_pattern)
    labels = frozenset(config.ner_labels)
    out = []
    for article, highlights, summary in zip(frame["article"], frame["highlights"], frame["summary"]):
        reference = f"{article}\n{highlights}"
        nlp(reference)  # the seed ran NER on the article for every candidate
        entities = doc_entities(nlp(summary), labels)
        index, values = reference_index(reference), reference_number_values(reference, pattern)
        out.append((
            [e for e, label in entities.items() if not entity_supported(e, index, label)],
            [n for n in extract_numbers(summary, pattern) if normalize_number(n) not in values],
        ))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=500)
    parser.add_argument("--candidates", type=int, default=4)
    args = parser.parse_args()

    frame = candidate_set(args.articles, args.candidates)
    config = ScoringConfig()

    started = time.perf_counter()
    scorer = Scorer(config)  # loads the model once, NER only
    fast = scorer.score(frame)
    fast_s = time.perf_counter() - started

    started = time.perf_counter()
    full = load_pipeline(config.spacy_model)  # every pipe enabled
    naive = naive_score(frame, full, config)
    naive_s = time.perf_counter() - started

    started = time.perf_counter()
    for reference in {f"{a}\n{h}" for a, h in zip(frame["article"], frame["highlights"])}:
        reference_index(reference)
        reference_number_values(reference, scorer.number_re)
    for summary in frame["summary"]:
        extract_numbers(summary, scorer.number_re)
    rules_s = time.perf_counter() - started

    same = all(
        list(f_e) == n_e and list(f_n) == n_n
        for (n_e, n_n), f_e, f_n in zip(naive, fast["hallucinated_entities"], fast["hallucinated_numbers"])
    )
    if not same:
        raise SystemExit("the two implementations disagree: the comparison would be meaningless")
    n = len(frame)
    print(f"{args.articles} articles x {args.candidates} candidates = {n} summaries (outputs identical)")
    print(f"{'implementation (with startup)':<32}{'seconds':>10}{'summaries/s':>14}")
    print(f"{'naive loop (seed)':<32}{naive_s:>10.2f}{n / naive_s:>14.1f}")
    print(f"{'faithdpo (nlp.pipe, NER)':<32}{fast_s:>10.2f}{n / fast_s:>14.1f}")
    print(f"speed-up: {naive_s / fast_s:.1f}x")
    print(f"matching rules alone: {rules_s:.2f} s ({100 * rules_s / fast_s:.0f}% of faithdpo's time)")


if __name__ == "__main__":
    main()
