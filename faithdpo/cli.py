"""CLI: the ``faithdpo`` command line, which scores summaries outside the workflow.

``faithdpo score --input IN.jsonl --output OUT.jsonl`` runs the very functions the
DAG's score rules run, so a result checked by hand is the one the report uses.
``faithdpo score --labels FILE`` measures the scorer against a person's labels (label_agreement.py).
"""

from __future__ import annotations

import argparse
import logging
import sys

from faithdpo.io import write_jsonl
from faithdpo.label_agreement import score_labelled
from faithdpo.scoring import DEFAULT_NER_LABELS, ScoringConfig, hallucination_rates, score_jsonl


def _parser() -> argparse.ArgumentParser:
    description = "The ``faithdpo`` command line: score summaries outside the workflow."
    parser = argparse.ArgumentParser(prog="faithdpo", description=description)
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser(
        "score",
        help="score summaries for hallucinated entities and numbers",
        description="Input rows: id, article, highlights, summary. Output rows add entities, "
        "hallucinated_entities, numbers, hallucinated_numbers, ent_hallucinations, "
        "num_hallucinations and badness. With --labels, rows carry a person's hallucinated_entities "
        "and hallucinated_numbers, and the precision and recall of the scorer's flags are printed.",
    )
    score.add_argument("--input", help="JSON Lines file to score")
    score.add_argument("--output", help="JSON Lines file to write (atomically); with --labels, optional")
    score.add_argument("--labels", help="labelled file (JSON Lines, or a YAML list) to measure the scorer against")
    score.add_argument("--spacy-model", default=ScoringConfig.spacy_model)
    score.add_argument("--ner-labels", default=",".join(DEFAULT_NER_LABELS), help="comma-separated spaCy labels")
    score.add_argument("--number-pattern", default="default", help="default, seed, or a regular expression")
    score.add_argument("--weight-numbers", type=int, default=ScoringConfig.weight_numbers)
    score.add_argument("--weight-entities", type=int, default=ScoringConfig.weight_entities)
    score.add_argument("--batch-size", type=int, default=ScoringConfig.batch_size)
    score.add_argument("--n-process", type=int, default=ScoringConfig.n_process)
    return parser


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def report_agreement(path: str, scored, agreement: dict[str, dict]) -> None:
    """Print the precision/recall table and each summary where the flags and labels differ."""
    print(f"{len(scored)} labelled summaries in {path}")
    print(f"{'flags':<10}{'labelled':>10}{'flagged':>10}{'correct':>10}{'precision':>11}{'recall':>8}")
    for kind, a in agreement.items():
        print(f"{kind:<10}{a['labelled']:>10}{a['flagged']:>10}{a['correct']:>10}"
              f"{_ratio(a['precision']):>11}{_ratio(a['recall']):>8}")
    for kind, a in agreement.items():
        for i in a["differ"]:
            row = scored.iloc[i]
            print(f"row {i + 1} {kind}: flagged {sorted(row[f'hallucinated_{kind}'])}, "
                  f"labelled {sorted(row[f'labelled_{kind}'])}: {row['summary']!r}")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.labels and not (args.input and args.output):
        parser.error("score needs --input and --output, or --labels")
    if args.labels and args.input:
        parser.error("--labels replaces --input: the labelled file holds the texts")
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
        if args.labels:
            scored, agreement = score_labelled(args.labels, config)
            report_agreement(args.labels, scored, agreement)
            if args.output:
                write_jsonl(scored, args.output)
            return 0
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
