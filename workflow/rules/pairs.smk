# Pairs: chosen vs rejected by pairs.strategy (see README), then filtered; one set per experiment.


checkpoint select_pairs:
    input:
        scores=f"{OUT}/scores/candidates.parquet",
        prompts=prompts_of("train"),
        data=f"{OUT}/data/train.parquet",
        model=base_model_dir(),
        modules=package_modules("pairs"),
    output:
        "{xdir}/pairs/train.parquet",
    log:
        "{xdir}/logs/select_pairs.log",
    conda:
        "../../envs/nlp.yaml"
    threads: 1
    params:
        pairs=pair_params,
    script:
        "../scripts/select_pairs.py"
