# Report: base vs DPO hallucination rates, training summary, links to the score files.


rule report:
    input:
        scores_base=f"{OUT}/scores/eval_base.parquet",
        scores_dpo=f"{OUT}/scores/eval_dpo.parquet",
        pairs=f"{OUT}/pairs/train.parquet",
        log_history=LOG_HISTORY,
        modules=package_modules("report"),
    output:
        report=f"{OUT}/report.md",
        metrics=f"{OUT}/metrics.json",
    log:
        f"{OUT}/logs/report.log",
    conda:
        "../../envs/nlp.yaml"
    params:
        config={k: v for k, v in config.items() if k != "resources"},
    script:
        "../scripts/report.py"
