# Training (GPU): TRL DPOTrainer with LoRA on q/k/v/o, optionally over a 4-bit NF4 base.


rule train_dpo:
    input:
        pairs=preference_pairs,
        model=base_model_dir(),
        modules=package_modules("training"),
    output:
        adapter=directory(ADAPTER),
        log_history=LOG_HISTORY,
    log:
        f"{OUT}/logs/train_dpo.log",
    conda:
        "../../envs/gpu.yaml"
    threads: config["resources"]["gpu_threads"]
    resources:
        **gpu_resources(),
    params:
        training=training_params(),
    script:
        "../scripts/train_dpo.py"
