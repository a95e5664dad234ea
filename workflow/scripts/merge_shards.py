"""Snakemake adapter: merge generation shards in prompt order."""

from faithdpo.generation import merge_shards
from faithdpo.logs import setup_logging

setup_logging(snakemake.log[0])
merge_shards(
    snakemake.input.prompts,
    snakemake.input.shards,
    snakemake.output[0],
    **snakemake.params,
)
