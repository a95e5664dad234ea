"""Shared fixtures: a tiny Qwen2 built on the synthetic corpus, loaded from a local path
through the same code as the real model, and one spaCy scorer per session."""

from __future__ import annotations

import pytest

from faithdpo.corpus import synthesize_split
from faithdpo.models import build_tiny_model
from workflow_helpers import DEMO, copy_workflow, snakemake

TEMPLATE = "Summarize the following news article.\n\nArticle: {article}\n\nSummary:"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A small, briefly trained Qwen2 directory (safetensors + tokenizer)."""
    root = tmp_path_factory.mktemp("tiny")
    corpus = root / "pretrain.parquet"
    synthesize_split(str(corpus), "pretrain", 96, seed=0)
    model_dir = root / "model"
    build_tiny_model(
        str(corpus), str(model_dir), TEMPLATE, seed=0, vocab_size=600, hidden_size=32, num_layers=1,
        num_heads=2, num_kv_heads=1, intermediate_size=64, epochs=1, batch_size=16, max_length=384,
    )
    return str(model_dir)


@pytest.fixture(scope="session")
def scorer():
    from faithdpo.scoring import Scorer

    return Scorer()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The demo DAG run once, from scratch, in a fresh copy of the workflow (read-only: copy to modify)."""
    work = copy_workflow(tmp_path_factory.mktemp("demo"))
    snakemake(work, "--cores", "2", *DEMO)
    return work
