"""Snakemake adapter: generate one shard of summaries (candidates or evaluation)."""

import torch

from faithdpo.generation import generate_file
from faithdpo.logs import setup_logging

setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
generate_file(
    snakemake.input.prompts,
    snakemake.input.model,
    snakemake.output[0],
    shard=snakemake.wildcards.scatteritem,
    rule=snakemake.rule,
    **snakemake.params.generation,
)
