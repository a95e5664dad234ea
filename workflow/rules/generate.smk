# Generation (GPU): K sampled candidates per train article; greedy evaluation summaries.
# Each is split into generation.shards GPU jobs (scatter), merged in prompt order (gather).


rule generate_candidates:
    input:
        prompts=prompts_of("train"),
        model=base_model_dir(),
        modules=package_modules("generation", "gpu_memory"),
    output:
        summaries=f"{OUT}/candidates/shards/train.{{scatteritem}}.parquet",
        gpu_memory=f"{OUT}/benchmarks/generate_candidates/{{scatteritem}}.gpu.json",
    log:
        f"{OUT}/logs/generate_candidates/{{scatteritem}}.log",
    benchmark:
        f"{OUT}/benchmarks/generate_candidates/{{scatteritem}}.tsv"
    conda:
        generation_env()
    threads: config["resources"]["gpu_threads"]
    resources:
        **gpu_resources(),
    params:
        generation=generation_params(),
    script:
        "../scripts/generate.py"


rule merge_candidates:
    input:
        shards=gather.shard(f"{OUT}/candidates/shards/train.{{scatteritem}}.parquet"),
        prompts=prompts_of("train"),
        modules=package_modules("generation"),
    output:
        f"{OUT}/candidates/train.parquet",
    log:
        f"{OUT}/logs/merge_candidates.log",
    benchmark:
        f"{OUT}/benchmarks/merge_candidates.tsv"
    conda:
        "../../envs/nlp.yaml"
    threads: 1
    params:
        num_return_sequences=config["generation"]["candidates"]["num_return_sequences"],
    script:
        "../scripts/merge_shards.py"


rule generate_eval:
    input:
        prompts=prompts_of("validation"),
        model=eval_model_dir,
        # The pairs the adapter was trained on, read through their checkpoint: when they
        # come out unchanged, training is skipped and so is this job.
        pairs=lambda wc: preference_pairs(wc) if wc.model != "base" else [],
        modules=package_modules("generation", "gpu_memory"),
    output:
        summaries="{xdir}/eval/shards/{model}.{scatteritem}.parquet",
        gpu_memory="{xdir}/benchmarks/generate_eval/{model}.{scatteritem}.gpu.json",
    log:
        "{xdir}/logs/generate_eval/{model}.{scatteritem}.log",
    benchmark:
        "{xdir}/benchmarks/generate_eval/{model}.{scatteritem}.tsv"
    conda:
        generation_env()
    threads: config["resources"]["gpu_threads"]
    resources:
        **gpu_resources(),
    params:
        generation=generation_params(model="eval"),
    script:
        "../scripts/generate.py"


rule merge_eval:
    input:
        shards=lambda wc: gather.shard(
            f"{wc.xdir}/eval/shards/{wc.model}.{{scatteritem}}.parquet"
        ),
        prompts=prompts_of("validation"),
        # Read through the checkpoint, like generate_eval: unchanged pairs skip this job too.
        pairs=lambda wc: preference_pairs(wc) if wc.model != "base" else [],
        modules=package_modules("generation"),
    output:
        "{xdir}/eval/{model}.parquet",
    log:
        "{xdir}/logs/merge_eval/{model}.log",
    benchmark:
        "{xdir}/benchmarks/merge_eval/{model}.tsv"
    conda:
        "../../envs/nlp.yaml"
    threads: 1
    params:
        num_return_sequences=1,
    script:
        "../scripts/merge_shards.py"
