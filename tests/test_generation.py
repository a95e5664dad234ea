import os
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest

from conftest import TEMPLATE
from faithdpo import generation
from faithdpo.corpus import generate_corpus
from faithdpo.generation import (
    Engine,
    GenerationConfig,
    cut_at_stop,
    generate_file,
    merge_shards,
    parse_shard,
    plan_batches,
)
from faithdpo.io import write_parquet

SAMPLING = dict(num_return_sequences=3, do_sample=True, temperature=1.0, top_p=0.95, max_new_tokens=24, seed=0)


def write_prompts(path: Path, n: int) -> Path:
    df = generate_corpus(n, "validation", seed=0)
    write_parquet(pd.DataFrame({"id": df["id"], "prompt": [TEMPLATE.replace("{article}", a) for a in df["article"]]}),
                  path)
    return path


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    return write_prompts(tmp_path_factory.mktemp("gen") / "prompts.parquet", 6)


def test_cut_at_stop():
    assert cut_at_stop(" Summary one.\n\nArticle: next", ["\n\n"]) == "Summary one."
    assert cut_at_stop("a|b#c", ["#", "|"]) == "a"
    assert cut_at_stop(" plain ", []) == "plain"
    # leading whitespace is stripped before the cut (for text generated past an opening newline)
    assert cut_at_stop("\n\nRain fell.\n\nArticle: x", ["\n\n"]) == "Rain fell."
    assert cut_at_stop(" \n\n", ["\n\n"]) == ""


def test_tokens_to_stop_counts_the_summary_not_what_follows(tiny_model_dir):
    from faithdpo.generation import tokens_to_stop
    from faithdpo.models import load_tokenizer

    tok = load_tokenizer(tiny_model_dir)
    decode = lambda seq: tok.decode(seq)  # noqa: E731
    summary, rest = tok(" Rain fell in Oslo.\n\n")["input_ids"], tok("Article: more text here")["input_ids"]
    assert tokens_to_stop(decode, summary + rest, ["\n\n"]) == len(summary)
    assert tokens_to_stop(decode, summary + rest, []) == len(summary + rest)
    assert tokens_to_stop(decode, rest, ["\n\n"]) == len(rest)
    lead = tok("\n\n")["input_ids"]  # an opening stop string is whitespace, not the stop
    assert tokens_to_stop(decode, lead + summary + rest, ["\n\n"]) == len(lead + summary)


def test_hf_engine_stops_generating_at_the_stop_string(tiny_model_dir, prompts, monkeypatch):
    """The stop criteria reach generate, built once per engine (not at each batch: that reads and
    sorts the whole vocabulary), so a row ends at its stop and new_tokens counts the summary's
    tokens, not everything up to max_new_tokens."""
    import transformers

    from faithdpo.generation import HFEngine

    texts = list(pd.read_parquet(prompts)["prompt"])
    ids = [str(i) for i in range(len(texts))]
    free = HFEngine(tiny_model_dir, GenerationConfig(max_new_tokens=48, stop_strings=[])).generate(ids, texts)
    built, criteria = [], transformers.StopStringCriteria
    monkeypatch.setattr(transformers, "StopStringCriteria", lambda *a, **kw: built.append(a) or criteria(*a, **kw))
    engine = HFEngine(tiny_model_dir, GenerationConfig(max_new_tokens=48, stop_strings=["."]))
    seen, generate = {}, engine.model.generate
    monkeypatch.setattr(engine.model, "generate", lambda **kw: seen.update(kw) or generate(**kw))
    stopped = engine.generate(ids, texts)
    engine.generate(ids[:1], texts[:1])  # a second batch of the same job
    assert len(built) == 1 and "stop_strings" not in seen
    assert [type(c).__name__ for c in seen["stopping_criteria"]] == ["StopStringCriteria"]
    assert sum("." in r["summary"] for r in free) >= len(free) // 2, "the tiny model must end sentences"
    for row_free, row in zip(free, stopped):
        assert row["summary"] == cut_at_stop(row_free["summary"], ["."])
        if "." in row_free["summary"]:
            assert 0 < row["new_tokens"] < row_free["new_tokens"]


def test_both_engines_sample_with_the_configured_top_k():
    from faithdpo.generation import hf_sampling, vllm_sampling

    cfg = GenerationConfig(**SAMPLING)
    assert hf_sampling(cfg)["top_k"] == 50 and vllm_sampling(cfg, "a")["top_k"] == 50
    off = GenerationConfig(**{**SAMPLING, "top_k": 0})
    assert hf_sampling(off)["top_k"] == 0 and vllm_sampling(off, "a")["top_k"] == -1  # each engine's "off"
    greedy = GenerationConfig()
    assert hf_sampling(greedy)["top_k"] is None and vllm_sampling(greedy, "a")["temperature"] == 0.0


def test_top_k_reaches_generate(tiny_model_dir, prompts, tmp_path):
    """top_k 1 leaves one token to sample: K samples equal the greedy summary."""
    greedy = generate_file(str(prompts), tiny_model_dir, str(tmp_path / "g.parquet"), max_new_tokens=16)
    top1 = generate_file(str(prompts), tiny_model_dir, str(tmp_path / "k.parquet"),
                         **{**SAMPLING, "max_new_tokens": 16, "top_k": 1})
    assert list(top1["summary"]) == [s for s in greedy["summary"] for _ in range(3)]


def test_vllm_gets_hundreds_of_prompts_per_call():
    assert GenerationConfig(engine="vllm").prompts_per_batch == 256
    assert GenerationConfig(engine="vllm", vllm_batch_size=512, batch_size=4).prompts_per_batch == 512
    assert GenerationConfig(batch_size=4).prompts_per_batch == 4


def test_batches_are_sorted_by_length_and_capped_by_rows_and_tokens():
    lengths = [10, 50, 30, 50, 20]
    assert plan_batches(lengths, batch_size=2) == [[1, 3], [2, 4], [0]]
    # budget: rows x K x (longest + new); 2 x 1 x (50 + 10) = 120 fits, 3 rows would not
    assert plan_batches(lengths, batch_size=8, max_batch_tokens=120, max_new_tokens=10) == [[1, 3], [2, 4, 0]]
    # K multiplies the padded size; a prompt over the budget still gets its own batch
    assert plan_batches(lengths, batch_size=8, max_batch_tokens=120, num_return_sequences=2,
                        max_new_tokens=10) == [[1], [3], [2], [4, 0]]
    assert plan_batches(lengths, batch_size=8, max_batch_tokens=50, max_new_tokens=10) == [[1], [3], [2], [4], [0]]
    assert sorted(i for b in plan_batches(lengths, 3) for i in b) == list(range(5))


def test_parse_shard():
    assert parse_shard("1-of-1") == (0, 1)
    assert parse_shard("3-of-4") == (2, 4)
    for bad in ("0-of-2", "3-of-2", "two"):
        with pytest.raises(ValueError, match="i-of-n"):
            parse_shard(bad)


def test_k_sampled_candidates_per_article_in_input_order(tiny_model_dir, prompts, tmp_path):
    out = generate_file(str(prompts), tiny_model_dir, str(tmp_path / "a.parquet"), batch_size=4, **SAMPLING)
    ids = list(pd.read_parquet(prompts)["id"])
    assert list(out["id"]) == [i for i in ids for _ in range(3)]
    assert list(out["candidate"]) == [0, 1, 2] * len(ids)
    assert (out["new_tokens"] <= 24).all() and (out["prompt_tokens"] > 0).all()
    assert out["summary"].map(lambda s: isinstance(s, str)).all()
    # samples differ from one another, and the same seed gives the same file
    assert out.groupby("id")["summary"].nunique().max() > 1
    again = generate_file(str(prompts), tiny_model_dir, str(tmp_path / "b.parquet"), batch_size=4, **SAMPLING)
    pd.testing.assert_frame_equal(out, again)
    assert pd.read_parquet(tmp_path / "a.parquet").equals(out)
    assert not list(tmp_path.glob(".*.progress")), "progress is removed once the output is written"


def test_the_seed_sets_the_samples(tiny_model_dir, prompts, tmp_path):
    """Another seed draws other samples, and the same one again the same (the other tests use seed 0)."""
    seeded = {**SAMPLING, "seed": 7}
    first = generate_file(str(prompts), tiny_model_dir, str(tmp_path / "a.parquet"), batch_size=4, **seeded)
    again = generate_file(str(prompts), tiny_model_dir, str(tmp_path / "b.parquet"), batch_size=4, **seeded)
    seed0 = generate_file(str(prompts), tiny_model_dir, str(tmp_path / "c.parquet"), batch_size=4, **SAMPLING)
    pd.testing.assert_frame_equal(first, again)
    assert list(first["summary"]) != list(seed0["summary"])


def test_greedy_output_does_not_depend_on_batching(tiny_model_dir, prompts, tmp_path):
    one = generate_file(str(prompts), tiny_model_dir, str(tmp_path / "one.parquet"), max_new_tokens=16, batch_size=1)
    many = generate_file(str(prompts), tiny_model_dir, str(tmp_path / "six.parquet"), max_new_tokens=16, batch_size=6,
                         max_batch_tokens=4000)
    assert list(one["candidate"]) == [0] * 6
    assert list(one["summary"]) == list(many["summary"])


def test_merged_shards_equal_the_unsharded_run(tiny_model_dir, prompts, tmp_path):
    whole = generate_file(str(prompts), tiny_model_dir, str(tmp_path / "whole.parquet"), batch_size=2, **SAMPLING)
    shards = [str(tmp_path / f"s{i}.parquet") for i in (1, 2, 3)]
    parts = [generate_file(str(prompts), tiny_model_dir, path, shard=f"{i}-of-3", batch_size=2, **SAMPLING)
             for i, path in zip((1, 2, 3), shards)]
    assert all(len(p) for p in parts) and sum(len(p) for p in parts) == len(whole)
    merged = merge_shards(str(prompts), shards[::-1], str(tmp_path / "merged.parquet"), num_return_sequences=3)
    pd.testing.assert_frame_equal(merged, whole)


def test_merge_refuses_shards_that_miss_prompts(tiny_model_dir, prompts, tmp_path):
    shard = str(tmp_path / "s1.parquet")
    generate_file(str(prompts), tiny_model_dir, shard, shard="1-of-2", batch_size=2, max_new_tokens=4)
    with pytest.raises(ValueError, match=r"do not cover .* without exactly 1 summaries"):
        merge_shards(str(prompts), [shard], str(tmp_path / "merged.parquet"))
    assert not (tmp_path / "merged.parquet").exists()


def test_bad_settings_stop_before_loading(tiny_model_dir, prompts, tmp_path):
    with pytest.raises(ValueError, match="num_return_sequences > 1 needs sampling"):
        generate_file(str(prompts), tiny_model_dir, str(tmp_path / "x.parquet"), num_return_sequences=2)
    with pytest.raises(ValueError, match="generation.engine = 'tgi'; allowed: hf, vllm"):
        GenerationConfig(engine="tgi")
    assert not (tmp_path / "x.parquet").exists()


def test_vllm_engine_without_vllm_says_how_to_install(tiny_model_dir, prompts, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # an import of vllm now fails, installed or not
    with pytest.raises(RuntimeError, match=r"vLLM is not installed: `pip install 'faithdpo\[vllm\]'`"):
        generate_file(str(prompts), tiny_model_dir, str(tmp_path / "v.parquet"), engine="vllm", max_new_tokens=4)


def test_nf4_generation_on_the_cpu(tiny_model_dir, prompts, tmp_path, monkeypatch):
    """The summaries come from 4-bit NF4 weights, not from the full-precision model."""
    engines = []
    load = generation.load_engine
    monkeypatch.setattr(generation, "load_engine", lambda *args: engines.append(load(*args)) or engines[-1])
    out = generate_file(str(prompts), tiny_model_dir, str(tmp_path / "q.parquet"), quantization="nf4",
                        max_new_tokens=8, batch_size=3)
    assert len(out) == 6 and (out["new_tokens"] <= 8).all()
    four_bit = [m for m in engines[0].model.modules() if type(m).__name__ == "Linear4bit"]
    assert len(four_bit) == 7  # 1 layer x (q, k, v, o, gate, up, down)
    assert all(m.weight.quant_state.quant_type == "nf4" for m in four_bit)


RUN = """
import sys
from faithdpo.generation import generate_file
from faithdpo.logs import setup_logging
setup_logging(sys.argv[4])
generate_file(sys.argv[1], sys.argv[2], sys.argv[3], batch_size=1, **{params!r})
"""


@pytest.mark.slow  # a generation process, killed and restarted
def test_killed_generation_resumes_and_equals_an_uninterrupted_run(tiny_model_dir, tmp_path):
    prompts = write_prompts(tmp_path / "prompts.parquet", 24)
    params = {**SAMPLING, "max_new_tokens": 48}
    out = tmp_path / "out.parquet"
    script = RUN.format(params=params)
    args = [sys.executable, "-c", script, str(prompts), tiny_model_dir, str(out)]
    progress = tmp_path / ".out.parquet.progress"
    proc = subprocess.Popen([*args, str(tmp_path / "first.log")])
    deadline = time.time() + 300
    while len(list(progress.glob("batch-*.parquet"))) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done_before = len(list(progress.glob("batch-*.parquet")))
    assert 3 <= done_before < 24, "the kill must land mid-way for this test to mean anything"
    assert not out.exists(), "a killed job leaves no output that looks complete"

    subprocess.run([*args, str(tmp_path / "second.log")], check=True)
    log = (tmp_path / "second.log").read_text()
    assert f"resuming: {done_before} of 24 batches already done" in log
    assert f"24 prompts in 24 batches ({24 - done_before} to run)" in log
    assert not progress.exists()
    reference = generate_file(str(prompts), tiny_model_dir, str(tmp_path / "ref.parquet"), batch_size=1, **params)
    pd.testing.assert_frame_equal(pd.read_parquet(out), reference)


class CountingEngine(Engine):
    """A stand-in for the model: counts the prompts it is asked to summarize."""

    def __init__(self, config: GenerationConfig):
        self.config, self.prompts = config, 0

    def count_tokens(self, prompts):
        return [len(p) for p in prompts]

    def generate(self, ids, prompts):
        self.prompts += len(ids)
        return [{"id": i, "candidate": k, "summary": "s", "prompt_tokens": 1, "new_tokens": 1}
                for i in ids for k in range(self.config.num_return_sequences)]


BASE_SETTINGS = dict(do_sample=True, max_new_tokens=8, batch_size=2)
CHANGED = {"num_return_sequences": 2, "do_sample": False, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 16,
           "batch_size": 3, "max_batch_tokens": 4000, "seed": 1, "stop_strings": ["\n"], "engine": "vllm",
           "quantization": "nf4", "trust_remote_code": True, "shard": "2-of-2", "top_k": 5, "vllm_batch_size": 64,
           "dtype": "bfloat16", "chat": True}


def test_every_setting_is_checked_against_the_progress():
    assert set(CHANGED) == {f.name for f in fields(GenerationConfig)} | {"shard"}


@pytest.mark.parametrize("setting", CHANGED)
def test_progress_is_reused_only_under_the_same_settings(setting, prompts, tmp_path, monkeypatch):
    """Batches left by a run (here: kept as a killed run keeps them) serve a rerun with the same
    settings, never one where a setting changed: its summaries would differ."""
    engines = []
    monkeypatch.setattr(generation, "load_engine", lambda model_dir, config: engines.append(CountingEngine(config))
                        or engines[-1])
    monkeypatch.setattr(generation.Progress, "clear", lambda self: None)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    out = str(tmp_path / "out.parquet")
    generate_file(str(prompts), str(model_dir), out, **BASE_SETTINGS)
    generate_file(str(prompts), str(model_dir), out, **BASE_SETTINGS)
    changed = generate_file(str(prompts), str(model_dir), out, **{**BASE_SETTINGS, setting: CHANGED[setting]})
    assert [e.prompts for e in engines] == [6, 0, changed["id"].nunique()]


def test_progress_from_other_inputs_is_discarded(tiny_model_dir, prompts, tmp_path):
    out = tmp_path / "out.parquet"
    stale = tmp_path / ".out.parquet.progress"
    stale.mkdir()
    (stale / "fingerprint").write_text("made from other prompts")
    write_parquet(pd.DataFrame({"id": ["x"], "candidate": [0], "summary": ["stale"], "prompt_tokens": [1],
                                "new_tokens": [1]}), stale / "batch-000000.parquet")
    result = generate_file(str(prompts), tiny_model_dir, str(out), max_new_tokens=8, batch_size=6)
    assert "stale" not in set(result["summary"]) and "x" not in set(result["id"])
