# Training (GPU): TRL DPOTrainer with LoRA on q/k/v/o, optionally over a 4-bit NF4 base, one
# adapter per training seed; then each adapter merged into the base weights, which evaluation
# generates from.


rule train_dpo:
    input:
        pairs=preference_pairs,
        model=base_model_dir(),
        accelerate_config=accelerate_config,
        # train_worker: each process of a multi-process training (launch.py starts it by name)
        modules=package_modules("training", "train_worker"),
    output:
        adapter=directory("{xdir}/models/dpo_seed{tseed}/adapter"),
        log_history="{xdir}/models/dpo_seed{tseed}/log_history.json",
        gpu_memory="{xdir}/benchmarks/train_dpo/seed{tseed}.gpu.json",
    log:
        "{xdir}/logs/train_dpo/seed{tseed}.log",
    benchmark:
        "{xdir}/benchmarks/train_dpo/seed{tseed}.tsv"
    conda:
        "../../envs/gpu.yaml"
    threads: training_threads
    resources:
        **training_resources(),
    params:
        training=training_params,
    script:
        "../scripts/train_dpo.py"


rule merge_adapter:
    input:
        model=base_model_dir(),
        adapter="{xdir}/models/dpo_seed{tseed}/adapter",
        # Read through the checkpoint, like generate_eval: unchanged pairs skip this job too.
        pairs=preference_pairs,
        modules=package_modules("merge"),
    output:
        directory("{xdir}/models/dpo_seed{tseed}/merged"),
    log:
        "{xdir}/logs/merge_adapter/seed{tseed}.log",
    benchmark:
        "{xdir}/benchmarks/merge_adapter/seed{tseed}.tsv"
    conda:
        "../../envs/gpu.yaml"
    threads: config["resources"]["gpu_threads"]
    resources:
        # the base in float32 and its merge (a CPU rule: ~13 GB for Qwen2.5-1.5B)
        mem_mb=config["resources"]["merge_mem_mb"],
    params:
        trust_remote_code=config["model"]["trust_remote_code"],
    script:
        "../scripts/merge_adapter.py"
