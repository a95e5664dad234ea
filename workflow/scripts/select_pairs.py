"""Snakemake adapter: select the DPO preference pairs."""

from faithdpo.logs import setup_logging
from faithdpo.pairs import select_pairs

setup_logging(snakemake.log[0])
select_pairs(
    snakemake.input.scores,
    snakemake.input.prompts,
    snakemake.input.data,
    snakemake.input.model,
    snakemake.output.pairs,
    snakemake.output.selection,
    checks=snakemake.input.checks[0] if snakemake.input.checks else None,
    **snakemake.params.pairs,
)
