"""Shared fixtures: a tiny Qwen2 built on the synthetic corpus, loaded from a local path
through the same code as the real model, and one spaCy scorer per session."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from faithdpo.corpus import synthesize_split
from faithdpo.tiny_model import build_tiny_model
from workflow_helpers import DEMO, TEST, copy_workflow, snakemake

TEMPLATE = "Summarize the following news article.\n\nArticle: {article}\n\nSummary:"
# `pytest -m "not slow"` is the inner loop: every test that runs a workflow (through the shared
# finished runs below) and every tier that .ci/run runs apart counts as slow, marked or not.
SLOW_TIERS = {"demo", "gpu_check", "cluster", "seedbands"}
WORKFLOW_RUNS = {"test_run", "demo_run"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_TIERS & {mark.name for mark in item.iter_markers()} or WORKFLOW_RUNS & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A small, briefly trained Qwen2 directory (safetensors + tokenizer). Its layer sizes are
    multiples of 64 and 32, which bitsandbytes' 4-bit kernel needs on some CPUs (models.py)."""
    root = tmp_path_factory.mktemp("tiny")
    corpus = root / "pretrain.parquet"
    synthesize_split(str(corpus), "pretrain", 96, seed=0)
    model_dir = root / "model"
    build_tiny_model(
        str(corpus), str(model_dir), TEMPLATE, seed=0, vocab_size=600, hidden_size=64, num_layers=1,
        num_heads=2, num_kv_heads=1, intermediate_size=128, epochs=1, batch_size=16, max_length=384,
    )
    return str(model_dir)


@pytest.fixture(scope="session")
def scorer():
    from faithdpo.scoring import Scorer

    return Scorer()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The demo DAG run once, from scratch, in a fresh copy of the workflow (read-only: copy to modify).
    Only the tests of what the Quickstart promises use it; the others use ``test_run``."""
    work = copy_workflow(tmp_path_factory.mktemp("demo"))
    snakemake(work, "--cores", "2", *DEMO)
    return work


@pytest.fixture(scope="session")
def test_run(tmp_path_factory):
    """The small test config (.test/config.yaml) run once from scratch (read-only: copy to modify),
    with an import probe that records which jobs import torch, transformers, trl or peft
    (``imports.tsv`` in the run's folder, see tests/import_probe)."""
    work = copy_workflow(tmp_path_factory.mktemp("test"))
    path = [str(Path(__file__).parent / "import_probe"), os.environ.get("PYTHONPATH")]
    probe = {"FAITHDPO_IMPORT_PROBE": str(work / "imports.tsv"), "PYTHONPATH": os.pathsep.join(filter(None, path))}
    snakemake(work, "--cores", "2", *TEST, env=probe)
    return work


REPORT_N = 30


def fixture_scores(ent, num, summaries, kept=None):
    """Score columns as the scorer writes them: ``ent``/``num`` hallucinated items per summary (at
    most 1 entity, 2 numbers), each summary also naming the supported "Bergen"; the highlights name "Bergen" and "5", which a
    summary keeps where ``kept`` (default: none) says so."""
    kept = kept or [False] * REPORT_N
    return pd.DataFrame({
        "id": [f"a{i}" for i in range(REPORT_N)], "candidate": 0, "summary": summaries,
        "entities": [["Oslo"] * min(e, 1) + ["Bergen"] for e in ent],
        "hallucinated_entities": [["Oslo"] * e for e in ent],
        "numbers": [["99", "98"][:n] for n in num], "hallucinated_numbers": [["99", "98"][:n] for n in num],
        "ent_hallucinations": ent, "num_hallucinations": num,
        "target_entities": [["Bergen"]] * REPORT_N, "kept_entities": [["Bergen"] if k else [] for k in kept],
        "target_numbers": [["5"]] * REPORT_N, "kept_numbers": [[] for _ in kept],
    })


# numbers of the report fixture: unchanged by DPO (the default), or fewer under DPO
SAME_NUMBERS = ([1] * 10 + [0] * 20, [1] * 10 + [0] * 20)
FEWER_NUMBERS = ([2, 2, 2, 1, 1, 1, 1, 1, 1, 1] + [0] * 20, [0] * 7 + [1, 1, 2] + [1] + [0] * 19)


def write_split_checks(path, split, valid, bad, ids, truncated=0):
    """The data stats and prompts files of one split, as prepare_split and build_prompts write them."""
    from faithdpo.io import write_json, write_parquet

    stats, prompts = str(path / f"{split}.stats.json"), str(path / f"{split}.prompts.parquet")
    write_json({"split": split, "source": "raw", "valid_rows": valid, "sampled": REPORT_N, "skipped": bad}, stats)
    write_parquet(pd.DataFrame({"id": ids, "truncated": [True] * truncated + [False] * (len(ids) - truncated)}),
                  prompts)
    return stats, prompts


def fixture_checks(scores, support):
    """The checker's file of a fixture model's summaries: ``support`` per summary, as check_eval writes it."""
    return pd.DataFrame({"id": scores["id"], "candidate": 0, "support": [float(v) for v in support],
                         "sentences": 1, "weakest_sentence": scores["summary"]})


def build_fixture_report(path, numbers=SAME_NUMBERS, alpha=0.05, extra_seeds=(), reverse_dpo=False,
                         highlights="Rain in Bergen .", supports=None, threshold=0.5):
    """A report built from small fixture files in ``path``; ``numbers``: the base and DPO number counts.
    Training seed 0's DPO model is the fixture's; ``extra_seeds``: (seed, DPO scores) of more seeds;
    ``reverse_dpo``: the DPO files' rows in reverse order; ``highlights``: one for every article, or a list;
    ``supports``: the checker's support of the base model's and of each seed's summaries (checker on)."""
    from faithdpo.io import write_json, write_parquet
    from faithdpo.pairs import selection_summary
    from faithdpo.report import build_report

    # base: every summary invents a place; DPO fixes 20 of them
    base = fixture_scores([1] * REPORT_N, numbers[0], ["Rain in Oslo, 99 mm."] * REPORT_N)
    dpo = fixture_scores([0] * 20 + [1] * 10, numbers[1], ["Rain fell, 99 mm."] * 20 + ["Rain in Oslo, 99 mm."] * 10)
    data = pd.DataFrame({"id": base["id"], "article": "Rain fell in Bergen.", "highlights": highlights})
    pairs = pd.DataFrame({"id": ["p"] * 10, "chosen_tokens": [5] * 10, "rejected_tokens": [9] * 10,
                          "chosen_badness": 0, "rejected_badness": [2] * 10})
    history = [{"loss": 0.69 - 0.06 * i, "step": i + 1, "rewards/accuracies": 1.0, "rewards/margins": 0.1 * i,
                "logps/chosen": -10.0 - i, "logps/rejected": -11.0 - 2 * i} for i in range(8)]
    dpos = [(s, f.iloc[::-1] if reverse_dpo else f) for s, f in [(0, dpo), *extra_seeds]]
    for name, frame in [("base", base), ("data", data), ("pairs", pairs)] + [(f"dpo{s}", f) for s, f in dpos]:
        write_parquet(frame, path / f"{name}.parquet")
    for s, _ in dpos:
        write_json(history, path / f"history{s}.json")
    # the train split lost 3 rows to data.on_bad_row, the validation split 4 with empty highlights;
    # 2 validation articles were cut to the prompt budget
    checks = [write_split_checks(path, "train", 97, {"duplicate_id": 2, "empty_or_non_string_article": 1},
                                 base["id"]),
              write_split_checks(path, "validation", 96, {"duplicate_id": 0, "empty_or_non_string_highlights": 4},
                                 base["id"], truncated=2)]
    write_json(selection_summary("highlights_vs_worst", 12, 11, {"no candidate": 1}, {"duplicate": 1}, 10, 8),
               path / "selection.json")
    checker = {}
    if supports is not None:
        models = [("base", base, supports[0])] + [(f"dpo{s}", f, v) for (s, f), v in zip(dpos, supports[1:])]
        for name, frame, support in models:
            write_parquet(fixture_checks(frame, support), path / f"check_{name}.parquet")
        checker = {"checks_base": [str(path / "check_base.parquet")],
                   "checks_dpo": [str(path / f"check_dpo{s}.parquet") for s, _ in dpos], "checker_threshold": threshold}
    return build_report(str(path / "base.parquet"), [str(path / f"dpo{s}.parquet") for s, _ in dpos],
                        str(path / "data.parquet"), str(path / "pairs.parquet"),
                        [str(path / f"history{s}.json") for s, _ in dpos], str(path / "report.md"),
                        str(path / "m.json"), str(path / "figures"), config={"model": {"name": "tiny"}},
                        data_stats=[stats for stats, _ in checks], prompts=[prompts for _, prompts in checks],
                        selection=str(path / "selection.json"), alpha=alpha, n_examples=2,
                        seeds=[s for s, _ in dpos], **checker)


@pytest.fixture(scope="session")
def _fixture_report(tmp_path_factory):
    """The fixture report, built once per session (its figures take most of a second): see report_dir."""
    path = tmp_path_factory.mktemp("report")
    return path, build_fixture_report(path)


@pytest.fixture
def report_dir(_fixture_report, tmp_path):
    """A report built from small fixture files, numbers unchanged by DPO (test_report, test_comparison):
    a copy of the session's, so that a test may add to it or change it."""
    import copy
    import shutil

    built, metrics = _fixture_report
    shutil.copytree(built, tmp_path, dirs_exist_ok=True)
    return tmp_path, copy.deepcopy(metrics)


def build_untrained_report(path, alpha=0.05):
    """The report of ``path``'s run (build_fixture_report), had its experiment had 3 pairs below
    pairs.min_pairs 8: no DPO model. Written to ``path``/untrained."""
    from faithdpo.io import read_parquet, write_json, write_parquet
    from faithdpo.pairs import selection_summary
    from faithdpo.report import build_report

    out = path / "untrained"
    write_json(selection_summary("best_vs_worst", 30, 4, {"no badness-0 candidate": 25, "no candidate with a "
                                 "hallucination": 1}, {"below_min_margin": 1}, 3, 8), path / "selection3.json")
    write_parquet(read_parquet(path / "pairs.parquet").head(3), path / "pairs3.parquet")
    stats = sorted(str(p) for p in path.glob("*.stats.json"))
    prompts = sorted(str(p) for p in path.glob("*.prompts.parquet"))
    metrics = build_report(str(path / "base.parquet"), [], str(path / "data.parquet"), str(path / "pairs3.parquet"),
                           [], str(out / "report.md"), str(out / "m.json"), str(out / "figures"),
                           config={"model": {"name": "tiny"}, "experiment": "bvw", "pairs": {"strategy": "best_vs_worst"}}, data_stats=stats,
                           prompts=prompts, selection=str(path / "selection3.json"), alpha=alpha)
    return out, metrics


@pytest.fixture
def untrained_report_dir(report_dir):
    """The same run, but its experiment had 3 pairs below pairs.min_pairs 8: no DPO model."""
    return build_untrained_report(report_dir[0])
