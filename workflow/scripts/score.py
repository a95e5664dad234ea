"""Snakemake adapter: score summaries for hallucinated entities and numbers."""

from faithdpo.logs import setup_logging
from faithdpo.scoring import score_file

setup_logging(snakemake.log[0])
score_file(
    snakemake.input.summaries,
    snakemake.input.data,
    snakemake.output[0],
    prompts=snakemake.input.prompts,
    **snakemake.params.scoring,
)
