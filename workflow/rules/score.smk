# Scoring (CPU): hallucinated numbers (regex) and entities (spaCy NER) per summary,
# against the article as the prompt gave it (+ highlights, unless scoring.reference: article).


rule score_candidates:
    input:
        summaries=f"{OUT}/candidates/train.parquet",
        data=f"{OUT}/data/train.parquet",
        # the article as the prompt gave it (cut to the budget) is the reference
        prompts=prompts_of("train"),
        modules=package_modules("scoring"),
    output:
        f"{OUT}/scores/candidates.parquet",
    log:
        f"{OUT}/logs/score_candidates.log",
    benchmark:
        f"{OUT}/benchmarks/score_candidates.tsv"
    conda:
        "../../envs/nlp.yaml"
    threads: config["scoring"]["n_process"]
    params:
        scoring=regex_ner_scoring(config),
    script:
        "../scripts/score.py"


rule score_eval:
    input:
        summaries="{xdir}/eval/{model}.parquet",
        data=f"{OUT}/data/validation.parquet",
        prompts=prompts_of("validation"),
        modules=package_modules("scoring"),
    output:
        "{xdir}/scores/eval_{model}.parquet",
    log:
        "{xdir}/logs/score_eval/{model}.log",
    benchmark:
        "{xdir}/benchmarks/score_eval/{model}.tsv"
    conda:
        "../../envs/nlp.yaml"
    threads: config["scoring"]["n_process"]
    params:
        scoring=regex_ner_scoring(config),
    script:
        "../scripts/score.py"
