# Pairs: chosen = reference highlights, rejected = the worst candidate by badness.


checkpoint select_pairs:
    input:
        scores=f"{OUT}/scores/candidates.parquet",
        prompts=prompts_of("train"),
        data=f"{OUT}/data/train.parquet",
        model=base_model_dir(),
        modules=package_modules("pairs"),
    output:
        f"{OUT}/pairs/train.parquet",
    log:
        f"{OUT}/logs/select_pairs.log",
    conda:
        "../../envs/nlp.yaml"
    threads: 1
    params:
        min_badness=config["pairs"]["min_badness"],
    script:
        "../scripts/select_pairs.py"
