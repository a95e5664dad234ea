# Shared helpers: output locations, input functions, config checks that the schema
# cannot express, and the package modules each rule depends on.
import os

from faithdpo import models
from faithdpo.deps import module_closure

OUT = config["outdir"].rstrip("/")
SPLITS = ["train", "validation"]
MODELS = ["base", "dpo"]
ADAPTER = f"{OUT}/models/dpo/adapter"
LOG_HISTORY = f"{OUT}/models/dpo/log_history.json"
# Relative to the working directory, so that the recorded inputs stay valid when the
# project folder is moved or copied.
PACKAGE_DIR = os.path.relpath(os.path.join(workflow.basedir, "faithdpo"))


wildcard_constraints:
    split="train|validation",
    model="base|dpo",


def package_modules(*entry_modules):
    """Source files of the package modules a rule runs, imports followed.

    Declared as inputs so that editing the logic reruns exactly the stale steps
    (Snakemake tracks a rule's script, not what the script imports).
    """
    return module_closure(PACKAGE_DIR, list(entry_modules))


def check_config(cfg):
    """Cross-key checks that a JSON schema cannot express; stop before any job runs."""
    budget = cfg["prompt"]["max_prompt_tokens"] + cfg["generation"]["max_new_tokens"]
    if budget > cfg["training"]["max_length"]:
        raise ValueError(
            f"prompt.max_prompt_tokens ({cfg['prompt']['max_prompt_tokens']}) + generation.max_new_tokens "
            f"({cfg['generation']['max_new_tokens']}) = {budget} exceeds training.max_length "
            f"({cfg['training']['max_length']}): summaries would be cut in training. Lower one or raise max_length."
        )
    if cfg["model"]["source"] == "local" and not cfg["model"]["path"]:
        raise ValueError("model.source is 'local' but model.path is not set")
    if cfg["data"]["source"] == "synthetic":
        for split in SPLITS:
            size, n = cfg["data"]["synthetic"][split], cfg["data"][f"n_{split}"]
            if n > size:
                raise ValueError(
                    f"data.n_{split} = {n} is larger than the synthetic {split} split "
                    f"(data.synthetic.{split} = {size}); lower data.n_{split} or raise data.synthetic.{split}."
                )


check_config(config)


def raw_split(wildcards):
    """Where a split's raw rows come from: the synthetic corpus or a data directory."""
    if config["data"]["source"] == "synthetic":
        return f"{OUT}/raw/{wildcards.split}.parquet"
    return os.path.join(config["data"]["dir"], f"{wildcards.split}.parquet")


def prompts_of(split):
    """The prompts of a split, read through the checkpoint so that a rebuild that leaves
    them byte-identical does not rerun generation (see README, "Only stale steps rerun").
    """
    return lambda wildcards: checkpoints.build_prompts.get(split=split).output[0]


def preference_pairs(wildcards):
    """The pairs, read through the checkpoint: unchanged pairs do not retrain."""
    return checkpoints.select_pairs.get().output[0]


def hub_model_dir():
    return models.hub_model_dir(config["model"]["name"])


def base_model_dir():
    source = config["model"]["source"]
    if source == "tiny":
        return f"{OUT}/models/base"
    if source == "local":
        return config["model"]["path"]
    return hub_model_dir()


def generation_params(model=None):
    """Decoding settings: K samples per train article, or greedy for evaluation."""
    gen = config["generation"]
    common = {
        "max_new_tokens": gen["max_new_tokens"],
        "batch_size": gen["batch_size"],
        "stop_strings": gen["stop_strings"],
        "seed": config["seed"],
        "trust_remote_code": config["model"]["trust_remote_code"],
    }
    if model is not None:
        return common
    return {**common, **gen["candidates"], "do_sample": True}


def training_params():
    return {
        **config["training"],
        "seed": config["seed"],
        "trust_remote_code": config["model"]["trust_remote_code"],
    }


def gpu_resources():
    res = config["resources"]
    return {"gpu": 1, "runtime": res["gpu_runtime"], "mem_mb": res["gpu_mem_mb"]}
