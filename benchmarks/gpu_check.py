"""One command that proves the GPU path: the generation and training steps of the workflow,
through the project's own functions, at the real config's settings, on Qwen2.5-1.5B-shaped
random weights; and the numbers that size a run. (The checker's steps: bench_checker.py.)

    python benchmarks/gpu_check.py            # a GPU: Qwen2.5-1.5B-shaped, about 4 minutes on an H200
    python benchmarks/gpu_check.py --tiny     # the CPU: a tiny model of the same family (the tests run this)

Nothing is downloaded: the model is built locally from Qwen2.5-1.5B's published shapes with random
weights, and the tokenizer is the demo's (built by this project, demo/tiny-qwen2). It prints one
table:

- generation: one prompt at a time vs batched on the same ~1,000-token prompts, tokens/s and the
  share of the decoding memory-bandwidth bound achieved, in bf16 (candidates) and float32
  (evaluation);
- training: seconds per DPO optimizer step and peak GPU memory at the real settings (NF4 + LoRA
  r32 on q,k,v,o, batch 2 x accumulation 4, max_length 1536), with and without gradient
  checkpointing and precompute_ref_log_probs, and the same without quantization;
- these rules' functions as the rules call them (generate_candidates, train_dpo, merge_adapter,
  generate_eval) on a small synthetic sample, with pairs made for the check (random weights write
  no entities, so no strategy would pair them): training must take its optimizer steps and every
  GPU memory record must name the device it ran on; then the evaluated (merged) model must agree
  with base + adapter in float32 within the merge test's tolerance;
- the real run's GPU time estimated from the measured rates.

It imports the project's GPU modules and what they need (torch, transformers, trl, peft,
accelerate, bitsandbytes, pandas, pyarrow, pyyaml), no Snakemake and no spaCy, and names a missing
package at once. It exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEEDED = ("torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "pandas", "pyarrow", "yaml",
          "safetensors")
missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
if missing:
    sys.exit(f"gpu_check: missing Python packages: {', '.join(missing)}. Install them (pip install "
             f"{' '.join('pyyaml' if m == 'yaml' else m for m in missing)}), or bring them as wheels.")

sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
os.environ.setdefault("TQDM_DISABLE", "1")  # the table is the output

import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from bench_generate import BANDWIDTH_GBS, QWEN_1_5B, prompts_frame, run  # noqa: E402

from faithdpo.generation import GenerationConfig, HFEngine, generate_file  # noqa: E402
from faithdpo.io import read_json, write_parquet  # noqa: E402
from faithdpo.merge import merge_adapter  # noqa: E402
from faithdpo.training import TrainingConfig, build_trainer, train_dpo  # noqa: E402

TOKENIZER = ROOT / "demo" / "tiny-qwen2"
# The demo's tiny shapes: NF4 runs on the CPU at these sizes (multiples of 64, see models.py).
TINY = dict(vocab_size=2048, hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=2048, rope_theta=10_000.0, rms_norm_eps=1e-6,
            tie_word_embeddings=True)
MERGE_TOLERANCE = 1e-4  # tests/test_merge.py: float32 logits, merged vs base + adapter on the fly
# The real run, for the estimate: 500 train articles x K candidates, 500 validation summaries per
# model (the base once, each seed's DPO model), ~125 optimizer steps per seed (500 pairs / 8 x 2 epochs).
REAL = {"articles": 500, "steps_per_seed": 125}


def build_model(out: Path, tiny: bool) -> str:
    """Qwen2.5-1.5B's shapes with random weights, saved in bf16 as Qwen2.5's checkpoint is (the tiny
    ones in float32, as the demo's model: bitsandbytes' CPU kernel trains a bf16 checkpoint's
    biases in place and fails), with the demo's tokenizer."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(TOKENIZER)
    config = Qwen2Config(**(TINY if tiny else QWEN_1_5B), eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.eos_token_id)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2ForCausalLM(config).to(torch.float32 if tiny else torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return str(out)


def real_settings() -> tuple[dict, dict]:
    """The generation and training keys of config/config.yaml (the real experiment)."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    gen = cfg["generation"]
    generation = {k: gen[k] for k in ("max_new_tokens", "batch_size", "max_batch_tokens", "stop_strings")}
    training = {k: v for k, v in cfg["training"].items() if k != "seeds"}
    return {**generation, "candidates": gen["candidates"], "eval_batch_size": gen.get("eval_batch_size")}, training


def generation_rows(model_dir: str, prompts: pd.DataFrame, new_tokens: int, batch: int, bandwidth: float | None):
    """One at a time vs batched, bf16 and float32: tokens/s and the share of the bandwidth bound."""
    rows = []
    for dtype in ("bfloat16", "float32"):
        # No stop string: a row ends at max_new_tokens or end-of-text only, as in bench_generate.py.
        engine = HFEngine(model_dir, GenerationConfig(max_new_tokens=new_tokens, dtype=dtype, stop_strings=[]))
        weight_bytes = sum(p.numel() * p.element_size() for p in engine.model.parameters())
        warm_up = GenerationConfig(max_new_tokens=4, batch_size=2, dtype=dtype, stop_strings=[])
        run(engine, prompts.head(2), warm_up)
        for name, size in (("one at a time", 1), (f"batched ({batch})", batch)):
            config = GenerationConfig(max_new_tokens=new_tokens, batch_size=size, dtype=dtype, stop_strings=[])
            engine.config = config
            result = run(engine, prompts, config)
            bound = weight_bytes * result["steps"] / (bandwidth * 1e9) if bandwidth else None
            rows.append({"dtype": dtype, "mode": name, "seconds": result["seconds"],
                         "tokens_per_s": result["new_tokens"] / result["seconds"],
                         "bound_share": bound / result["seconds"] if bound else None})
        del engine
    return rows


def check_pairs(tokenizer_dir: str, n: int, prompt_tokens: int, completion_tokens: int) -> pd.DataFrame:
    """Preference pairs made for the check: real-length prompts, two different completions each."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    prompts = prompts_frame(n, tok, prompt_tokens)["prompt"]
    words = "The storm closed the harbour and the council met on Monday to count the damage".split()
    chosen = " ".join(words[i % len(words)] for i in range(completion_tokens))
    rejected = " ".join(words[(i * 7) % len(words)] for i in range(completion_tokens))
    return pd.DataFrame({"id": [f"p{i}" for i in range(n)], "prompt": list(prompts),
                         "chosen": [" " + chosen] * n, "rejected": [" " + rejected + " in 1999"] * n})


def training_rows(model_dir: str, training: dict, pairs: pd.DataFrame, on_gpu: bool, work: Path) -> list[dict]:
    """Seconds per optimizer step (median after the first) and peak GPU memory of each variant."""
    import torch
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self):
            self.times = [time.perf_counter()]

        def on_step_end(self, args, state, control, **kwargs):
            if on_gpu:
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())

    rows = []
    for quantization in ("nf4", "none"):
        for checkpointing in (True, False):
            for precompute in (False, True):
                if precompute and quantization == "nf4" and not on_gpu:
                    continue  # refused by train_dpo: bitsandbytes' CPU kernel cannot train after precomputing
                cfg = TrainingConfig(**{**training, "quantization": quantization, "num_train_epochs": 1,
                                        "gradient_checkpointing": checkpointing,
                                        "precompute_ref_log_probs": precompute, "save_steps": 10_000})
                if on_gpu:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                trainer = build_trainer(cfg, pairs, model_dir, str(work / "trainer"), on_gpu)
                clock = StepClock()
                trainer.add_callback(clock)
                trainer.train()
                steps = [b - a for a, b in zip(clock.times, clock.times[1:])]
                rows.append({"quantization": quantization, "checkpointing": checkpointing, "precompute": precompute,
                             "steps": len(steps), "s_per_step": statistics.median(steps[1:] or steps),
                             "peak_gb": torch.cuda.max_memory_allocated() / 1e9 if on_gpu else None})
                del trainer
                shutil.rmtree(work / "trainer", ignore_errors=True)
    return rows


def rule_steps(model_dir: str, generation: dict, training: dict, pairs: pd.DataFrame, work: Path,
               device: str) -> dict:
    """generate_candidates, train_dpo, merge_adapter and generate_eval as their scripts
    (workflow/scripts/) call them, on a small synthetic sample: seconds, what each produced, and
    each GPU job's memory record."""
    from transformers import AutoTokenizer

    from faithdpo.gpu_memory import gpu_peak_memory

    prompts = str(work / "prompts.parquet")
    write_parquet(prompts_frame(8, AutoTokenizer.from_pretrained(model_dir), 300), prompts)
    write_parquet(pairs, str(work / "pairs.parquet"))
    common = {"device": device, "seed": 0, **{k: v for k, v in generation.items()
                                               if k not in ("candidates", "eval_batch_size")}}
    eval_batch = generation["eval_batch_size"] or generation["batch_size"]
    timings, records = {}, {}

    def generate(rule: str, model: str, output: str, **params) -> None:
        started = time.perf_counter()
        with gpu_peak_memory(str(work / f"{rule}.gpu.json")):
            out = generate_file(prompts, model, str(work / output), rule=rule, **{**common, **params})
        timings[rule] = (time.perf_counter() - started, f"{len(out)} summaries")
        records[rule] = read_json(str(work / f"{rule}.gpu.json"))

    generate("generate_candidates", model_dir, "candidates.parquet", **generation["candidates"], do_sample=True)
    started = time.perf_counter()
    history = train_dpo(str(work / "pairs.parquet"), model_dir, str(work / "adapter"), str(work / "history.json"),
                        device=device, gpu_memory=str(work / "train_dpo.gpu.json"),
                        **{**training, "num_train_epochs": 1})
    steps = max((h.get("step", 0) for h in history), default=0)
    timings["train_dpo"] = (time.perf_counter() - started, f"{steps} optimizer steps")
    records["train_dpo"] = read_json(str(work / "train_dpo.gpu.json"))
    started = time.perf_counter()
    merge_adapter(model_dir, str(work / "adapter"), str(work / "merged"))
    timings["merge_adapter"] = (time.perf_counter() - started, "float32")
    generate("generate_eval", str(work / "merged"), "eval.parquet", batch_size=eval_batch, dtype="float32")
    global_batch = training["per_device_train_batch_size"] * training["gradient_accumulation_steps"]
    return {"timings": timings, "records": records, "steps": steps, "expected_steps": len(pairs) // global_batch}


def merge_agreement(model_dir: str, work: Path) -> tuple[float, float]:
    """Max |logit| difference of the evaluated (merged, float32) model vs base + adapter in float32,
    and how far the adapter moved the logits at all."""
    import torch
    from peft import PeftModel

    from faithdpo.models import load_model, load_tokenizer

    tok = load_tokenizer(model_dir)
    ids = tok([pd.read_parquet(work / "prompts.parquet")["prompt"][0]], return_tensors="pt")
    with torch.no_grad():
        base = load_model(model_dir, dtype="float32")
        ids = ids.to(base.device)
        base_logits = base(**ids).logits
        reference = PeftModel.from_pretrained(base, str(work / "adapter"))(**ids).logits
        evaluated = HFEngine(str(work / "merged"), GenerationConfig(dtype="float32", stop_strings=[])).model(**ids).logits
    return (evaluated - reference).abs().max().item(), (reference - base_logits).abs().max().item()


def measure(tiny: bool, work: Path, generation: dict, training: dict, prompt_tokens: int, new_tokens: int,
            n_prompts: int, bandwidth: float | None, on_gpu: bool, device: str) -> tuple:
    """Build the model, then every measurement and check of the table."""
    from transformers import AutoTokenizer

    model_dir = build_model(work / "model", tiny)
    prompts = prompts_frame(n_prompts, AutoTokenizer.from_pretrained(model_dir), prompt_tokens)
    gen_rows = generation_rows(model_dir, prompts, new_tokens, n_prompts, bandwidth)
    global_batch = training["per_device_train_batch_size"] * training["gradient_accumulation_steps"]
    completion = 24 if tiny else 120
    # 3 optimizer steps a variant (2 on the CPU): the first warms up, the median of the rest is reported
    pairs = check_pairs(model_dir, (2 if tiny else 3) * global_batch, training["max_length"] - completion - 16,
                        completion)
    train_rows = training_rows(model_dir, training, pairs, on_gpu, work)
    rules = rule_steps(model_dir, generation, training, pairs.head(2 * global_batch), work, device)
    return (gen_rows, train_rows, rules, *merge_agreement(model_dir, work))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a tiny model on the CPU (or GPU): the code path, fast")
    parser.add_argument("--keep", help="keep the built model and outputs in this folder")
    parser.add_argument("--bandwidth-gbs", type=float, default=None, help="GPU memory bandwidth (default: by name)")
    args = parser.parse_args()

    import torch

    on_gpu = torch.cuda.is_available()
    device = "cuda" if on_gpu else "cpu"
    name = torch.cuda.get_device_name() if on_gpu else f"CPU ({torch.get_num_threads()} threads)"
    bandwidth = args.bandwidth_gbs or next((v for k, v in BANDWIDTH_GBS.items() if on_gpu and k in name), None)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="gpu_check."))
    work.mkdir(parents=True, exist_ok=True)
    generation, training = real_settings()
    # --tiny: the same code at sizes a CPU runs in a minute
    prompt_tokens, new_tokens, n_prompts = (200, 16, 4) if args.tiny else (1000, 128, 16)
    if args.tiny:
        training = {**training, "max_length": 384}
        generation = {**generation, "max_new_tokens": 24}
    failures = []
    log = open(work / "gpu_check.log", "w")  # the trainer's and the steps' own output, apart from the table
    try:
        started = time.perf_counter()
        with contextlib.redirect_stdout(log):
            measured = measure(args.tiny, work, generation, training, prompt_tokens, new_tokens, n_prompts,
                               bandwidth, on_gpu, device)
        gen_rows, train_rows, rules, difference, adapter_effect = measured

        print(f"# gpu_check: {name}, {time.strftime('%Y-%m-%d')}, torch {torch.__version__}")
        print(f"model: {'tiny Qwen2 (random)' if args.tiny else 'Qwen2.5-1.5B-shaped (random)'}; prompts of "
              f"{prompt_tokens} tokens; peak memory bandwidth {bandwidth or 'unknown'} GB/s\n")
        print("| generation | dtype | s | tokens/s | bandwidth bound achieved |\n|---|---|---:|---:|---:|")
        for r in gen_rows:
            share = f"{100 * r['bound_share']:.0f}%" if r["bound_share"] else "n/a"
            print(f"| {r['mode']} | {r['dtype']} | {r['seconds']:.2f} | {r['tokens_per_s']:.1f} | {share} |")
        print("\n| training | checkpointing | precompute_ref_log_probs | steps | s/step | peak GPU GB |\n"
              "|---|---|---|---:|---:|---:|")
        if not on_gpu:
            print("| nf4 | either | True | | | n/a on the CPU (train_dpo refuses it: bitsandbytes) |")
        for r in train_rows:
            peak = f"{r['peak_gb']:.1f}" if r["peak_gb"] is not None else "n/a"
            print(f"| {r['quantization']} | {r['checkpointing']} | {r['precompute']} | {r['steps']} | "
                  f"{r['s_per_step']:.2f} | {peak} |")
        print("\n| rule | s | result | GPU memory record |\n|---|---:|---|---|")
        for rule, (seconds, result) in rules["timings"].items():
            record = rules["records"].get(rule, {"device": "(a CPU rule)"})
            print(f"| {rule} | {seconds:.1f} | {result} | {record['device']} |")
        print(f"\nmerge: evaluated (merged) vs base + adapter, max |logit difference| {difference:.2e} "
              f"(tolerance {MERGE_TOLERANCE:g}; the adapter moved the logits by {adapter_effect:.2e})")

        if rules["steps"] != rules["expected_steps"]:
            failures.append(f"train_dpo took {rules['steps']} optimizer steps, expected {rules['expected_steps']}")
        for rule, record in rules["records"].items():
            if (record["device"] != "cpu") != on_gpu:
                failures.append(f"{rule}'s GPU memory record says {record['device']!r} on a {device} machine")
        if difference > MERGE_TOLERANCE:
            failures.append(f"the merged model differs from base + adapter by {difference:.2e} > {MERGE_TOLERANCE:g}")

        rate = {(r["dtype"], r["mode"].split(" (")[0]): r["tokens_per_s"] for r in gen_rows}
        default = next(r for r in train_rows if r["quantization"] == "nf4" and r["checkpointing"]
                       and not r["precompute"])
        k = generation["candidates"]["num_return_sequences"]
        candidates_s = REAL["articles"] * k * 128 / rate[("bfloat16", "batched")]
        eval_s = REAL["articles"] * 128 / rate[("float32", "batched")]
        train_s = REAL["steps_per_seed"] * default["s_per_step"]
        print(f"\nreal run estimate on this device (measured rates; batched at {n_prompts} prompts, so a larger "
              f"batch is faster): candidates {candidates_s / 60:.1f} min + evaluation {eval_s / 60:.1f} min a model "
              f"(base + 1 per seed) + training {train_s / 60:.1f} min a seed: with 3 seeds "
              f"{(candidates_s + 4 * eval_s + 3 * train_s) / 60:.1f} GPU-minutes")
        print(f"gpu_check took {time.perf_counter() - started:.0f} s")
        (work / "gpu_check.json").write_text(json.dumps({"generation": gen_rows, "training": train_rows,
                                                         "merge_difference": difference, "failures": failures}))
    finally:
        log.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
