# Report: base vs DPO hallucination with intervals and tests, quality, pair confounds,
# training curves and examples. `snakemake --report` embeds the same figures.


rule report:
    input:
        scores_base=f"{OUT}/scores/eval_base.parquet",
        scores_dpo=f"{OUT}/scores/eval_dpo.parquet",
        data=f"{OUT}/data/validation.parquet",
        pairs=preference_pairs,
        log_history=LOG_HISTORY,
        modules=package_modules("report"),
    output:
        report=report(
            f"{OUT}/report.md", caption="../report/report.rst", category="Report"
        ),
        metrics=f"{OUT}/metrics.json",
        rates=report(
            f"{OUT}/figures/rates.png",
            caption="../report/rates.rst",
            category="Hallucination",
        ),
        training=report(
            f"{OUT}/figures/training.png",
            caption="../report/training.rst",
            category="Training",
        ),
        pair_lengths=report(
            f"{OUT}/figures/pair_lengths.png",
            caption="../report/pair_lengths.rst",
            category="Preference pairs",
        ),
    log:
        f"{OUT}/logs/report.log",
    conda:
        "../../envs/nlp.yaml"
    threads: 1
    params:
        config={k: v for k, v in config.items() if k != "resources"},
        alpha=config["report"]["alpha"],
        resamples=config["report"]["bootstrap_resamples"],
        n_examples=config["report"]["examples"],
        seed=config["seed"],
    script:
        "../scripts/report.py"
