"""Snakemake adapter: snapshot the base model from the hub into resources/."""

from faithdpo.logs import setup_logging
from faithdpo.models import download_model

setup_logging(snakemake.log[0])
download_model(snakemake.output[0], **snakemake.params)
