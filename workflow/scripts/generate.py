"""Snakemake adapter: generate one shard of summaries (candidates or evaluation)."""

import torch

from faithdpo.gpu_memory import gpu_peak_memory
from faithdpo.generation import generate_file
from faithdpo.logs import setup_logging

setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
with gpu_peak_memory(snakemake.output.gpu_memory):
    generate_file(
        snakemake.input.prompts,
        snakemake.input.model,
        snakemake.output.summaries,
        shard=snakemake.wildcards.scatteritem,
        rule=snakemake.rule,
        **snakemake.params.generation,
    )
