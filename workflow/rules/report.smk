# Report: base vs DPO hallucination with intervals and tests, quality, pair confounds,
# training curves, data checks and examples, one per experiment; then the comparison of
# every experiment beside the base model. `snakemake --report` embeds the figures.


rule report:
    input:
        scores_base=f"{OUT}/scores/eval_base.parquet",
        # one per training seed (see training_seeds), in the seeds' order
        scores_dpo=per_seed_if_trained("{xdir}/scores/eval_{model}.parquet"),
        # the checker's scores (scoring.checker.enabled): the base model's, then each seed's
        checks_base=checks_if_enabled(f"{OUT}/checks/eval_base.parquet"),
        checks_dpo=lambda wc: (
            per_seed_if_trained("{xdir}/checks/eval_{model}.parquet")(wc)
            if CHECKER["enabled"]
            else []
        ),
        data=f"{OUT}/data/validation.parquet",
        pairs=preference_pairs,
        selection=pair_selection,
        log_history=per_seed_if_trained("{xdir}/models/{model}/log_history.json"),
        data_stats=expand(f"{OUT}/data/{{split}}.stats.json", split=SPLITS),
        prompts=expand(f"{OUT}/prompts/{{split}}.parquet", split=SPLITS),
        benchmarks=report_benchmarks,
        modules=package_modules("report"),
    output:
        report=report(
            "{xdir}/report.md",
            caption="../report/report.rst",
            category="Report",
            subcategory="{xdir}",
        ),
        metrics="{xdir}/metrics.json",
        # the Cost section per job, which the comparison sums over the run
        cost="{xdir}/cost.tsv",
        rates=report(
            "{xdir}/figures/rates.png",
            caption="../report/rates.rst",
            category="Hallucination",
            subcategory="{xdir}",
        ),
        training=report(
            "{xdir}/figures/training.png",
            caption="../report/training.rst",
            category="Training",
            subcategory="{xdir}",
        ),
        pair_lengths=report(
            "{xdir}/figures/pair_lengths.png",
            caption="../report/pair_lengths.rst",
            category="Preference pairs",
            subcategory="{xdir}",
        ),
    log:
        "{xdir}/logs/report.log",
    benchmark:
        "{xdir}/benchmarks/report.tsv"
    conda:
        "../../envs/nlp.yaml"
    threads: 1
    params:
        config=lambda wc: report_config(wc.xdir),
        alpha=config["report"]["alpha"],
        resamples=config["report"]["bootstrap_resamples"],
        n_examples=config["report"]["examples"],
        seed=config["seed"],
        seeds=lambda wc: training_seeds(wc.xdir),
        checker_threshold=CHECKER["threshold"] if CHECKER["enabled"] else None,
    script:
        "../scripts/report.py"


rule comparison:
    input:
        metrics=[f"{xdir_of(name)}/metrics.json" for name in ["main", *EXPERIMENTS]],
        # the whole run's cost, without asking each experiment's checkpoint again
        costs=[f"{xdir_of(name)}/cost.tsv" for name in ["main", *EXPERIMENTS]],
        benchmarks=[
            f"{xdir_of(name)}/benchmarks/report.tsv" for name in ["main", *EXPERIMENTS]
        ],
        modules=package_modules("comparison"),
    output:
        report(
            f"{OUT}/comparison.md",
            caption="../report/comparison.rst",
            category="Report",
        ),
    log:
        f"{OUT}/logs/comparison.log",
    benchmark:
        f"{OUT}/benchmarks/comparison.tsv"
    conda:
        "../../envs/nlp.yaml"
    threads: 1
    params:
        names=["main", *EXPERIMENTS],
        # what supported the summaries' items (scoring.reference), which its text states
        reference=config["scoring"]["reference"],
    script:
        "../scripts/comparison.py"
