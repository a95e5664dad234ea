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
