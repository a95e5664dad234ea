"""Batched summary generation with Hugging Face transformers.

Prompts are sorted by length and batched with left padding; K samples per article
come from ``num_return_sequences``. Each batch seeds the RNG from the seed and its
first article id, so outputs do not depend on what ran before.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field

import pandas as pd

from faithdpo.io import read_parquet, write_parquet

log = logging.getLogger(__name__)

OUTPUT_COLUMNS = ["id", "candidate", "summary", "prompt_tokens", "new_tokens"]


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings; ``num_return_sequences`` > 1 needs ``do_sample``."""

    num_return_sequences: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 128
    batch_size: int = 8
    seed: int = 0
    stop_strings: list[str] = field(default_factory=list)
    trust_remote_code: bool = False


def cut_at_stop(text: str, stop_strings: list[str]) -> str:
    """Cut ``text`` at the first stop string and strip surrounding whitespace."""
    cut = len(text)
    for stop in stop_strings:
        pos = text.find(stop)
        if 0 <= pos < cut:
            cut = pos
    return text[:cut].strip()


def batch_seed(seed: int, first_id: str) -> int:
    return int(hashlib.sha256(f"{seed}/{first_id}".encode()).hexdigest()[:8], 16)


def load_for_generation(model_dir: str, adapter_dir: str | None, trust_remote_code: bool):
    """The base model, with a LoRA adapter merged into its weights when given."""
    from faithdpo.models import load_model, load_tokenizer

    tokenizer = load_tokenizer(model_dir, padding_side="left")
    model = load_model(model_dir, trust_remote_code=trust_remote_code)
    if adapter_dir:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
        model.eval()
    return model, tokenizer


def generate_summaries(model, tokenizer, prompts: pd.DataFrame, config: GenerationConfig) -> pd.DataFrame:
    """Generate ``num_return_sequences`` summaries per prompt row (``id``, ``prompt``)."""
    import torch

    order = prompts.assign(_len=prompts["prompt"].str.len()).sort_values("_len", ascending=False, kind="stable")
    k = config.num_return_sequences
    sampling = (
        {"do_sample": True, "temperature": config.temperature, "top_p": config.top_p}
        if config.do_sample
        else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    )
    rows, new_total, started = [], 0, time.perf_counter()
    for start in range(0, len(order), config.batch_size):
        batch = order.iloc[start : start + config.batch_size]
        enc = tokenizer(list(batch["prompt"]), return_tensors="pt", padding=True, add_special_tokens=False)
        enc = enc.to(model.device)
        torch.manual_seed(batch_seed(config.seed, str(batch["id"].iloc[0])))
        with torch.inference_mode():
            out = model.generate(
                **enc,
                max_new_tokens=config.max_new_tokens,
                num_return_sequences=k,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **sampling,
            )
        width = enc["input_ids"].shape[1]
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        for j, seq in enumerate(out[:, width:]):
            row = j // k
            ids = seq.tolist()
            if tokenizer.eos_token_id in ids:
                ids = ids[: ids.index(tokenizer.eos_token_id)]
            ids = [t for t in ids if t != tokenizer.pad_token_id]
            new_total += len(ids)
            rows.append({
                "id": batch["id"].iloc[row],
                "candidate": j % k,
                "summary": cut_at_stop(tokenizer.decode(ids, skip_special_tokens=True), config.stop_strings),
                "prompt_tokens": int(prompt_lens[row]),
                "new_tokens": len(ids),
            })
        elapsed = time.perf_counter() - started
        log.info("%d/%d prompts, %.1f new tokens/s", min(start + config.batch_size, len(order)), len(order),
                 new_total / max(elapsed, 1e-9))
    position = {pid: i for i, pid in enumerate(prompts["id"])}
    out = pd.DataFrame(rows, columns=OUTPUT_COLUMNS)
    out = out.sort_values(["id", "candidate"], key=lambda s: s.map(position) if s.name == "id" else s)
    return out.reset_index(drop=True).astype({"candidate": "int64", "prompt_tokens": "int64", "new_tokens": "int64"})


def generate_file(prompts: str, model_dir: str, output: str, adapter_dir: str | None = None, **params) -> pd.DataFrame:
    """Generate summaries for a prompts parquet and write the candidates parquet."""
    config = GenerationConfig(**params)
    if config.num_return_sequences > 1 and not config.do_sample:
        raise ValueError("generation: num_return_sequences > 1 needs sampling (do_sample: true)")
    model, tokenizer = load_for_generation(model_dir, adapter_dir, config.trust_remote_code)
    out = generate_summaries(model, tokenizer, read_parquet(prompts, ["id", "prompt"]), config)
    write_parquet(out, output)
    log.info("wrote %d summaries to %s", len(out), output)
    return out
