"""Snakemake adapter: build the token-budgeted prompts of a split."""

from faithdpo.logs import setup_logging
from faithdpo.prompts import build_prompts

setup_logging(snakemake.log[0])
build_prompts(snakemake.input.data, snakemake.input.model, snakemake.output[0], **snakemake.params)
