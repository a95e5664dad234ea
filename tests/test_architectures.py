"""Other architectures than Qwen2: LoRA's target modules found by inspecting the model
(training.lora_target_modules: auto), a wrong name refused before training, the CPU 4-bit shape
check read from any model's config, and tiny Llama and Phi-3 models built from their configs
alone taken through load, generate, DPO, merge and evaluation beside the demo's Qwen2."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest

from faithdpo import training
from faithdpo.io import write_parquet
from faithdpo.training import TrainingConfig, resolve_target_modules
from workflow_helpers import REPO, demo_config, merge_config

QWEN2 = str(REPO / "demo" / "tiny-qwen2")  # the demo's committed model; its tokenizer serves them all
# The linear layers of a decoder block and the head, as each architecture names them.
LINEAR = {
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"],
    "phi3": ["o_proj", "qkv_proj", "gate_up_proj", "down_proj", "lm_head"],
}
AUTO = {"qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"], "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
        "phi3": ["qkv_proj", "o_proj"]}
# Linear sizes multiples of 64: bitsandbytes' CPU 4-bit kernel runs them (models.nf4_shape_problems).
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
            max_position_embeddings=512)


def full_names(arch: str, layers: int = 2) -> list[str]:
    """Module names as named_modules gives them: model.layers.{i}.self_attn.q_proj, ..., lm_head."""
    names = []
    for i in range(layers):
        for leaf in LINEAR[arch][:-1]:
            part = "mlp" if "gate" in leaf or leaf in ("up_proj", "down_proj") else "self_attn"
            names.append(f"model.layers.{i}.{part}.{leaf}")
    return names + ["lm_head"]


def build_model(arch: str, path: Path, seed: int = 0, **sizes) -> str:
    """A randomly initialised ``arch`` model from its config alone, saved with the demo's tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Phi3Config

    from faithdpo.models import load_tokenizer

    tokenizer = load_tokenizer(QWEN2)
    eos = tokenizer.eos_token_id
    config = {"llama": LlamaConfig, "phi3": Phi3Config}[arch](
        vocab_size=len(tokenizer), bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, **{**TINY, **sizes})
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = model.generation_config.pad_token_id = eos
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return str(path)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """Tiny Llama and Phi-3 directories beside the demo's Qwen2, by architecture."""
    root = tmp_path_factory.mktemp("architectures")
    return {"qwen2": QWEN2, **{arch: build_model(arch, root / arch) for arch in ("llama", "phi3")}}


# --- resolving auto, and the explicit list ---------------------------------------------------------

@pytest.mark.parametrize("arch", LINEAR)
def test_auto_is_the_attention_projections_by_leaf_or_full_name(arch):
    assert resolve_target_modules("auto", LINEAR[arch]) == AUTO[arch]
    assert resolve_target_modules("auto", full_names(arch)) == AUTO[arch]


def test_an_explicit_list_wins_over_auto():
    assert resolve_target_modules(["v_proj", "q_proj"], full_names("llama")) == ["v_proj", "q_proj"]
    assert resolve_target_modules(["gate_up_proj"], full_names("phi3")) == ["gate_up_proj"]
    # a dotted tail, as PEFT matches it
    assert resolve_target_modules(["self_attn.q_proj"], full_names("qwen2")) == ["self_attn.q_proj"]


def test_a_name_the_model_lacks_is_refused_naming_its_linear_layers_once_each():
    with pytest.raises(ValueError) as error:
        resolve_target_modules(["q_proj", "qkv_proj", "v_proj"], full_names("phi3"), "model m (phi3)")
    assert str(error.value) == (
        "training.lora_target_modules names q_proj, v_proj, which model m (phi3) does not have: model m (phi3)'s "
        "linear layers are o_proj, qkv_proj, gate_up_proj, down_proj, lm_head. Name some of these, or set "
        "training.lora_target_modules: auto.")
    with pytest.raises(ValueError, match=r"names proj, which the model does not have"):
        resolve_target_modules(["proj"], full_names("llama"))  # a part of a name is not a name


def test_auto_without_known_attention_projections_names_the_layers():
    gpt2 = ["transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_fc", "lm_head"]
    with pytest.raises(ValueError, match=r"lora_target_modules is auto, but the model has none of the attention "
                                         r"projections auto knows \(q_proj, k_proj, v_proj, o_proj; qkv_proj, "
                                         r"o_proj\): the model's linear layers are c_attn, c_proj, c_fc, lm_head\. Set "
                                         r"training\.lora_target_modules to a list of them"):
        resolve_target_modules("auto", gpt2)


@pytest.mark.parametrize("value", [[], "all-linear", ["q_proj", ""], [1]])
def test_lora_target_modules_must_be_auto_or_a_list_of_names(value):
    with pytest.raises(ValueError, match=r"training\.lora_target_modules = .*; allowed: auto, or a non-empty list"):
        TrainingConfig(lora_target_modules=value)


def test_auto_is_the_default():
    assert TrainingConfig().lora_target_modules == "auto"


@pytest.mark.parametrize("arch", LINEAR)
def test_a_model_on_disk_is_inspected_on_the_meta_device(model_dirs, arch):
    from faithdpo.models import leaf_names, linear_layers, meta_model

    model = meta_model(model_dirs[arch])
    assert next(model.parameters()).device.type == "meta"  # no weights loaded
    assert leaf_names(linear_layers(model)) == LINEAR[arch]
    assert training.model_target_modules("auto", model_dirs[arch]) == AUTO[arch]


def test_a_4bit_model_counts_its_linear_layers(model_dirs):
    """bitsandbytes' Linear4bit is a linear layer: a loaded 4-bit model resolves as its meta twin."""
    from faithdpo.models import linear_layers, load_model, meta_model

    four_bit = load_model(QWEN2, quantization="nf4")
    quantized = [name for name, m in four_bit.named_modules() if type(m).__name__ == "Linear4bit"]
    assert len(quantized) == 14  # 2 layers x (q, k, v, o, gate, up, down)
    assert linear_layers(four_bit) == linear_layers(meta_model(QWEN2))
    assert training.target_modules_of("auto", four_bit) == AUTO["qwen2"]


def test_a_wrong_name_stops_train_dpo_before_training(model_dirs, tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(training, "run_training", never)
    monkeypatch.setattr(training, "read_parquet", never)  # before the pairs are even read
    with pytest.raises(ValueError, match=rf"training\.lora_target_modules names q_proj, which model "
                                         rf"{model_dirs['phi3']} \(phi3\) does not have: .* linear layers are o_proj, "
                                         rf"qkv_proj, gate_up_proj, down_proj, lm_head\."):
        training.train_dpo(str(tmp_path / "pairs.parquet"), model_dirs["phi3"], str(tmp_path / "adapter"),
                           str(tmp_path / "h.json"), lora_target_modules=["q_proj", "o_proj"])
    assert not (tmp_path / "adapter").exists()


# --- the CPU 4-bit shape check, read from any model's config ----------------------------------------

def bad_model_dir(arch: str, path: Path, **sizes) -> str:
    """A model directory as the config check sees it: config.json and a weights file (never read)."""
    from transformers import LlamaConfig, Phi3Config

    path.mkdir()
    config = {"llama": LlamaConfig, "phi3": Phi3Config}[arch]
    config(vocab_size=1191, pad_token_id=0, bos_token_id=0, eos_token_id=0, **{**TINY, **sizes}) \
        .save_pretrained(str(path))
    (path / "model.safetensors").write_bytes(b"")
    return str(path)


def demo_with(override: dict) -> dict:
    """The demo's config with ``override``, schema defaults filled, as the Snakefile checks it."""
    from snakemake.utils import validate

    cfg = merge_config(copy.deepcopy(demo_config("config/demo.yaml")), override)
    validate(cfg, str(REPO / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    return cfg


@pytest.mark.parametrize("arch, sizes, problems", [
    ("phi3", {"hidden_size": 96}, "o_proj (96 x 96), qkv_proj (192 x 96), gate_up_proj (256 x 96)"),
    ("llama", {"intermediate_size": 100}, "gate_proj (100 x 64), up_proj (100 x 64), down_proj (64 x 100)"),
])
def test_the_config_check_refuses_a_local_model_the_cpu_4bit_kernel_cannot_run(arch, sizes, problems, tmp_path,
                                                                              monkeypatch):
    from faithdpo.config_check import check_config

    monkeypatch.chdir(REPO)  # the demo config's paths
    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    model = bad_model_dir(arch, tmp_path / arch, **sizes)
    cfg = demo_with({"model": {"source": "local", "path": model}, "generation": {"quantization": "nf4"}})
    with pytest.raises(ValueError) as error:
        check_config(cfg, schema)
    assert str(error.value).startswith(
        f"generation.quantization is nf4 on device cpu, but model.path {model!r} has layers that cannot run in 4 bits "
        f"on CPUs with AVX-512 BF16: {problems} (out x in;")
    check_config(demo_with({"model": {"source": "local", "path": model}}), schema)  # unquantized: fine
    check_config({**cfg, "device": "cuda"}, schema)  # on a GPU: fine
    good = bad_model_dir(arch, tmp_path / "good")
    check_config(demo_with({"model": {"source": "local", "path": good}, "generation": {"quantization": "nf4"}}), schema)


def test_the_demo_model_passes_the_general_check_as_the_tiny_one_does():
    """The meta-device shapes of the committed Qwen2 are the tiny path's (tiny_model.qwen2_linear_shapes)."""
    from faithdpo.models import meta_model, nf4_layer_shapes, nf4_shape_problems
    from faithdpo.tiny_model import qwen2_linear_shapes

    shapes = nf4_layer_shapes(meta_model(QWEN2))
    assert shapes == qwen2_linear_shapes(64, 192, 4, 2)  # model.tiny's defaults, which built it
    assert nf4_shape_problems(shapes) == []


# --- the report -----------------------------------------------------------------------------------------

def test_the_report_names_the_lora_target_modules():
    from faithdpo.report import training_section, training_summary

    step = {"loss": 0.6, "step": 1, "rewards/accuracies": 0.5, "rewards/margins": 0.1}
    runs = [{"seed": s, **training_summary([{"lora_target_modules": ["qkv_proj", "o_proj"]}, step])} for s in (0, 1)]
    assert runs[0]["lora_target_modules"] == ["qkv_proj", "o_proj"]
    lines = training_section({"pairs": {"pairs": 8}, "training": runs, "training_warnings": []}, {"training": "t.png"})
    assert lines.count("LoRA target modules: qkv_proj, o_proj.") == 1
    older = [{"seed": 0, **training_summary([step])}]  # a log written before the entry existed
    assert not any("LoRA target" in line for line in training_section(
        {"pairs": {"pairs": 8}, "training": older, "training_warnings": []}, {"training": "t.png"}))


# --- end to end ---------------------------------------------------------------------------------------

PROMPT = "Summarize the following news article.\n\nArticle: {article}\n\nSummary:"
ARTICLES = ["Rain fell in Bergen on Monday, 5 mm in an hour.", "Anna Berg won the race in Oslo by 12 seconds.",
            "The council in Tromso voted 7 to 2 for a new bridge.", "Storms closed 3 roads near Bodo on Friday."]


@pytest.mark.slow  # trains, merges and generates
@pytest.mark.parametrize("arch", ["llama", "phi3", "qwen2"])
def test_load_generate_train_merge_and_evaluate(arch, model_dirs, tmp_path, caplog):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file

    from faithdpo.generation import GenerationConfig, HFEngine
    from faithdpo.merge import merge_adapter
    from faithdpo.models import load_model, load_tokenizer

    caplog.set_level("INFO", logger="faithdpo")
    model_dir = model_dirs[arch]
    prompts = [PROMPT.replace("{article}", a) for a in ARTICLES]
    generation = GenerationConfig(max_new_tokens=8, batch_size=4, stop_strings=[])
    base_rows = HFEngine(model_dir, generation).generate([f"a{i}" for i in range(4)], prompts)
    assert [r["id"] for r in base_rows] == ["a0", "a1", "a2", "a3"] and all(r["prompt_tokens"] > 0 for r in base_rows)

    pairs = tmp_path / "pairs.parquet"
    write_parquet(pd.DataFrame({"prompt": prompts, "chosen": [" " + a for a in ARTICLES],
                                "rejected": " Nobody won in Atlantis by 99 votes ."}), pairs)
    adapter = tmp_path / "adapter"
    history = training.train_dpo(
        str(pairs), model_dir, str(adapter), str(tmp_path / "log_history.json"), quantization="nf4", lora_r=4,
        lora_alpha=8, lora_dropout=0.0, per_device_train_batch_size=2, gradient_accumulation_steps=1,
        max_length=128, learning_rate=5e-2, num_train_epochs=1, save_steps=100)
    # auto, resolved by inspecting the model: in the log, the log history (the report's) and the adapter
    assert f"LoRA target modules: {', '.join(AUTO[arch])} (training.lora_target_modules: auto)" in caplog.text
    assert history[0] == {"lora_target_modules": AUTO[arch]}
    assert sorted(json.loads((adapter / "adapter_config.json").read_text())["target_modules"]) == sorted(AUTO[arch])
    assert max(h.get("step", 0) for h in history) == 2  # 4 pairs / batch 2: the optimizer stepped
    layers = {"llama": 7, "phi3": 4, "qwen2": 14}[arch]  # every block's linear layers (the head stays unquantized)
    assert f"{layers} 4-bit linear layers" in caplog.text
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    lora_b = [w for name, w in weights.items() if "lora_B" in name]
    assert len(lora_b) == len(AUTO[arch]) * (2 if arch == "qwen2" else 1)  # one per adapted layer
    assert all(w.abs().max() > 0 for w in lora_b), "LoRA B starts at zero: training moved every one"

    merged_dir = tmp_path / "merged"
    merge_adapter(model_dir, str(adapter), str(merged_dir))
    evaluation = HFEngine(str(merged_dir), GenerationConfig(max_new_tokens=8, batch_size=4, stop_strings=[],
                                                            dtype="float32"))
    rows = evaluation.generate([f"a{i}" for i in range(4)], prompts)
    assert len(rows) == 4 and all(isinstance(r["summary"], str) for r in rows)

    ids = load_tokenizer(model_dir)(prompts[:1], return_tensors="pt")
    with torch.no_grad():
        merged = evaluation.model(**ids).logits
        on_the_fly = PeftModel.from_pretrained(load_model(model_dir, dtype="float32"), str(adapter))(**ids).logits
        base = load_model(model_dir, dtype="float32")(**ids).logits
    torch.testing.assert_close(merged, on_the_fly, rtol=1e-4, atol=1e-4)  # tests/test_merge.py's tolerance
    assert (merged - base).abs().max() > 1e-3, "the adapter changed the model"
