# Models: the hub download (real run) or the demo's tiny Qwen2, built locally.

if config["model"]["source"] == "hub":

    rule download_model:
        output:
            directory(hub_model_dir()),
        log:
            f"{OUT}/logs/download_model.log",
        benchmark:
            f"{OUT}/benchmarks/download_model.tsv"
        localrule: True
        conda:
            "../../envs/gpu.yaml"
        threads: 1
        params:
            repo_id=config["model"]["name"],
            revision=config["model"]["revision"],
        script:
            "../scripts/download_model.py"


if config["model"]["source"] == "tiny":

    rule build_tiny_model:
        input:
            corpus=f"{OUT}/raw/pretrain.parquet",
            modules=package_modules("tiny_model"),
        output:
            directory(f"{OUT}/models/base"),
        log:
            f"{OUT}/logs/build_tiny_model.log",
        benchmark:
            f"{OUT}/benchmarks/build_tiny_model.tsv"
        conda:
            "../../envs/gpu.yaml"
        threads: 2
        params:
            **config["model"]["tiny"],
            # a function, so that "{article}" is not taken for a wildcard
            template=lambda wc: config["prompt"]["template"],
            seed=config["seed"],
            max_length=config["training"]["max_length"],
        script:
            "../scripts/build_tiny_model.py"
