"""Snakemake adapter: build and train the demo's tiny checker."""

import torch

from faithdpo.logs import setup_logging
from faithdpo.tiny_checker import build_tiny_checker

setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
build_tiny_checker(snakemake.output[0], **snakemake.params)
