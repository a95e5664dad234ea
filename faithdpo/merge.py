"""Training stage: the DPO adapter folded into the base weights, for evaluation in either engine."""

from __future__ import annotations

import logging

from faithdpo.io import atomic_path
from faithdpo.models import check_model_dir, load_tokenizer

log = logging.getLogger(__name__)


def merge_adapter(model_dir: str, adapter_dir: str, output_dir: str, trust_remote_code: bool = False) -> None:
    """Fold a LoRA adapter into the base weights in float32 and save them in float32.

    Evaluation generates from these merged weights, in either engine: adapter-on-the-fly
    costs throughput, and vLLM would need ``max_lora_rank`` raised to the adapter's r.
    Merging into the base's own bf16 would round away every change below half a bf16 step
    (most of a DPO delta at lr 5e-6); bf16 -> float32 is exact, so the saved weights are
    base + adapter as trained, evaluated in float32 (``generation.eval_dtype``).
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    check_model_dir(model_dir)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, use_safetensors=True,
                                                trust_remote_code=trust_remote_code)
    merged = PeftModel.from_pretrained(base, adapter_dir).float().merge_and_unload()
    with atomic_path(output_dir) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        load_tokenizer(model_dir).save_pretrained(tmp)
    log.info("merged %s into %s -> %s (%s)", adapter_dir, model_dir, output_dir, merged.dtype)
