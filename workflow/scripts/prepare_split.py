"""Snakemake adapter: validate a raw split and write its seeded sample."""

from faithdpo.data import prepare_split
from faithdpo.logs import setup_logging

setup_logging(snakemake.log[0])
prepare_split(
    snakemake.input.raw,
    snakemake.output.data,
    snakemake.output.stats,
    split=snakemake.wildcards.split,
    **snakemake.params,
)
