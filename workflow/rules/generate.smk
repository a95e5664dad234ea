# Generation (GPU): K sampled candidates per train article; greedy evaluation summaries.


rule generate_candidates:
    input:
        prompts=prompts_of("train"),
        model=base_model_dir(),
        modules=package_modules("generation"),
    output:
        f"{OUT}/candidates/train.parquet",
    log:
        f"{OUT}/logs/generate_candidates.log",
    conda:
        "../../envs/gpu.yaml"
    threads: config["resources"]["gpu_threads"]
    resources:
        **gpu_resources(),
    params:
        generation=generation_params(),
    script:
        "../scripts/generate.py"


rule generate_eval:
    input:
        prompts=prompts_of("validation"),
        model=base_model_dir(),
        adapter=lambda wc: ADAPTER if wc.model == "dpo" else [],
        # The pairs the adapter was trained on, read through their checkpoint: when they
        # come out unchanged, training is skipped and so is this job.
        pairs=lambda wc: preference_pairs(wc) if wc.model == "dpo" else [],
        modules=package_modules("generation"),
    output:
        f"{OUT}/eval/{{model}}.parquet",
    log:
        f"{OUT}/logs/generate_eval/{{model}}.log",
    conda:
        "../../envs/gpu.yaml"
    threads: config["resources"]["gpu_threads"]
    resources:
        **gpu_resources(),
    params:
        generation=generation_params(model="eval"),
    script:
        "../scripts/generate.py"
