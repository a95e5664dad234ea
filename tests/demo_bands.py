"""Demo tests only (tests/test_demo_bands.py): does a demo base model leave DPO room to move?

The bands the demo's world must hold. No rule or script uses them, so they live beside their
test, outside the package: no workflow step depends on them.

A measurement that has never seen a change proves nothing, so the demo's base model must
write readable summaries that hallucinate often but not always: then best-vs-worst pairs
exist, a more faithful model is within reach, and a change is there to be measured. The
bands are measured on sampled candidates of the train sample, as the pairs step sees them.
CPUs differ in floating point, so the tiny model built on another machine is another model:
``measure_tiny_model`` rebuilds it with another seed, a stand-in for another machine.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

# name -> (low, high), inclusive
BANDS = {
    "entity_rate": (0.25, 0.75),  # candidates with >= 1 hallucinated entity
    "number_rate": (0.25, 0.75),  # candidates with >= 1 hallucinated number
    "clean_article_share": (0.25, 1.0),  # train articles with a badness-0 candidate
    "degenerate_share": (0.0, 0.05),  # candidates that loop (quality.is_degenerate)
}


def candidate_bands(scores: pd.DataFrame) -> dict[str, float]:
    """The banded quantities of scored candidates (``id``, ``summary`` and the score columns)."""
    from faithdpo.quality import is_degenerate
    from faithdpo.scoring import hallucination_rates

    rates = hallucination_rates(scores)
    return {
        "entity_rate": rates["entity_rate"],
        "number_rate": rates["number_rate"],
        "clean_article_share": float((scores.groupby("id")["badness"].min() == 0).mean()),
        "degenerate_share": float(scores["summary"].map(is_degenerate).mean()),
    }


def outside_bands(measured: dict[str, float]) -> list[str]:
    """One line per quantity outside its band; empty when the world has headroom."""
    return [f"{name} = {measured[name]:.3f} outside [{low}, {high}]"
            for name, (low, high) in BANDS.items() if not low <= measured[name] <= high]


def measure_candidates(model_dir: str, data: pd.DataFrame, template: str, max_prompt_tokens: int,
                       generation: dict, seed: int) -> dict[str, float]:
    """Sample candidates of ``data``'s articles with ``model_dir`` as the demo does, score them, band them."""
    from faithdpo.generation import GenerationConfig, generate_summaries, load_engine
    from faithdpo.models import load_tokenizer
    from faithdpo.prompts import PromptBuilder
    from faithdpo.scoring import Scorer

    builder = PromptBuilder(load_tokenizer(model_dir), template, max_prompt_tokens)
    prompts = pd.DataFrame([{"id": i, **builder.build(a)} for i, a in zip(data["id"], data["article"])])
    config = GenerationConfig(**generation, do_sample=True, seed=seed)
    summaries = generate_summaries(load_engine(model_dir, config), prompts, config)
    scores = Scorer().score(summaries.merge(data, on="id", validate="many_to_one"))
    return candidate_bands(scores)


def measure_tiny_model(workdir: str, model_seed: int, demo: dict) -> dict[str, float]:
    """Build the demo's tiny model with ``model_seed`` (corpus and sample as in ``demo``, the
    merged demo config) in ``workdir`` and band its candidates on the demo's train sample."""
    from faithdpo.corpus import generate_corpus, synthesize_split
    from faithdpo.data import sample_rows
    from faithdpo.tiny_model import build_tiny_model

    seed, synthetic = demo["seed"], demo["data"]["synthetic"]
    pretrain = Path(workdir) / "pretrain.parquet"
    synthesize_split(str(pretrain), "pretrain", synthetic["pretrain"], seed)
    model_dir = Path(workdir) / f"tiny-seed{model_seed}"
    build_tiny_model(str(pretrain), str(model_dir), demo["prompt"]["template"], seed=model_seed,
                     max_length=demo["training"]["max_length"], **demo["model"]["tiny"])
    train = sample_rows(generate_corpus(synthetic["train"], "train", seed), demo["data"]["n_train"], seed)
    measured = measure_candidates(str(model_dir), train, demo["prompt"]["template"],
                                  demo["prompt"]["max_prompt_tokens"], candidate_generation(demo), seed)
    log.info("tiny model, seed %d: %s", model_seed, measured)
    return measured


def candidate_generation(cfg: dict) -> dict:
    """The candidate sampling settings of a (merged) config, as generation.GenerationConfig takes them."""
    gen = cfg["generation"]
    keys = ("max_new_tokens", "batch_size", "max_batch_tokens", "stop_strings")
    return {**{k: gen[k] for k in keys if k in gen}, **gen["candidates"]}
