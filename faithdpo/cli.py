"""The ``faithdpo`` command line: score summaries outside the workflow.

``faithdpo score --input IN.jsonl --output OUT.jsonl`` runs the very functions the
DAG's score rules run, so a result checked by hand is the one the report uses.
"""

from __future__ import annotations

import argparse
import logging
import sys

from faithdpo.scoring import DEFAULT_NER_LABELS, ScoringConfig, hallucination_rates, score_jsonl


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faithdpo", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser(
        "score",
        help="score summaries for hallucinated entities and numbers",
        description="Input rows: id, article, highlights, summary. Output rows add entities, "
        "hallucinated_entities, numbers, hallucinated_numbers, ent_hallucinations, "
        "num_hallucinations and badness.",
    )
    score.add_argument("--input", required=True, help="JSON Lines file to score")
    score.add_argument("--output", required=True, help="JSON Lines file to write (atomically)")
    score.add_argument("--spacy-model", default=ScoringConfig.spacy_model)
    score.add_argument("--ner-labels", default=",".join(DEFAULT_NER_LABELS), help="comma-separated spaCy labels")
    score.add_argument("--number-pattern", default="default", help="default, seed, or a regular expression")
    score.add_argument("--weight-numbers", type=int, default=ScoringConfig.weight_numbers)
    score.add_argument("--weight-entities", type=int, default=ScoringConfig.weight_entities)
    score.add_argument("--batch-size", type=int, default=ScoringConfig.batch_size)
    score.add_argument("--n-process", type=int, default=ScoringConfig.n_process)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = ScoringConfig(
        spacy_model=args.spacy_model,
        ner_labels=tuple(label.strip() for label in args.ner_labels.split(",") if label.strip()),
        number_pattern=args.number_pattern,
        weight_numbers=args.weight_numbers,
        weight_entities=args.weight_entities,
        batch_size=args.batch_size,
        n_process=args.n_process,
    )
    try:
        scored = score_jsonl(args.input, args.output, config)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"faithdpo score: error: {exc}", file=sys.stderr)
        return 2
    if len(scored):
        rates = hallucination_rates(scored)
        print(
            f"{rates['n']} summaries: entity hallucination rate {100 * rates['entity_rate']:.1f}%, "
            f"number hallucination rate {100 * rates['number_rate']:.1f}%"
        )
    else:
        print("0 summaries: no rates to report")
    return 0


if __name__ == "__main__":
    sys.exit(main())
