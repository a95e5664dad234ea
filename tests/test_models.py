import json
from pathlib import Path

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


def test_model_dir_without_safetensors_names_the_fix(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no \\*.safetensors weights"):
        check_model_dir(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist; run `snakemake download_model`"):
        check_model_dir(str(tmp_path / "missing"))


def test_hub_model_dir():
    assert hub_model_dir("Qwen/Qwen2.5-1.5B") == "resources/models/Qwen--Qwen2.5-1.5B"
