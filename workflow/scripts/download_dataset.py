"""Snakemake adapter: fetch one hub dataset split (data.splits names it) into resources/ (on the submit host)."""

from pathlib import Path

from faithdpo.data import download_dataset
from faithdpo.logs import setup_logging

setup_logging(snakemake.log[0])
download_dataset(str(Path(snakemake.output[0]).parent), splits=[snakemake.wildcards.dataset_split], **snakemake.params)
