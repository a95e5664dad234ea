"""Snakemake adapter: write one split of the synthetic demo corpus."""

from faithdpo.corpus import synthesize_split
from faithdpo.logs import setup_logging

setup_logging(snakemake.log[0])
synthesize_split(snakemake.output[0], **snakemake.params)
