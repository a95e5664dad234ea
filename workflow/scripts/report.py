"""Snakemake adapter: write report.md, metrics.json and the figures."""

from pathlib import Path

from faithdpo.logs import setup_logging
from faithdpo.report import build_report

setup_logging(snakemake.log[0])
# One DPO model per training seed; none for an experiment below pairs.min_pairs
# (see per_seed_if_trained in common.smk).
build_report(
    snakemake.input.scores_base,
    list(snakemake.input.scores_dpo),
    snakemake.input.data,
    snakemake.input.pairs,
    list(snakemake.input.log_history),
    snakemake.output.report,
    snakemake.output.metrics,
    str(Path(snakemake.output.rates).parent),
    data_stats=list(snakemake.input.data_stats),
    prompts=list(snakemake.input.prompts),
    selection=snakemake.input.selection,
    benchmarks=list(snakemake.input.benchmarks),
    checks_base=list(snakemake.input.checks_base),
    checks_dpo=list(snakemake.input.checks_dpo),
    cost_out=snakemake.output.cost,
    **snakemake.params,
)
