"""Snakemake adapter: score summaries with the consistency checker."""

import torch

from faithdpo.checker import check_file
from faithdpo.gpu_memory import gpu_peak_memory
from faithdpo.logs import setup_logging

setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
with gpu_peak_memory(snakemake.output.gpu_memory):
    check_file(
        snakemake.input.summaries,
        snakemake.input.prompts,
        snakemake.output.checks,
        snakemake.input.checker,
        rule=snakemake.rule,
        **snakemake.params,
    )
