"""Cluster fit: CPU rules that hold a full split or a model declare mem_mb from the config, and
the SLURM profile sends CPU rules to the default partition and GPU rules to the GPU one."""

import re

import pytest
import yaml

from workflow_helpers import DEMO, REPO, copy_workflow, rule_blocks, snakemake


@pytest.mark.slow  # a Snakemake dry run
def test_cpu_rules_holding_a_split_or_a_model_declare_mem_mb_from_the_config(tmp_path):
    work = copy_workflow(tmp_path)
    (work / "over.yaml").write_text("resources: {data_mem_mb: 1234, merge_mem_mb: 4321}\n")
    out = snakemake(work, "-n", *DEMO, "over.yaml").stdout
    prepare = [b for b in re.split(r"\n(?=rule |checkpoint )", out) if b.startswith("rule prepare_split:")]
    assert len(prepare) == 2 and all("mem_mb=1234" in b for b in prepare)
    # merge_adapter runs after the pairs checkpoint, so a dry run does not list it: read its rule
    assert 'mem_mb=config["resources"]["merge_mem_mb"]' in rule_blocks()["merge_adapter"]


def test_slurm_profile_sends_gpu_rules_to_the_gpu_partition_and_cpu_rules_to_the_default():
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert "slurm_partition" not in profile["default-resources"]  # the cluster's default partition
    gpu_rules = {name for name, block in rule_blocks().items()
                 if "gpu_resources()" in block or "training_resources()" in block}
    assert gpu_rules == {"generate_candidates", "generate_eval", "train_dpo", "check_eval", "check_candidates"}
    partitions = {rule: res.get("slurm_partition") for rule, res in profile["set-resources"].items()}
    assert {rule for rule, part in partitions.items() if part} == gpu_rules
    assert len({partitions[r] for r in gpu_rules}) == 1  # one site key


def test_vllm_has_an_environment_file_for_the_generation_rules():
    """`--sdm conda` with generation.engine: vllm runs the generation rules in envs/vllm.yaml."""
    env = yaml.safe_load((REPO / "envs" / "vllm.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert any(re.match(r"vllm\b", p) for p in pip)
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    assert '"../../envs/vllm.yaml" if engine == "vllm" else "../../envs/gpu.yaml"' in common
    blocks = rule_blocks()
    for rule in ("generate_candidates", "generate_eval"):
        assert re.search(r"conda:\s+generation_env\(\)", blocks[rule]), rule
