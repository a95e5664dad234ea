"""The config checks a schema cannot express (faithdpo.config_check), in-process: each bad
combination of keys stops with the key named, and the shipped configs pass. That the workflow
runs them before any job is in test_workflow.py (test_the_workflow_checks_the_config_before_any_job)."""

from __future__ import annotations

import copy
import functools
import re

import pandas as pd
import pytest
import yaml

from faithdpo.config_check import check_config
from workflow_helpers import REPO, demo_config, merge_config

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@functools.cache
def _shipped(name: str) -> dict:
    return demo_config(name)


def config_with(override: dict, base: str = "config/demo.yaml") -> dict:
    """A shipped config (the demo's by default) with ``override`` layered on, schema defaults
    filled, as the Snakefile hands it to check_config."""
    from snakemake.utils import validate

    cfg = merge_config(copy.deepcopy(_shipped(base)), override)
    validate(cfg, str(SCHEMA), set_default=True)
    return cfg


@pytest.fixture(autouse=True)
def in_the_repository(monkeypatch):
    """Paths in the configs (demo/tiny-qwen2, config/accelerate/...) are relative to the project."""
    monkeypatch.chdir(REPO)


@pytest.mark.parametrize("base", ["config/config.yaml", "config/demo.yaml", ".test/config.yaml",
                                  "config/demo-dev.yaml", "config/cluster-7b.yaml", "config/gpu-80gb.yaml",
                                  "config/xsum.yaml"])
def test_the_shipped_configs_pass(base):
    check_config(config_with({}, base), SCHEMA)


@pytest.mark.parametrize("override, message", [
    ({"data": {"n_train": 121}}, r"data\.n_train = 121 is larger than the synthetic train split"),
    ({"prompt": {"max_prompt_tokens": 600}}, r"prompt\.max_prompt_tokens \(600\) \+ generation\.max_new_tokens"),
    ({"experiments": {"x": {"training": {"lora_r": 0}}}}, r"experiments\.x: training\.lora_r = 0: 0 is less than the minimum of 1"),
    ({"experiments": {"x": {"pairs": {"stratgy": "best_vs_worst"}}}}, r"experiments\.x: pairs = .*'stratgy' was unexpected"),
    ({"data": {"source": "local", "dir": "nowhere"}},
     r"data\.dir = 'nowhere', the train split \(data\.splits\.train = 'train'\): no train\.parquet, train\.jsonl or "
     r"train\.csv there\. Place one in data\.dir"),
    ({"model": {"source": "local", "path": "no_model"}}, r"model\.path = 'no_model': model directory no_model does not exist"),
    ({"model": {"source": "local", "path": None}}, r"model\.source is 'local' but model\.path is not set"),
    ({"training": {"num_nodes": 2}},
     r"training\.num_nodes = 2: training across nodes is not supported\. A train_dpo job holds the GPUs of one node: "
     r"raise training\.num_processes"),
    ({"experiments": {"big": {"training": {"num_nodes": 4}}}}, r"experiments\.big\.training\.num_nodes = 4: training across"),
    ({"training": {"accelerate_config": "config/accelerate/fsdp_qlora.yaml"}},
     r"uses FSDP, which needs CUDA, but the config says device: cpu"),
    ({"scoring": {"number_pattern": "(["}},
     r"scoring\.number_pattern = '\(\[' is not a valid regular expression .*allowed: default, seed"),
    ({"scoring": {"ner_labels": ["PERSONN"]}},
     r"scoring\.ner_labels = \['PERSONN'\]: 'PERSONN' is not a label of the spaCy model 'en_core_web_sm' "
     r"\(scoring\.spacy_model\); allowed: CARDINAL, .*PERSON, "),
    ({"scoring": {"checker": {"enabled": False}}, "experiments": {"x": {"pairs": {"rank_by": "checker"}}}},
     r"experiments\.x\.pairs\.rank_by is 'checker' but scoring\.checker\.enabled is false"),
    ({"scoring": {"checker": {"enabled": False}}, "pairs": {"rank_by": "checker"}},
     r"^pairs\.rank_by is 'checker' but scoring\.checker\.enabled is false"),
    ({"scoring": {"checker": {"path": "no_checker"}}},
     r"scoring\.checker\.path = 'no_checker': checker directory no_checker does not exist"),
    ({"scoring": {"checker": {"path": None}}}, r"scoring\.checker\.source is 'local' but scoring\.checker\.path is not set"),
    ({"model": {"source": "tiny", "tiny": {"hidden_size": 32, "intermediate_size": 96}},
      "generation": {"quantization": "nf4"}},
     r"generation\.quantization is nf4 but model\.tiny's layers q_proj \(32 x 32\), .* cannot run in 4 bits"),
])
def test_a_bad_combination_of_keys_is_named(override, message):
    with pytest.raises(ValueError, match=message):
        check_config(config_with(override), SCHEMA)


def test_the_tiny_models_own_sizes_pass_with_nf4():
    check_config(config_with({"model": {"source": "tiny"}, "generation": {"quantization": "nf4"}}), SCHEMA)


def write_splits(folder, rows: int) -> None:
    folder.mkdir()
    for split in ("train", "validation"):
        pd.DataFrame({"id": [f"r{i}" for i in range(rows)], "article": "x", "highlights": "y"}).to_parquet(
            folder / f"{split}.parquet")


def test_a_local_split_smaller_than_the_sample_is_named(tmp_path):
    write_splits(tmp_path / "data", rows=2)
    local = {"data": {"source": "local", "dir": str(tmp_path / "data"), "n_train": 2, "n_validation": 2}}
    check_config(config_with(local), SCHEMA)
    with pytest.raises(ValueError, match=re.escape(f"data.n_train = 3 is larger than the 2 rows of "
                                                   f"{tmp_path / 'data' / 'train.parquet'}; lower data.n_train")):
        check_config(config_with(merge_config(local, {"data": {"n_train": 3}})), SCHEMA)


@pytest.mark.parametrize("key", ["model", "checker"])
def test_a_local_weights_directory_without_safetensors_is_named(tmp_path, key):
    (tmp_path / "config.json").write_text("{}")
    override = ({"model": {"source": "local", "path": str(tmp_path)}} if key == "model"
                else {"scoring": {"checker": {"source": "local", "path": str(tmp_path)}}})
    where = "model.path" if key == "model" else "scoring.checker.path"
    with pytest.raises(ValueError, match=re.escape(f"{where} = {str(tmp_path)!r}: {key} directory {tmp_path} ")
                       + r".*\*\.safetensors"):
        check_config(config_with(override), SCHEMA)
    (tmp_path / "model.safetensors").write_bytes(b"")
    check_config(config_with(override), SCHEMA)


def test_an_experiments_accelerate_config_is_read_from_its_path(tmp_path):
    path = tmp_path / "acc.yaml"
    path.write_text(yaml.safe_dump({"distributed_type": "MULTI_CPU"}))
    override = {"experiments": {"multi": {"training": {"accelerate_config": str(path)}}}}
    with pytest.raises(ValueError, match=r"distributed_type is 'MULTI_CPU'; allowed: MULTI_GPU, FSDP, DEEPSPEED"):
        check_config(config_with(override), SCHEMA)


# Any summarization set (data.columns, data.splits, Parquet, JSON Lines or CSV): a local set is
# checked from each file's schema or header before any job.
def write_set(folder, files: dict[str, str]) -> str:
    """``files``: name -> content, written into ``folder``."""
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return str(folder)


NEWSROOM = {"train.jsonl": '{"story": "A.", "standfirst": "a"}\n' * 3,
            "test.csv": "story,standfirst,slug\nB.,b,007\nC.,c,010\n"}


def local_set(folder, **data) -> dict:
    return {"data": {"source": "local", "dir": folder, "n_train": 2, "n_validation": 2,
                     "splits": {"validation": "test"}, "columns": {"id": None, "article": "story",
                                                                  "highlights": "standfirst"}, **data}}


def test_a_local_set_in_its_own_names_and_formats_passes(tmp_path):
    check_config(config_with(local_set(write_set(tmp_path / "d", NEWSROOM))), SCHEMA)


def test_a_column_a_local_file_lacks_is_named_with_the_columns_found(tmp_path):
    folder = write_set(tmp_path / "d", NEWSROOM)
    override = merge_config(local_set(folder), {"data": {"columns": {"id": "slug"}}})
    message = (f"{tmp_path / 'd' / 'train.jsonl'}: data.columns.id = 'slug' is not one of its columns. "
               "Its columns: ['story', 'standfirst']")
    with pytest.raises(ValueError, match=re.escape(message)):
        check_config(config_with(override), SCHEMA)


def test_a_bad_csv_column_is_caught_from_the_header_alone(tmp_path):
    """The header is all the check reads: the rows below it may be anything."""
    folder = write_set(tmp_path / "d", {**NEWSROOM, "test.csv": "story,summary\n\"never closed\n"})
    with pytest.raises(ValueError, match=re.escape(
            f"{tmp_path / 'd' / 'test.csv'}: data.columns.highlights = 'standfirst' is not one of its columns. "
            "Its columns: ['story', 'summary']")):
        check_config(config_with(local_set(folder)), SCHEMA)


def test_two_files_of_one_split_are_refused(tmp_path):
    folder = write_set(tmp_path / "d", {**NEWSROOM, "test.jsonl": '{"story": "B.", "standfirst": "b"}\n'})
    with pytest.raises(ValueError, match=r"the validation split \(data\.splits\.validation = 'test'\): .*test\.jsonl "
                                         r"and .*test\.csv both exist; keep one"):
        check_config(config_with(local_set(folder)), SCHEMA)


def test_the_split_names_map_to_the_files(tmp_path):
    """data.splits.validation names the file: with the default (validation) the set has none."""
    folder = write_set(tmp_path / "d", NEWSROOM)
    with pytest.raises(ValueError, match=r"the validation split \(data\.splits\.validation = 'validation'\): "
                                         r"no validation\.parquet"):
        check_config(config_with(merge_config(local_set(folder), {"data": {"splits": {"validation": "validation"}}})),
                     SCHEMA)


@pytest.mark.parametrize("data, message", [
    ({"splits": {"validation": "train"}},
     r"data\.splits\.train and data\.splits\.validation are both 'train': the validation sample would share"),
    ({"columns": {"highlights": "article"}},
     r"data\.columns\.article and data\.columns\.highlights both name the column 'article'"),
])
def test_a_split_or_column_named_twice_is_refused(data, message):
    with pytest.raises(ValueError, match=message):
        check_config(config_with({"data": data}, "config/config.yaml"), SCHEMA)
