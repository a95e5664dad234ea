"""Snakemake adapter: build and briefly train the demo's tiny Qwen2."""

import torch

from faithdpo.logs import setup_logging
from faithdpo.tiny_model import build_tiny_model

setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
build_tiny_model(snakemake.input.corpus, snakemake.output[0], **snakemake.params)
