"""Snakemake adapter: merge the DPO adapter into the base weights."""

import torch

from faithdpo.logs import setup_logging
from faithdpo.merge import merge_adapter

setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
merge_adapter(
    snakemake.input.model,
    snakemake.input.adapter,
    snakemake.output[0],
    **snakemake.params,
)
