"""Generation throughput: one article at a time vs faithdpo's batched generation (and vLLM
where installed), on the same prompts, in one run.

    python benchmarks/bench_generate.py                      # CPU: the demo's tiny model
    python benchmarks/bench_generate.py --qwen-sized         # GPU: Qwen2.5-1.5B-sized random weights

The tiny model is the demo's, committed in demo/tiny-qwen2 (or --model DIR), so the benchmark
runs from a fresh clone with no prior demo run. The Qwen-sized model is built from Qwen2.5-1.5B's configuration with random weights (no
download) and the tiny model's tokenizer; every prompt is padded out to about 800 tokens,
the length of a CNN/DailyMail article. Decoding is greedy, so both modes produce the same
tokens and tokens/second compare like with like. On a GPU the table also gives the
memory-bandwidth bound of decoding (every step reads all weights once: weight bytes x
steps / bandwidth) and the fraction of it achieved.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TQDM_DISABLE", "1")  # the table is the output

from faithdpo.corpus import generate_corpus  # noqa: E402
from faithdpo.generation import GenerationConfig, HFEngine, generate_summaries, plan_batches  # noqa: E402

TEMPLATE = "Summarize the following news article.\n\nArticle: {article}\n\nSummary:"
DEMO_MODEL = Path(__file__).resolve().parents[1] / "demo" / "tiny-qwen2"
# Qwen2.5-1.5B's published configuration (config.json on the hub).
QWEN_1_5B = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                 num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                 rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)
# Peak memory bandwidth, GB/s, by device name (vendor data sheets).
BANDWIDTH_GBS = {"H200": 4800, "H100 SXM": 3350, "H100 80GB HBM3": 3350, "H100 PCIe": 2000, "H100": 3350,
                 "A100-SXM4-80GB": 2039, "A100-SXM4-40GB": 1555, "A100": 1935, "L40S": 864, "A10G": 600}


def prompts_frame(n: int, tokenizer, target_tokens: int | None) -> pd.DataFrame:
    """``n`` synthetic-article prompts; with ``target_tokens``, articles joined until each prompt is that long."""
    corpus = generate_corpus(max(n * 8, 64), "validation", seed=0)
    articles = list(corpus["article"])
    prompts = []
    for i in range(n):
        text, j = articles[i], i
        while target_tokens and len(tokenizer(TEMPLATE.format(article=text))["input_ids"]) < target_tokens:
            j += n
            text += " " + articles[j % len(articles)]
        if target_tokens:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            overhead = len(tokenizer(TEMPLATE.format(article=""))["input_ids"])
            text = tokenizer.decode(ids[: target_tokens - overhead])
        prompts.append(TEMPLATE.format(article=text))
    return pd.DataFrame({"id": [f"b{i:04d}" for i in range(n)], "prompt": prompts})


def qwen_sized_model(tokenizer_dir: str, out: Path) -> str:
    """Qwen2.5-1.5B's architecture with random bf16 weights, saved as safetensors."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = Qwen2Config(**QWEN_1_5B, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.eos_token_id)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return str(out)


def run(engine, prompts: pd.DataFrame, config: GenerationConfig) -> dict:
    """Wall time, new tokens and decoding steps of one generation pass."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    out = generate_summaries(engine, prompts, config)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    lengths = engine.count_tokens(list(prompts["prompt"]))
    batches = plan_batches(lengths, config.batch_size, config.max_batch_tokens, 1, config.max_new_tokens)
    per_id = dict(zip(out["id"], out["new_tokens"]))
    steps = sum(max(per_id[prompts["id"].iloc[i]] for i in batch) for batch in batches)
    return {"seconds": seconds, "new_tokens": int(out["new_tokens"].sum()), "steps": steps,
            "summaries": list(out["summary"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEMO_MODEL), help="model directory (default: the demo's tiny model)")
    parser.add_argument("--qwen-sized", action="store_true", help="Qwen2.5-1.5B-sized random weights (GPU)")
    parser.add_argument("--prompts", type=int, default=None, help="prompts (default 64 CPU, 128 GPU)")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=None, help="batched mode (default 32 CPU, 64 GPU)")
    parser.add_argument("--prompt-tokens", type=int, default=None, help="pad prompts to this many tokens")
    parser.add_argument("--bandwidth-gbs", type=float, default=None, help="GPU memory bandwidth (default: by name)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = torch.cuda.is_available()
    if not Path(args.model).is_dir():
        sys.exit(f"{args.model} not found: run the demo first (snakemake --cores 2 --configfile config/demo.yaml) "
                 "or pass --model DIR")
    tmp = Path(tempfile.mkdtemp(prefix="bench_generate."))
    try:
        model_dir = qwen_sized_model(args.model, tmp / "qwen") if args.qwen_sized else args.model
        n = args.prompts or (128 if gpu else 64)
        batch = args.batch_size or (64 if gpu else 32)
        target = args.prompt_tokens or (800 if args.qwen_sized else None)
        base = dict(max_new_tokens=args.max_new_tokens, stop_strings=[])
        engine = HFEngine(model_dir, GenerationConfig(**base))
        prompts = prompts_frame(n, engine.tokenizer, target)
        run(engine, prompts.head(2), GenerationConfig(**base, batch_size=2))  # warm-up
        modes = {"one at a time": GenerationConfig(**base, batch_size=1),
                 f"batched ({batch}/batch)": GenerationConfig(**base, batch_size=batch)}
        results = {}
        for name, config in modes.items():
            engine.config = config
            results[name] = run(engine, prompts, config)
        try:
            from faithdpo.generation import VLLMEngine

            vconfig = GenerationConfig(**base, engine="vllm", vllm_batch_size=n)
            results["vLLM"] = run(VLLMEngine(model_dir, vconfig), prompts, vconfig)
        except RuntimeError as exc:
            print(f"(vLLM skipped: {exc})")
        summaries = [r.pop("summaries") for r in results.values()]
        same = all(s == summaries[0] for s in summaries[1:3])

        device = torch.cuda.get_device_name() if gpu else f"CPU ({torch.get_num_threads()} threads)"
        params = sum(p.numel() for p in engine.model.parameters())
        weight_bytes = sum(p.numel() * p.element_size() for p in engine.model.parameters())
        prompt_tokens = engine.count_tokens(list(prompts["prompt"]))
        print(f"device: {device}; model: {model_dir if not args.qwen_sized else 'Qwen2.5-1.5B-sized, random bf16'} "
              f"({params / 1e6:.1f}M parameters, {weight_bytes / 1e9:.2f} GB); {n} prompts of "
              f"{min(prompt_tokens)}-{max(prompt_tokens)} tokens; greedy, up to {args.max_new_tokens} new tokens")
        bandwidth = args.bandwidth_gbs or next((v for k, v in BANDWIDTH_GBS.items() if gpu and k in device), None)
        reference = results["one at a time"]["new_tokens"] / results["one at a time"]["seconds"]
        head = "| mode | seconds | new tokens | tokens/s | vs one at a time |"
        rule = "|---|---:|---:|---:|---:|"
        if gpu and bandwidth:
            head += " bandwidth bound (s) | achieved |"
            rule += "---:|---:|"
        print(head)
        print(rule)
        for name, r in results.items():
            rate = r["new_tokens"] / r["seconds"]
            line = f"| {name} | {r['seconds']:.2f} | {r['new_tokens']} | {rate:.1f} | {rate / reference:.2f}x |"
            if gpu and bandwidth:
                bound = weight_bytes * r["steps"] / (bandwidth * 1e9)
                line += f" {bound:.2f} | {100 * bound / r['seconds']:.0f}% |"
            print(line)
        print(f"identical summaries one-at-a-time vs batched: {same}")
        if gpu and bandwidth:
            print(f"bandwidth bound: weights read once per decoding step ({weight_bytes / 1e9:.2f} GB x steps) at "
                  f"{bandwidth:.0f} GB/s; KV-cache reads and prefill are extra, so 100% is out of reach.")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
