"""Snakemake adapter: set every experiment beside the base model."""

from faithdpo.comparison import build_comparison
from faithdpo.logs import setup_logging

setup_logging(snakemake.log[0])
build_comparison(
    list(snakemake.input.metrics),
    snakemake.params.names,
    snakemake.output[0],
    costs=list(snakemake.input.costs),
    benchmarks=list(snakemake.input.benchmarks),
    reference=snakemake.params.reference,
)
