# Checker (GPU where there is one): a MiniCheck-class model judges each evaluation summary
# (and, for pairs.rank_by: checker, each train candidate) against the article as the prompt gave it, a second opinion beside regex + NER (see
# faithdpo/checker.py). Its scores are raw support probabilities: the threshold is applied
# where they are read (the report; select_pairs for checker-ranked pairs), so changing it
# reruns no checker step.

if CHECKER["enabled"] and CHECKER["source"] == "hub":

    rule download_checker:
        output:
            directory(checker_dir()),
        log:
            f"{OUT}/logs/download_checker.log",
        benchmark:
            f"{OUT}/benchmarks/download_checker.tsv"
        localrule: True
        conda:
            "../../envs/gpu.yaml"
        threads: 1
        params:
            repo_id=CHECKER["name"],
            revision=CHECKER["revision"],
        script:
            "../scripts/download_model.py"


if CHECKER["enabled"] and CHECKER["source"] == "tiny":

    rule build_tiny_checker:
        input:
            modules=package_modules("tiny_checker"),
        output:
            directory(f"{OUT}/models/checker"),
        log:
            f"{OUT}/logs/build_tiny_checker.log",
        benchmark:
            f"{OUT}/benchmarks/build_tiny_checker.tsv"
        conda:
            "../../envs/gpu.yaml"
        threads: 2
        params:
            **CHECKER["tiny"],
            seed=config["seed"],
        script:
            "../scripts/build_tiny_checker.py"


if CHECKER["enabled"]:

    rule check_eval:
        input:
            summaries="{xdir}/eval/{model}.parquet",
            # the article as the prompt gave it (cut to the budget) is the evidence
            prompts=prompts_of("validation"),
            # Read through the checkpoint, like generate_eval: unchanged pairs skip this job too.
            pairs=lambda wc: preference_pairs(wc) if wc.model != "base" else [],
            checker=checker_dir(),
            modules=package_modules("checker", "gpu_memory"),
        output:
            checks="{xdir}/checks/eval_{model}.parquet",
            gpu_memory="{xdir}/benchmarks/check_eval/{model}.gpu.json",
        log:
            "{xdir}/logs/check_eval/{model}.log",
        benchmark:
            "{xdir}/benchmarks/check_eval/{model}.tsv"
        conda:
            "../../envs/gpu.yaml"
        threads: config["resources"]["gpu_threads"]
        resources:
            **gpu_resources(),
        params:
            batch_size=CHECKER["batch_size"],
            chunk_tokens=CHECKER["chunk_tokens"],
            device=config["device"],
        script:
            "../scripts/check.py"

    rule check_candidates:
        input:
            summaries=f"{OUT}/candidates/train.parquet",
            prompts=prompts_of("train"),
            checker=checker_dir(),
            modules=package_modules("checker", "gpu_memory"),
        output:
            checks=f"{OUT}/checks/candidates.parquet",
            gpu_memory=f"{OUT}/benchmarks/check_candidates.gpu.json",
        log:
            f"{OUT}/logs/check_candidates.log",
        benchmark:
            f"{OUT}/benchmarks/check_candidates.tsv"
        conda:
            "../../envs/gpu.yaml"
        threads: config["resources"]["gpu_threads"]
        resources:
            **gpu_resources(),
        params:
            batch_size=CHECKER["batch_size"],
            chunk_tokens=CHECKER["chunk_tokens"],
            device=config["device"],
        script:
            "../scripts/check.py"
