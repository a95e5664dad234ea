import json
from pathlib import Path

import pandas as pd
import pytest

from faithdpo.models import check_model_dir, hub_model_dir, load_model, load_tokenizer


def test_tiny_model_loads_through_the_real_loading_code(tiny_model_dir):
    model = load_model(tiny_model_dir)
    tokenizer = load_tokenizer(tiny_model_dir)
    assert model.config.model_type == "qwen2"
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"
    info = json.loads((Path(tiny_model_dir) / "training_info.json").read_text())
    assert info["final_loss"] < info["first_loss"]  # it did learn something


def test_tiny_model_learns_the_summary_only(tmp_path, monkeypatch):
    """The news training's loss covers " highlights<|endoftext|>" and never the prompt: each
    row's labelled tokens decode to exactly one story's summary."""
    from transformers import Qwen2ForCausalLM

    from conftest import TEMPLATE
    from faithdpo.corpus import synthesize_split
    from faithdpo.tiny_model import EOS, build_tiny_model

    labelled = []
    forward = Qwen2ForCausalLM.forward

    def recording(self, *args, **kwargs):
        if kwargs.get("attention_mask") is not None:  # the news batches (the copy warm-up has no mask)
            labelled.extend(zip(kwargs["input_ids"], kwargs["labels"]))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(Qwen2ForCausalLM, "forward", recording)
    corpus = tmp_path / "pretrain.parquet"
    synthesize_split(str(corpus), "pretrain", 8, seed=0)
    build_tiny_model(str(corpus), str(tmp_path / "model"), TEMPLATE, vocab_size=400, hidden_size=32, num_layers=1,
                     num_heads=2, num_kv_heads=1, intermediate_size=64, epochs=1, batch_size=4, max_length=2048,
                     copy_warmup_steps=0)
    tokenizer = load_tokenizer(str(tmp_path / "model"))
    summaries = sorted(" " + h + EOS for h in pd.read_parquet(corpus)["highlights"])
    assert len(labelled) == len(summaries)
    decoded = []
    for ids, labels in labelled:
        kept = labels != -100
        assert (labels[kept] == ids[kept]).all()
        decoded.append(tokenizer.decode(labels[kept]))
    assert sorted(decoded) == summaries


def test_model_dir_without_safetensors_names_the_fix(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no \\*.safetensors weights"):
        check_model_dir(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist; run `snakemake download_model`"):
        check_model_dir(str(tmp_path / "missing"))
    # the checker's weights, the same check with the checker's fix (checker.load_checker)
    with pytest.raises(FileNotFoundError, match=r"checker directory .* holds no \*\.safetensors weights: with "
                                                r"scoring\.checker\.source: hub run `snakemake download_checker`"):
        check_model_dir(str(tmp_path), "checker")


def test_hub_model_dir():
    assert hub_model_dir("Qwen/Qwen2.5-1.5B") == "resources/models/Qwen--Qwen2.5-1.5B"


def test_layer_sizes_that_4bit_cannot_run_on_some_cpus_are_named():
    from faithdpo.models import nf4_shape_problems
    from faithdpo.tiny_model import qwen2_linear_shapes

    assert nf4_shape_problems(qwen2_linear_shapes(64, 192, 4, 2)) == []  # the demo's sizes
    assert nf4_shape_problems(qwen2_linear_shapes(32, 64, 2, 1)) == [
        "q_proj (32 x 32)", "k_proj (16 x 32)", "v_proj (16 x 32)", "o_proj (32 x 32)", "gate_proj (64 x 32)",
        "up_proj (64 x 32)"]


def test_4bit_loading_refuses_such_a_model_on_every_cpu(tmp_path):
    """bitsandbytes fails on hidden size 32 only on AVX-512 BF16 CPUs, deep in its kernel; we refuse
    it on every CPU with the layers named, so the same config behaves the same everywhere."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)
    Qwen2ForCausalLM(config).save_pretrained(tmp_path, safe_serialization=True)
    with pytest.raises(ValueError, match=r"4-bit NF4 on the CPU needs .* multiple of 64 .*first: model.layers.0"):
        load_model(str(tmp_path), quantization="nf4")
    assert load_model(str(tmp_path)).config.hidden_size == 32  # unquantized: fine


def test_tiny_tokenizer_encodes_as_it_is_loaded(tmp_path):
    """transformers loads a qwen2 model's tokenizer as Qwen2Tokenizer, which splits digits one by
    one whatever the saved file says. The tiny model once trained on whole numbers ("28") and was
    then fed digits ("2", "8"): it could not copy a single figure. Train and load must agree."""
    from transformers import Qwen2Config

    from faithdpo.corpus import generate_corpus
    from faithdpo.tiny_model import _train_tokenizer

    corpus = generate_corpus(200, "pretrain", seed=0)
    texts = list(corpus["article"]) + list(corpus["highlights"])
    trained = _train_tokenizer(texts, 600)
    trained.save_pretrained(tmp_path)
    Qwen2Config(vocab_size=len(trained)).save_pretrained(tmp_path)
    loaded = load_tokenizer(str(tmp_path))
    assert type(loaded).__name__ == "Qwen2Tokenizer"
    for text in texts[:50] + [" At least 28 dead, $2.4bn in aid, 350 votes ."]:
        assert trained(text)["input_ids"] == loaded(text, add_special_tokens=False)["input_ids"], text
    assert loaded.tokenize(" 350 votes") == ["Ġ", "3", "5", "0", "Ġvotes"]  # digits one by one, as Qwen2.5


def test_a_gpu_job_without_cuda_stops_at_once_naming_rule_torch_and_fix(tmp_path, monkeypatch):
    import torch

    from faithdpo.generation import generate_file
    from faithdpo.models import require_device
    from faithdpo.training import train_dpo

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=rf"rule train_dpo: .*device: cuda.* no CUDA device \(torch "
                                           rf"{torch.__version__.replace('+', '.')}.*set `device: cpu`"):
        require_device("cuda", "train_dpo")
    assert require_device("cpu", "generate_eval") == "cpu"  # a declared CPU run
    # before reading any input: the missing files below are never reached
    with pytest.raises(RuntimeError, match="rule train_dpo: the config says device: cuda"):
        train_dpo(str(tmp_path / "none.parquet"), str(tmp_path / "no-model"), str(tmp_path / "a"),
                  str(tmp_path / "h.json"), device="cuda", rule="train_dpo")
    with pytest.raises(RuntimeError, match="rule generate_candidates: the config says device: cuda"):
        generate_file(str(tmp_path / "none.parquet"), str(tmp_path / "no-model"), str(tmp_path / "o.parquet"),
                      device="cuda", rule="generate_candidates")


@pytest.mark.parametrize("bf16, expected", [(True, "bfloat16"), (False, "float16")])
def test_bf16_only_where_the_gpu_supports_it(monkeypatch, caplog, bf16, expected):
    import torch

    from faithdpo.models import compute_dtype
    from faithdpo.training import precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla T4")
    caplog.set_level("INFO", logger="faithdpo")
    assert compute_dtype() == expected
    assert ("Tesla T4 does not support bf16: computing in fp16" in caplog.text) == (not bf16)
    assert precision(expected) == {"bf16": bf16, "fp16": not bf16}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert compute_dtype() == "float32" and precision("float32") == {"bf16": False, "fp16": False}
