"""Peak GPU memory of the largest generation batches a config allows, against docs/gpu-sizing.md.

docs/gpu-sizing.md sizes `generation.batch_size`, `eval_batch_size` and `max_batch_tokens` from
arithmetic; this measures them. It builds Qwen2.5-1.5B's shapes with random weights (nothing is
downloaded; random weights never stop early, so every row decodes all `max_new_tokens`), makes
synthetic-article prompts of about `prompt.max_prompt_tokens` tokens (the table gives the longest),
and runs one full candidate batch (bf16, K sampled rows a prompt) and one full evaluation batch
(`eval_dtype`, greedy) through faithdpo.generation, as the workflow's jobs do. No stop strings:
the worst case, every row as long as it may be.

    python benchmarks/bench_batch_memory.py                                    # config.yaml + gpu-80gb.yaml
    python benchmarks/bench_batch_memory.py --configs config/config.yaml       # the defaults (a 24 GB card)
    python benchmarks/bench_batch_memory.py --tiny                             # the CPU: the code path only

It exits non-zero when a batch needs more than the card has.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
os.environ.setdefault("TQDM_DISABLE", "1")  # the table is the output

import yaml  # noqa: E402
from bench_generate import DEMO_MODEL, prompts_frame, qwen_sized_model  # noqa: E402

from faithdpo.generation import GenerationConfig, HFEngine, generate_summaries  # noqa: E402

# docs/gpu-sizing.md's per padded token estimates (KV cache + one layer's prefill MLP), bytes.
PER_TOKEN = {"bfloat16": 64e3, "float32": 127e3}


def settings(paths: list[str]) -> dict:
    """The config files layered as `--configfile a b` layers them (later keys win, nested)."""
    def merge(a: dict, b: dict) -> dict:
        return {**a, **{k: merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
                        for k, v in b.items()}}

    cfg: dict = {}
    for path in paths:
        cfg = merge(cfg, yaml.safe_load(Path(path).read_text()))
    return cfg


def measure(engine, prompts: list[str], config: GenerationConfig, on_gpu: bool) -> dict:
    import pandas as pd
    import torch

    frame = pd.DataFrame({"id": [f"m{i:04d}" for i in range(len(prompts))], "prompt": prompts})
    lengths = engine.count_tokens(prompts)
    if on_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    started = time.perf_counter()
    out = generate_summaries(engine, frame, config)
    if on_gpu:
        torch.cuda.synchronize()
    rows = len(prompts) * config.num_return_sequences
    return {"rows": rows, "padded_tokens": rows * (max(lengths) + config.max_new_tokens),
            "prompt_tokens": max(lengths), "new_tokens": int(out["new_tokens"].max()),
            "seconds": time.perf_counter() - started,
            "peak_gb": torch.cuda.max_memory_allocated() / 1e9 if on_gpu else None,
            "reserved_gb": torch.cuda.max_memory_reserved() / 1e9 if on_gpu else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["config/config.yaml", "config/gpu-80gb.yaml"],
                        help="config files, layered in order (relative to the repository)")
    parser.add_argument("--tiny", action="store_true", help="tiny model and batches: the code path on the CPU")
    args = parser.parse_args()

    import torch

    on_gpu = torch.cuda.is_available()
    cfg = settings([str(ROOT / p) for p in args.configs])
    gen = cfg["generation"]
    k, new = gen["candidates"]["num_return_sequences"], gen["max_new_tokens"]
    prompt_tokens = cfg["prompt"]["max_prompt_tokens"]
    batches = {"candidates": gen["batch_size"], "evaluation": gen.get("eval_batch_size") or gen["batch_size"]}
    if args.tiny:
        prompt_tokens, new, batches = 64, 8, {"candidates": 2, "evaluation": 4}
    work = Path(tempfile.mkdtemp(prefix="bench_batch_memory."))
    try:
        model_dir = str(DEMO_MODEL) if args.tiny else qwen_sized_model(str(DEMO_MODEL), work / "model")
        configs = {
            "candidates": GenerationConfig(num_return_sequences=k, do_sample=True, temperature=gen["candidates"]
                                           ["temperature"], top_p=gen["candidates"]["top_p"],
                                           top_k=gen["candidates"]["top_k"], max_new_tokens=new,
                                           batch_size=batches["candidates"], stop_strings=[],
                                           max_batch_tokens=gen.get("max_batch_tokens"), dtype="bfloat16"),
            "evaluation": GenerationConfig(max_new_tokens=new, batch_size=batches["evaluation"], stop_strings=[],
                                           max_batch_tokens=gen.get("max_batch_tokens"),
                                           dtype=gen.get("eval_dtype", "float32")),
        }
        rows = {}
        for step, config in configs.items():
            engine = HFEngine(model_dir, config)
            prompts = list(prompts_frame(batches[step], engine.tokenizer, prompt_tokens)["prompt"])
            rows[step] = {**measure(engine, prompts, config, on_gpu), "dtype": config.dtype,
                          "weights_gb": sum(p.numel() * p.element_size() for p in engine.model.parameters()) / 1e9}
            del engine
            if on_gpu:
                torch.cuda.empty_cache()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    card = torch.cuda.get_device_properties(0).total_memory / 1e9 if on_gpu else None
    name = torch.cuda.get_device_name() if on_gpu else "CPU"
    print(f"# bench_batch_memory: {name} ({f'{card:.0f} GB' if card else 'no GPU memory'}), "
          f"torch {torch.__version__}; configs: {' + '.join(args.configs)}; "
          f"{'tiny model' if args.tiny else 'Qwen2.5-1.5B-shaped, random weights'}\n")
    print("| step | dtype | rows | prompt + new tokens | padded tokens | s | peak allocated GB | peak reserved GB "
          "| docs/gpu-sizing.md estimate GB |\n|---|---|---:|---:|---:|---:|---:|---:|---:|")
    over = []
    for step, r in rows.items():
        estimate = r["weights_gb"] + r["padded_tokens"] * PER_TOKEN[r["dtype"]] / 1e9
        fmt = lambda v: f"{v:.1f}" if v is not None else "n/a"  # noqa: E731
        print(f"| {step} | {r['dtype']} | {r['rows']} | {r['prompt_tokens']} + {r['new_tokens']} | "
              f"{r['padded_tokens']:,} | {r['seconds']:.1f} | {fmt(r['peak_gb'])} | {fmt(r['reserved_gb'])} | "
              f"{estimate:.1f} |")
        if card and r["reserved_gb"] > card:
            over.append(step)
    for step in over:
        print(f"FAILED: the {step} batch reserved more than the card's {card:.0f} GB")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
