# faithdpo: reduce hallucinated entities and numbers in news summaries with DPO.
#
#   snakemake --cores 4 results/report.md                   # the real experiment (GPU, internet)
#   snakemake --cores 2 --configfile config/demo.yaml       # offline demo -> results/demo/report.md
#
# The DAG (see README.md): prepare_split -> build_prompts -> generate_candidates (shards) ->
# score_candidates -> select_pairs -> train_dpo -> merge_adapter -> generate_eval{base,dpo}
# (shards) -> score_eval{base,dpo} -> report, per experiment -> comparison.
import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


# generation.shards GPU jobs per generation step, merged in order (see generate.smk).
scattergather:
    shard=config["generation"]["shards"],


report: "workflow/report/workflow.rst"


# Jobs import the package that sits beside this Snakefile: the very files each rule
# declares as inputs (see common.smk), not whatever version happens to be installed.
# PYTHONPATH carries that to every job, conda environments and cluster jobs included.
sys.path.insert(0, workflow.basedir)
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")])
    )
)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/check.smk"
include: "workflow/rules/pairs.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        f"{OUT}/report.md",
        [f"{OUT}/comparison.md"] if EXPERIMENTS else [],
