# Pairs: chosen vs rejected by pairs.strategy (see docs/experiments.md), then filtered; one set per experiment.


checkpoint select_pairs:
    input:
        scores=f"{OUT}/scores/candidates.parquet",
        prompts=prompts_of("train"),
        data=f"{OUT}/data/train.parquet",
        model=base_model_dir(),
        # the checker's support of every candidate, for pairs.rank_by: checker
        checks=candidate_checks,
        modules=package_modules("pairs"),
    output:
        pairs="{xdir}/pairs/train.parquet",
        # what the strategy and each filter dropped, and whether there are pairs.min_pairs
        selection="{xdir}/pairs/selection.json",
    log:
        "{xdir}/logs/select_pairs.log",
    benchmark:
        "{xdir}/benchmarks/select_pairs.tsv"
    conda:
        "../../envs/nlp.yaml"
    threads: 1
    params:
        pairs=pair_params,
    script:
        "../scripts/select_pairs.py"
