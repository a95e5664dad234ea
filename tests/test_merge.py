"""The DPO adapter merged into the base weights: same outputs as the adapter on the fly."""

import pandas as pd
import torch

from conftest import TEMPLATE
from faithdpo.corpus import generate_corpus
from faithdpo.io import write_parquet
from faithdpo.merge import merge_adapter
from faithdpo.models import load_model, load_tokenizer
from faithdpo.training import train_dpo


def test_merged_weights_equal_the_adapter_applied_on_the_fly(tiny_model_dir, tmp_path):
    from peft import PeftModel

    df = generate_corpus(4, "train", seed=1)
    pairs = tmp_path / "pairs.parquet"
    write_parquet(pd.DataFrame({"prompt": [TEMPLATE.replace("{article}", a) for a in df["article"]],
                                "chosen": " " + df["highlights"], "rejected": " Nobody won in Atlantis ."}), pairs)
    adapter = tmp_path / "adapter"
    train_dpo(str(pairs), tiny_model_dir, str(adapter), str(tmp_path / "h.json"), quantization="none", lora_r=4,
              lora_alpha=8, per_device_train_batch_size=2, gradient_accumulation_steps=1, max_length=384,
              learning_rate=5e-2, num_train_epochs=1)
    merged_dir = tmp_path / "merged"
    merge_adapter(tiny_model_dir, str(adapter), str(merged_dir))
    assert sorted(p.name for p in merged_dir.glob("*.safetensors")) == ["model.safetensors"]
    assert not list(merged_dir.glob("adapter_*")), "a plain model, not an adapter"

    tokenizer = load_tokenizer(tiny_model_dir)
    ids = tokenizer([TEMPLATE.replace("{article}", df["article"][0])], return_tensors="pt")
    with torch.no_grad():
        merged = load_model(str(merged_dir))(**ids).logits
        on_the_fly = PeftModel.from_pretrained(load_model(tiny_model_dir), str(adapter))(**ids).logits
        base = load_model(tiny_model_dir)(**ids).logits
    torch.testing.assert_close(merged, on_the_fly, rtol=1e-4, atol=1e-4)
    assert (merged - base).abs().max() > 1e-3, "the adapter changed the model"


def small_delta_adapter(model_dir, path, scale=4e-5):
    """A LoRA adapter whose delta entries (~scale) are mostly below half a bf16 step of the base
    weights, as DPO's at lr 5e-6 are: what a bf16 merge rounds away."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(load_model(model_dir), LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    for name, param in model.named_parameters():
        if "lora_A" in name:
            param.data = torch.randn_like(param) * 0.5
        elif "lora_B" in name:
            param.data = torch.randn_like(param) * scale
    model.save_pretrained(str(path))


def test_evaluated_dpo_model_is_base_plus_adapter_in_float32(tiny_model_dir, tmp_path):
    """Merging into bf16 weights loses the sub-step part of the delta; the float32 merge,
    evaluated in float32 (generation.eval_dtype), is base + adapter as trained."""
    from peft import PeftModel

    from faithdpo.generation import GenerationConfig, HFEngine

    bf16_dir = tmp_path / "bf16"  # a bf16 checkpoint, as Qwen2.5's
    load_model(tiny_model_dir).to(torch.bfloat16).save_pretrained(str(bf16_dir))
    load_tokenizer(tiny_model_dir).save_pretrained(str(bf16_dir))
    adapter = tmp_path / "adapter"
    small_delta_adapter(tiny_model_dir, adapter)
    merged_dir = tmp_path / "merged"
    merge_adapter(str(bf16_dir), str(adapter), str(merged_dir))

    tokenizer = load_tokenizer(tiny_model_dir)
    ids = tokenizer([TEMPLATE.replace("{article}", generate_corpus(1, "train", seed=2)["article"][0])],
                    return_tensors="pt")
    with torch.no_grad():
        base = load_model(str(bf16_dir), dtype="float32")
        base_logits = base(**ids).logits
        reference = PeftModel.from_pretrained(load_model(str(bf16_dir), dtype="float32"), str(adapter))(**ids).logits
        evaluated = HFEngine(str(merged_dir), GenerationConfig(dtype="float32", stop_strings=[])).model(**ids).logits
        bf16_base = load_model(str(bf16_dir), dtype="bfloat16")
        old_merge = PeftModel.from_pretrained(bf16_base, str(adapter)).merge_and_unload()
        old_logits = old_merge.float()(**ids).logits
    adapter_effect = (reference - base_logits).abs().max().item()
    tolerance = 1e-4  # float32 arithmetic, merged vs unmerged (logits of a few units)
    assert adapter_effect > 50 * tolerance, "the adapter must move the logits for this test to mean anything"
    assert (evaluated - reference).abs().max().item() < tolerance
    old_error = (old_logits - reference).abs().max().item()
    assert old_error > 0.3 * adapter_effect and old_error > 20 * tolerance, "a bf16 merge loses the delta"
    weights = next(iter(load_model(str(merged_dir), dtype=None).parameters()))
    assert weights.dtype == torch.float32
