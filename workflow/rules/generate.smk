# Generation (GPU): K sampled candidates per train article; greedy evaluation summaries.


rule generate_candidates:
    input:
        prompts=f"{OUT}/prompts/train.parquet",
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
        prompts=f"{OUT}/prompts/validation.parquet",
        model=base_model_dir(),
        adapter=lambda wc: ADAPTER if wc.model == "dpo" else [],
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
