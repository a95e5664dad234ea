"""Shared by every stage: the faithdpo package, which reduces hallucinated entities and numbers
in news summaries with DPO.

The package holds all the logic of the workflow; the Snakemake scripts under
``workflow/scripts`` are thin adapters around these modules.
"""

__version__ = "0.1.0"
