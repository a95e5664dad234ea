"""Throughput of the checker step: (chunk, sentence) pairs and summaries per second.

Two models through faithdpo.checker's own code: the demo's committed tiny checker, and a
randomly initialised model of MiniCheck-RoBERTa-Large's shape (roberta-large: 24 layers, width
1024; its weights cannot be downloaded here, and the cost does not depend on them), on demo
articles and their highlights as summaries. Prints one Markdown table; run it on a GPU machine
and the large model runs there (float32, as MiniCheck's own inference loads it).

    python benchmarks/bench_checker.py [--summaries 64] [--large-summaries 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "demo" / "tiny-checker"


def large_checker_dir(path: Path) -> str:
    """MiniCheck-RoBERTa-Large's architecture with random weights, and the tiny checker's tokenizer
    (vocabulary size set to roberta-large's 50,265, so that the embedding costs what it does)."""
    import torch
    from transformers import AutoTokenizer, RobertaConfig, RobertaForSequenceClassification

    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                           intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1, num_labels=2,
                           pad_token_id=1, bos_token_id=0, eos_token_id=2)
    RobertaForSequenceClassification(config).save_pretrained(path, safe_serialization=True)
    AutoTokenizer.from_pretrained(TINY).save_pretrained(path)
    return str(path)


def measure(checker_dir: str, articles: list[str], summaries: list[str], batch_size: int, device: str) -> dict:
    from faithdpo.checker import load_checker, score_summaries, sentences

    checker = load_checker(checker_dir, device=device)
    pairs = sum(len(sentences(s)) * len(checker.chunks(a)) for a, s in zip(articles, summaries))
    score_summaries(checker, articles[:2], summaries[:2], batch_size)  # warm-up
    start = time.perf_counter()
    score_summaries(checker, articles, summaries, batch_size)
    seconds = time.perf_counter() - start
    return {"summaries": len(summaries), "pairs": pairs, "seconds": seconds}


def main() -> None:
    import torch

    from faithdpo.corpus import generate_corpus

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summaries", type=int, default=64, help="summaries for the tiny checker")
    parser.add_argument("--large-summaries", type=int, default=8, help="summaries for the large model")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    stories = generate_corpus(max(args.summaries, args.large_summaries), "bench-checker", 0)
    articles, summaries = list(stories["article"]), list(stories["highlights"])
    rows = [("tiny checker (demo/tiny-checker)", measure(str(TINY), articles[: args.summaries],
                                                          summaries[: args.summaries], args.batch_size, device))]
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("MiniCheck-RoBERTa-Large shape, random weights",
                     measure(large_checker_dir(Path(tmp)), articles[: args.large_summaries],
                             summaries[: args.large_summaries], args.batch_size, device)))
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; float32; batch size {args.batch_size}\n")
    print("| model | summaries | pairs | seconds | pairs/s | summaries/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, r in rows:
        print(f"| {label} | {r['summaries']} | {r['pairs']} | {r['seconds']:.2f} | {r['pairs'] / r['seconds']:.1f} | "
              f"{r['summaries'] / r['seconds']:.2f} |")


if __name__ == "__main__":
    main()
