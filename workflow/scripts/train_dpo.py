"""Snakemake adapter: DPO-train the LoRA adapter."""

import torch

from faithdpo.logs import setup_logging
from faithdpo.training import train_dpo

setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
train_dpo(
    snakemake.input.pairs,
    snakemake.input.model,
    snakemake.output.adapter,
    snakemake.output.log_history,
    rule=snakemake.rule,
    gpu_memory=snakemake.output.gpu_memory,
    threads=snakemake.threads,
    **snakemake.params.training,
)
