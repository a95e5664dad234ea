"""Workflow set-up: the config checks that a JSON schema cannot express, run before any job.

The Snakefile validates the config against workflow/schemas/config.schema.yaml, then
workflow/rules/common.smk calls :func:`check_config` on it: a bad combination of keys stops the
run at once, the key named, instead of failing in a job hours later. A plain function of the
config (and of the files it names, such as a local model or data directory), tested in
tests/test_config_check.py. No rule runs it, so editing it reruns no step.
"""

from __future__ import annotations

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


def regex_ner_scoring(cfg: dict) -> dict:
    """The regex + NER scorer's settings: scoring without its checker, so that changing the
    checker reruns no regex + NER step (and the reverse: the checker rules never read these)."""
    return {key: value for key, value in cfg["scoring"].items() if key != "checker"}


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
    check_prompt_format(cfg)
    # the regex + NER keys (scoring without its checker)
    check_scoring_config(regex_ner_scoring(cfg))
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
        if cfg["generation"]["quantization"] == "nf4" and cfg["device"] == "cpu":
            local_nf4_shapes(cfg["model"]["path"], cfg["model"]["trust_remote_code"])
    if cfg["data"]["source"] != "synthetic":
        check_data_mapping(cfg["data"])
    if cfg["data"]["source"] == "local":
        import pyarrow.parquet as pq

        from faithdpo.data import check_columns, file_columns, split_file

        for split in SPLITS:
            # the one file of the split, and its columns from its schema or header alone
            path = split_file(cfg["data"]["dir"], cfg["data"]["splits"][split], split)
            check_columns(path, file_columns(path), cfg["data"]["columns"])
            if not path.endswith(".parquet"):
                continue  # counting a JSON Lines or CSV file's rows reads it all: prepare_split checks n
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


def local_nf4_shapes(path: str, trust_remote_code: bool) -> None:
    """Refuse a local model whose layer sizes bitsandbytes' CPU 4-bit kernel cannot run, read
    from its config.json on the meta device (models.meta_model: no weights, about a second;
    torch and transformers are imported only for this combination of keys)."""
    from faithdpo.models import meta_model, nf4_layer_shapes

    problems = nf4_shape_problems(nf4_layer_shapes(meta_model(path, trust_remote_code)))
    if problems:
        raise ValueError(
            f"generation.quantization is nf4 on device cpu, but model.path {path!r} has layers that cannot run in "
            f"4 bits on CPUs with AVX-512 BF16: {', '.join(problems)} (out x in; each input size must be a multiple "
            "of 64 and each output size of 32). Set generation.quantization: none, run on a GPU (device: cuda), "
            "or use a model with such sizes."
        )


def check_prompt_format(cfg: dict) -> None:
    """prompt.chat against the keys it changes: a system turn needs chat, and a chat reply is not
    cut at a whitespace-only stop string (generation.stop_strings_for says why)."""
    from faithdpo.generation import stop_strings_for

    chat = cfg["prompt"]["chat"]
    if cfg["prompt"]["system"] is not None and not chat:
        raise ValueError(
            "prompt.system is set but prompt.chat is false: a plain prompt has no system turn. Set prompt.chat: "
            "true for an instruction-tuned model, or put the instruction in prompt.template."
        )
    stop_strings_for(cfg["generation"]["stop_strings"], chat)


def check_data_mapping(data: dict) -> None:
    """data.splits and data.columns each name distinct things: one split sampled twice would
    evaluate on training articles, one column read twice would make the summary the article."""
    splits = data["splits"]
    if splits["train"] == splits["validation"]:
        raise ValueError(
            f"data.splits.train and data.splits.validation are both {splits['train']!r}: the validation "
            "sample would share articles with the train sample. Name the dataset's evaluation split "
            "(validation, test or dev) in data.splits.validation."
        )
    named = [(key, name) for key, name in data["columns"].items() if name is not None]
    for i, (key, name) in enumerate(named):
        for other, other_name in named[i + 1:]:
            if name == other_name:
                raise ValueError(f"data.columns.{key} and data.columns.{other} both name the column {name!r}; "
                                 "each must name its own column.")


def weights_dir(key: str, path: str, kind: str) -> None:
    """models.check_model_dir on the directory that config key ``key`` names, as a ValueError naming the key."""
    try:
        check_model_dir(path, kind)
    except FileNotFoundError as exc:
        raise ValueError(f"{key} = {path!r}: {exc}") from None
