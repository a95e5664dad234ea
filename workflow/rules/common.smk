# Shared helpers: output locations, input functions, the config checks that the schema
# cannot express (run from faithdpo/config_check.py), and the package modules each rule
# depends on.
import json
import os
import re

from faithdpo import models
from faithdpo import config_check
from faithdpo.config_check import check_config, regex_ner_scoring
from faithdpo.data import split_file
from faithdpo.generation import stop_strings_for
from faithdpo.deps import module_closure

OUT = config["outdir"].rstrip("/")
SPLITS = ["train", "validation"]
# The dataset's own name of each split (data.splits): what download_dataset fetches and the
# file in data.dir. Outputs keep the workflow's names.
DATASET_SPLITS = config["data"]["splits"]
# Experiments vary the pairs/training keys; the shared steps (data, candidates, their
# scores, the base model's evaluation) live in OUT and run once. The config's own
# pairs/training are the experiment "main", in OUT itself; experiment X is in
# OUT/experiments/X. Rules downstream of the pairs take the folder as wildcard {xdir}.
EXPERIMENTS = config["experiments"]
# The model-based consistency checker (check.smk), beside regex + NER.
CHECKER = config["scoring"]["checker"]
SCHEMA = "workflow/schemas/config.schema.yaml"
# Relative to the working directory, so that the recorded inputs stay valid when the
# project folder is moved or copied.
PACKAGE_DIR = os.path.relpath(os.path.join(workflow.basedir, "faithdpo"))


wildcard_constraints:
    split="train|validation",
    # the base model, or the DPO model of one training seed (see training_seeds)
    model="base|dpo_seed[0-9]+",
    tseed="[0-9]+",
    xdir=re.escape(OUT) + "(?:/experiments/[A-Za-z0-9_-]+)?",


def xdir_of(name):
    return OUT if name == "main" else f"{OUT}/experiments/{name}"


def experiment_of(xdir):
    return "main" if xdir == OUT else os.path.basename(xdir)


def experiment_config(xdir):
    """The pairs and training settings of an experiment: the config's, with its overrides
    (merged as the config check merges them)."""
    merged = config_check.experiment_config(config, experiment_of(xdir))
    return {key: merged[key] for key in ("pairs", "training")}


def training_seeds(xdir):
    """An experiment's training seeds: training.seeds, or the run's seed alone."""
    seeds = experiment_config(xdir)["training"]["seeds"]
    return list(seeds) if seeds is not None else [config["seed"]]


def dpo_models(xdir):
    """The DPO models of an experiment, one per training seed (the {model} wildcard)."""
    return [f"dpo_seed{seed}" for seed in training_seeds(xdir)]


def package_modules(*entry_modules):
    """Source files of the package modules a rule runs, imports followed.

    Declared as inputs so that editing the logic reruns exactly the stale steps
    (Snakemake tracks a rule's script, not what the script imports).
    """
    return module_closure(PACKAGE_DIR, list(entry_modules))


# Cross-key checks that the schema cannot express (faithdpo/config_check.py): a bad config
# stops here, before any job, with the key named.
check_config(config, os.path.join(workflow.basedir, SCHEMA))


def raw_split(wildcards):
    """Where a split's raw rows come from: the synthetic corpus, or the dataset's own split
    (data.splits) in data.dir, downloaded as Parquet (hub) or the one Parquet, JSON Lines or
    CSV file there (local; faithdpo.data.split_file)."""
    if config["data"]["source"] == "synthetic":
        return f"{OUT}/raw/{wildcards.split}.parquet"
    name = DATASET_SPLITS[wildcards.split]
    if config["data"]["source"] == "local":
        return split_file(config["data"]["dir"], name, wildcards.split)
    return os.path.join(config["data"]["dir"], f"{name}.parquet")


def data_columns():
    """The dataset's own column names (data.columns); the synthetic corpus has the workflow's."""
    if config["data"]["source"] == "synthetic":
        return None
    return config["data"]["columns"]


def prompts_of(split):
    """The prompts of a split, read through the checkpoint so that a rebuild that leaves
    them byte-identical does not rerun generation (see docs/reruns.md).
    """
    return lambda wildcards: checkpoints.build_prompts.get(split=split).output[0]


def preference_pairs(wildcards):
    """An experiment's pairs, read through the checkpoint: unchanged pairs do not retrain."""
    return checkpoints.select_pairs.get(xdir=wildcards.xdir).output.pairs


def pair_selection(wildcards):
    """An experiment's selection summary (see pairs.selection_summary), through the checkpoint."""
    return checkpoints.select_pairs.get(xdir=wildcards.xdir).output.selection


def trained(xdir):
    """Whether an experiment has enough pairs to train (read through its checkpoint)."""
    with open(checkpoints.select_pairs.get(xdir=xdir).output.selection) as f:
        return json.load(f)["trained"]


def per_seed_if_trained(path):
    """``path`` for each DPO model of an experiment with enough pairs to train, else no
    input: an experiment below pairs.min_pairs is reported as not trained and never asks
    for a DPO model."""
    return lambda wildcards: (
        [path.format(xdir=wildcards.xdir, model=m) for m in dpo_models(wildcards.xdir)]
        if trained(wildcards.xdir)
        else []
    )


SHARDS = [
    f"{i}-of-{config['generation']['shards']}"
    for i in range(1, config["generation"]["shards"] + 1)
]


def gpu_memory(benchmark):
    """Where a GPU job records its peak GPU memory: beside its benchmark file."""
    return benchmark.removesuffix(".tsv") + ".gpu.json"


def shared_benchmarks():
    """Benchmark files (and GPU memory files) of the steps every experiment shares."""
    bench = f"{OUT}/benchmarks"
    files = []
    if config["data"]["source"] == "synthetic":
        corpus = SPLITS + (["pretrain"] if config["model"]["source"] == "tiny" else [])
        files += [f"{bench}/synthesize_corpus/{split}.tsv" for split in corpus]
    if config["data"]["source"] == "hub":
        files += [
            f"{bench}/download_dataset/{DATASET_SPLITS[split]}.tsv" for split in SPLITS
        ]
    if config["model"]["source"] != "local":
        model_step = (
            "build_tiny_model"
            if config["model"]["source"] == "tiny"
            else "download_model"
        )
        files.append(f"{bench}/{model_step}.tsv")
    for step in ("prepare_split", "build_prompts"):
        files += [f"{bench}/{step}/{split}.tsv" for split in SPLITS]
    gpu = [f"{bench}/generate_candidates/{shard}.tsv" for shard in SHARDS]
    gpu += [f"{bench}/generate_eval/base.{shard}.tsv" for shard in SHARDS]
    files += gpu + [gpu_memory(b) for b in gpu]
    files += [
        f"{bench}/{step}.tsv" for step in ("merge_candidates", "score_candidates")
    ]
    if CHECKER["enabled"]:
        files += [f"{bench}/check_eval/base.tsv", f"{bench}/check_eval/base.gpu.json"]
        step = {"hub": "download_checker", "tiny": "build_tiny_checker"}.get(
            CHECKER["source"]
        )
        if step:
            files.append(f"{bench}/{step}.tsv")
    return files + [f"{bench}/{step}/base.tsv" for step in ("merge_eval", "score_eval")]


def experiment_benchmarks(xdir):
    """Benchmark files of an experiment's own steps: its pairs and, if it trained, its DPO model."""
    bench = f"{xdir}/benchmarks"
    files = [f"{bench}/select_pairs.tsv"]
    if ranks_by_checker(xdir):
        files += [
            f"{OUT}/benchmarks/check_candidates.{ext}" for ext in ("tsv", "gpu.json")
        ]
    if not trained(xdir):
        return files
    for seed, model in zip(training_seeds(xdir), dpo_models(xdir)):
        gpu = [f"{bench}/train_dpo/seed{seed}.tsv"]
        gpu += [f"{bench}/generate_eval/{model}.{shard}.tsv" for shard in SHARDS]
        files += gpu + [gpu_memory(b) for b in gpu]
        files.append(f"{bench}/merge_adapter/seed{seed}.tsv")
        files += [
            f"{bench}/{step}/{model}.tsv" for step in ("merge_eval", "score_eval")
        ]
        if CHECKER["enabled"]:
            files += [
                f"{bench}/check_eval/{model}.tsv",
                f"{bench}/check_eval/{model}.gpu.json",
            ]
    return files


def report_benchmarks(wildcards):
    """What an experiment's results cost: the shared steps and its own (not the report itself).

    Marked ancient: a rerun step writes a new benchmark file even when its outputs come out
    byte-identical (and the checkpoints spare what follows); that alone must not rerun the
    report. A report that reruns reads the benchmark files as they are then.
    """
    files = shared_benchmarks() + experiment_benchmarks(wildcards.xdir)
    return [ancient(f) for f in files]


def checker_dir():
    """The checker's weights: downloaded by download_checker, a local directory, or the demo's
    tiny checker rebuilt by build_tiny_checker."""
    if CHECKER["source"] == "local":
        return CHECKER["path"]
    if CHECKER["source"] == "tiny":
        return f"{OUT}/models/checker"
    return models.hub_model_dir(CHECKER["name"])


def checks_if_enabled(path):
    """``path`` (an input) when the checker is enabled, else no input."""
    return [path] if CHECKER["enabled"] else []


def ranks_by_checker(xdir):
    return experiment_config(xdir)["pairs"]["rank_by"] == "checker"


def candidate_checks(wildcards):
    """The checker's scores of the train candidates, for an experiment that ranks by them."""
    return (
        [f"{OUT}/checks/candidates.parquet"] if ranks_by_checker(wildcards.xdir) else []
    )


def hub_model_dir():
    return models.hub_model_dir(config["model"]["name"])


def base_model_dir():
    source = config["model"]["source"]
    if source == "tiny":
        return f"{OUT}/models/base"
    if source == "local":
        return config["model"]["path"]
    return hub_model_dir()


def eval_model_dir(wildcards):
    """The weights evaluated: the base model, or a seed's DPO adapter merged into it."""
    if wildcards.model == "base":
        return base_model_dir()
    return f"{wildcards.xdir}/models/{wildcards.model}/merged"


def chat_params(system=False):
    """prompt.chat (and prompt.system) for the steps that read the prompts, when chat is on:
    a plain run's parameters stay as they were before the keys existed (no params rerun).
    """
    prompt = config["prompt"]
    if not prompt["chat"]:
        return {}
    return {"chat": True, **({"system": prompt["system"]} if system else {})}


def generation_params(model=None):
    """Decoding settings: K samples per train article, or greedy for evaluation."""
    gen = config["generation"]
    common = {
        key: gen[key]
        for key in (
            "max_new_tokens",
            "batch_size",
            "vllm_batch_size",
            "max_batch_tokens",
            "stop_strings",
            "engine",
            "quantization",
        )
    }
    common.update(
        seed=config["seed"],
        # the stop strings resolved: a plain template's default is a blank line, a chat prompt's none
        stop_strings=stop_strings_for(gen["stop_strings"], config["prompt"]["chat"]),
        # a chat prompt: replies end at the template's end-of-turn token too
        **chat_params(),
        trust_remote_code=config["model"]["trust_remote_code"],
        device=config["device"],
    )
    if model is not None:
        # both models, so that base vs DPO differ by the adapter alone (see merge_adapter)
        return {
            **common,
            "dtype": gen["eval_dtype"],
            "batch_size": gen["eval_batch_size"] or gen["batch_size"],
        }
    return {**common, **gen["candidates"], "do_sample": True}


def generation_env():
    """The software of the generation rules: vLLM's own environment for engine: vllm."""
    engine = config["generation"]["engine"]
    return "../../envs/vllm.yaml" if engine == "vllm" else "../../envs/gpu.yaml"


def pair_params(wildcards):
    pairs = experiment_config(wildcards.xdir)["pairs"]
    # The scorer finds minimal_swap's items and, for any strategy, chosen sides that state
    # facts from an article's cut tail (see pairs.chosen_from_cut_tail).
    ranked = (
        {"checker_threshold": CHECKER["threshold"]}
        if pairs["rank_by"] == "checker"
        else {}
    )
    return {
        **pairs,
        "scoring": regex_ner_scoring(config),
        "seed": config["seed"],
        **chat_params(),
        **ranked,
    }


def training_params(wildcards):
    """One seed's training: the list of seeds is not a parameter of it, so that adding a
    seed trains that seed alone."""
    training = experiment_config(wildcards.xdir)["training"]
    return {
        **{key: value for key, value in training.items() if key != "seeds"},
        "seed": int(wildcards.tseed),
        "trust_remote_code": config["model"]["trust_remote_code"],
        "device": config["device"],
        # a chat prompt: both sides of a pair end with the template's end-of-turn token
        **chat_params(),
        # the trackers' run: the experiment's name and seed; their files in its folder
        "run_name": f"{experiment_of(wildcards.xdir)}-seed{wildcards.tseed}",
        "tracking_dir": f"{wildcards.xdir}/tracking/seed{wildcards.tseed}",
    }


def gpu_resources():
    res = config["resources"]
    return {
        "gpu": res["gpu"],
        "runtime": res["gpu_runtime"],
        "mem_mb": res["gpu_mem_mb"],
    }


def training_processes(wildcards):
    return experiment_config(wildcards.xdir)["training"]["num_processes"]


def training_resources():
    """train_dpo holds the GPUs, host memory and threads of each training process, on one node."""
    res = config["resources"]
    return {
        "nodes": 1,
        "gpu": lambda wildcards: res["gpu"] * training_processes(wildcards),
        "runtime": res["gpu_runtime"],
        "mem_mb": lambda wildcards: res["gpu_mem_mb"] * training_processes(wildcards),
    }


def accelerate_config(wildcards):
    """An experiment's accelerate config file, an input: editing it retrains."""
    path = experiment_config(wildcards.xdir)["training"]["accelerate_config"]
    return [path] if path else []


def training_threads(wildcards):
    return config["resources"]["gpu_threads"] * training_processes(wildcards)


def report_config(xdir):
    """The config a report shows: this experiment's pairs/training (its seeds resolved), no resources."""
    shown = {k: v for k, v in config.items() if k not in ("resources", "experiments")}
    settings = experiment_config(xdir)
    settings["training"] = {**settings["training"], "seeds": training_seeds(xdir)}
    return {**shown, **settings, "experiment": experiment_of(xdir)}
