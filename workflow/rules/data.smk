# Data: raw splits (hub download or synthetic corpus), validated seeded samples, prompts.

if config["data"]["source"] == "hub":

    # One job per split, named as the dataset names it (data.splits), in its own columns.
    rule download_dataset:
        output:
            os.path.join(config["data"]["dir"], "{dataset_split}.parquet"),
        log:
            f"{OUT}/logs/download_dataset/{{dataset_split}}.log",
        benchmark:
            f"{OUT}/benchmarks/download_dataset/{{dataset_split}}.tsv"
        wildcard_constraints:
            dataset_split="|".join(re.escape(name) for name in DATASET_SPLITS.values()),
        localrule: True
        conda:
            "../../envs/nlp.yaml"
        threads: 1
        params:
            path=config["data"]["hub"]["path"],
            name=config["data"]["hub"]["name"],
            revision=config["data"]["hub"]["revision"],
        script:
            "../scripts/download_dataset.py"


if config["data"]["source"] == "synthetic":

    rule synthesize_corpus:
        input:
            modules=package_modules("corpus"),
        output:
            f"{OUT}/raw/{{corpus_split}}.parquet",
        log:
            f"{OUT}/logs/synthesize_corpus/{{corpus_split}}.log",
        benchmark:
            f"{OUT}/benchmarks/synthesize_corpus/{{corpus_split}}.tsv"
        wildcard_constraints:
            corpus_split="train|validation|pretrain",
        conda:
            "../../envs/nlp.yaml"
        threads: 1
        params:
            n=lambda wc: config["data"]["synthetic"][wc.corpus_split],
            # the stream of stories; validation can come from the held-apart dev stream
            split=lambda wc: (
                config["data"]["synthetic"]["validation_stream"]
                if wc.corpus_split == "validation"
                else wc.corpus_split
            ),
            seed=config["seed"],
        script:
            "../scripts/synthesize_corpus.py"


rule prepare_split:
    input:
        raw=raw_split,
        modules=package_modules("data"),
    output:
        data=f"{OUT}/data/{{split}}.parquet",
        stats=f"{OUT}/data/{{split}}.stats.json",
    log:
        f"{OUT}/logs/prepare_split/{{split}}.log",
    benchmark:
        f"{OUT}/benchmarks/prepare_split/{{split}}.tsv"
    conda:
        "../../envs/nlp.yaml"
    threads: 1
    resources:
        # the whole raw split in memory (CNN/DailyMail train: 287k rows, ~1.3 GB of text)
        mem_mb=config["resources"]["data_mem_mb"],
    params:
        n=lambda wc: config["data"][f"n_{wc.split}"],
        seed=config["seed"],
        on_bad_row=config["data"]["on_bad_row"],
        # the dataset's own column names (the synthetic corpus has the workflow's)
        columns=data_columns(),
    script:
        "../scripts/prepare_split.py"


checkpoint build_prompts:
    input:
        data=f"{OUT}/data/{{split}}.parquet",
        model=base_model_dir(),
        modules=package_modules("prompts"),
    output:
        f"{OUT}/prompts/{{split}}.parquet",
    log:
        f"{OUT}/logs/build_prompts/{{split}}.log",
    benchmark:
        f"{OUT}/benchmarks/build_prompts/{{split}}.tsv"
    conda:
        "../../envs/gpu.yaml"
    threads: 1
    params:
        # prompt.chat and prompt.system, when chat is on: the model's chat template around the
        # filled template
        **chat_params(system=True),
        # a function, so that "{article}" is not taken for a wildcard
        template=lambda wc: config["prompt"]["template"],
        max_prompt_tokens=config["prompt"]["max_prompt_tokens"],
        over_budget=config["prompt"]["over_budget"],
    script:
        "../scripts/build_prompts.py"
