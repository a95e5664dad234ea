"""Workflow set-up: the config checks that a JSON schema cannot express, run before any job.

The Snakefile validates the config against workflow/schemas/config.schema.yaml, then
workflow/rules/common.smk calls :func:`check_config` on it: a bad combination of keys stops the
run at once, the key named, instead of failing in a job hours later. A plain function of the
config (and of the files it names, such as a local model or data directory), tested in
tests/test_config_check.py. No rule runs it, so editing it reruns no step.
"""

from __future__ import annotations

import os
from pathlib import Path

import jsonschema
import yaml

from faithdpo.launch import check_launch
from faithdpo.models import check_model_dir, nf4_shape_problems
from faithdpo.scoring import check_scoring_config
from faithdpo.tiny_model import qwen2_linear_shapes

SPLITS = ["train", "validation"]


def experiment_config(cfg: dict, name: str) -> dict:
    """The config experiment ``name`` runs: the config's pairs and training with its overrides."""
    overrides = {} if name == "main" else cfg["experiments"][name]
    return {**cfg, **{key: {**cfg[key], **overrides.get(key, {})} for key in ("pairs", "training")}}


def check_config(cfg: dict, schema: str | Path) -> None:
    """Cross-key checks of a config already validated against ``schema`` (its path); raise
    ValueError naming the key."""
    budget = cfg["prompt"]["max_prompt_tokens"] + cfg["generation"]["max_new_tokens"]
    if budget > cfg["training"]["max_length"]:
        raise ValueError(
            f"prompt.max_prompt_tokens ({cfg['prompt']['max_prompt_tokens']}) + generation.max_new_tokens "
            f"({cfg['generation']['max_new_tokens']}) = {budget} exceeds training.max_length "
            f"({cfg['training']['max_length']}): summaries would be cut in training. Lower one or raise max_length."
        )
    # the regex + NER keys (scoring without its checker)
    check_scoring_config({key: value for key, value in cfg["scoring"].items() if key != "checker"})
    check_launch(cfg["training"], cfg["device"])
    schema = yaml.safe_load(Path(schema).read_text())
    for name in cfg["experiments"]:
        merged = experiment_config(cfg, name)
        for error in jsonschema.Draft202012Validator(schema).iter_errors(merged):
            key = ".".join(str(p) for p in error.absolute_path)
            raise ValueError(f"experiments.{name}: {key} = {error.instance!r}: {error.message}")
        check_launch(merged["training"], cfg["device"], where=f"experiments.{name}.training")
    for name in ["main", *cfg["experiments"]]:
        rank_by = experiment_config(cfg, name)["pairs"]["rank_by"]
        if rank_by == "checker" and not cfg["scoring"]["checker"]["enabled"]:
            where = "pairs" if name == "main" else f"experiments.{name}.pairs"
            raise ValueError(
                f"{where}.rank_by is 'checker' but scoring.checker.enabled is false: enable the checker "
                "(it then checks the train candidates too), or rank by badness."
            )
    if cfg["model"]["source"] == "tiny" and cfg["generation"]["quantization"] == "nf4":
        problems = nf4_shape_problems(qwen2_linear_shapes(**cfg["model"]["tiny"]))
        if problems:
            raise ValueError(
                f"generation.quantization is nf4 but model.tiny's layers {', '.join(problems)} cannot "
                "run in 4 bits on CPUs with AVX-512 BF16: make model.tiny.hidden_size and "
                "intermediate_size multiples of 64 (and kv heads x head size a multiple of 32)."
            )
    checker = cfg["scoring"]["checker"]
    if checker["enabled"] and checker["source"] == "local":
        if not checker["path"]:
            raise ValueError("scoring.checker.source is 'local' but scoring.checker.path is not set")
        weights_dir("scoring.checker.path", checker["path"], "checker")
    if cfg["model"]["source"] == "local":
        if not cfg["model"]["path"]:
            raise ValueError("model.source is 'local' but model.path is not set")
        weights_dir("model.path", cfg["model"]["path"], "model")
    if cfg["data"]["source"] == "local":
        import pyarrow.parquet as pq

        for split in SPLITS:
            path = os.path.join(cfg["data"]["dir"], f"{split}.parquet")
            if not os.path.exists(path):
                raise ValueError(
                    f"data.source is 'local' but {path} does not exist: place {split}.parquet "
                    "(columns id, article, highlights) in data.dir, or set data.source: hub "
                    "to download it with `snakemake download_dataset`."
                )
            rows, n = pq.ParquetFile(path).metadata.num_rows, cfg["data"][f"n_{split}"]
            if n > rows:
                raise ValueError(
                    f"data.n_{split} = {n} is larger than the {rows} rows of {path}; "
                    f"lower data.n_{split} (at most {rows})."
                )
    if cfg["data"]["source"] == "synthetic":
        for split in SPLITS:
            size, n = cfg["data"]["synthetic"][split], cfg["data"][f"n_{split}"]
            if n > size:
                raise ValueError(
                    f"data.n_{split} = {n} is larger than the synthetic {split} split "
                    f"(data.synthetic.{split} = {size}); lower data.n_{split} or raise data.synthetic.{split}."
                )


def weights_dir(key: str, path: str, kind: str) -> None:
    """models.check_model_dir on the directory that config key ``key`` names, as a ValueError naming the key."""
    try:
        check_model_dir(path, kind)
    except FileNotFoundError as exc:
        raise ValueError(f"{key} = {path!r}: {exc}") from None
