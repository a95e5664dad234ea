"""Run the workflow from a copy of the repository, the way a user would, in a subprocess."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = ["--configfile", "config/demo.yaml"]
# The workflow tests' small config (.test/config.yaml): 2 shards, one experiment beside main. Its
# GPU steps run on the CPU with one thread each, two at a time (the profile allows one GPU job).
TEST = ["--resources", "gpu=2", "--configfile", ".test/config.yaml"]
TEST_OUT = "results/test"
WORKFLOW_FILES = ["Snakefile", "workflow", "config", "faithdpo", "profiles", "envs", "demo", ".test"]


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow (no results, no caches) into ``dest``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """``snakemake ARGS`` in ``workdir`` (``env``: extra environment variables); each call is a
    fresh process (Snakemake caches mtimes)."""
    done = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def planned_jobs(workdir: Path, *args: str) -> set[str]:
    """The jobs a dry run would execute (an upper bound where checkpoints are involved)."""
    return jobs_in(snakemake(workdir, "-n", *args).stdout)


def jobs_in(out: str) -> set[str]:
    """Jobs listed in Snakemake's output, as ``rule`` or ``rule[wildcards]``, without the target rule ``all``."""
    return set(job_blocks(out))


def job_blocks(out: str) -> dict[str, str]:
    """Each job's block of Snakemake's output, by ``rule`` or ``rule[wildcards]``, without the target rule ``all``."""
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \w+:)", out):
        head = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", block)
        if not head or head.group(1) == "all":
            continue
        wildcards = re.search(r"^    wildcards: (.+)$", block, flags=re.MULTILINE)
        jobs[f"{head.group(1)}[{wildcards.group(1)}]" if wildcards else head.group(1)] = block
    return jobs


def job_inputs(out: str) -> dict[str, list[str]]:
    """Each job's declared input files in a dry run's output (``<TBD>`` for one behind a checkpoint)."""
    inputs = {}
    for job, block in job_blocks(out).items():
        line = re.search(r"^    input: (.+)$", block, flags=re.MULTILINE)
        inputs[job] = line.group(1).split(", ") if line else []
    return inputs


def rule_blocks() -> dict[str, str]:
    """Each rule's text in workflow/rules/*.smk, by name."""
    blocks = {}
    for path in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=\s*(?:rule|checkpoint) \w+:)", path.read_text()):
            head = re.match(r"\s*(?:rule|checkpoint) (\w+):", block)
            if head:
                blocks[head.group(1)] = block
    return blocks


def merge_config(base: dict, over: dict) -> dict:
    """``base`` with ``over``'s keys, nested dicts merged key by key (as --configfile layers files)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge_config(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def demo_config(override: str = "config/demo.yaml") -> dict:
    """config/config.yaml overridden by ``override`` (the demo's), schema defaults filled: what a run uses."""
    import yaml
    from snakemake.utils import validate

    cfg = merge_config(yaml.safe_load((REPO / "config/config.yaml").read_text()),
                       yaml.safe_load((REPO / override).read_text()))
    validate(cfg, str(REPO / "workflow/schemas/config.schema.yaml"), set_default=True)
    return cfg


def without_cost(text: str) -> str:
    """A report without its Cost section: wall times are the one part that differs between identical runs."""
    from faithdpo.cost import COST_HEADING

    head, _, tail = text.partition(COST_HEADING)
    following = re.search(r"^## ", tail, flags=re.MULTILINE)
    return head + (tail[following.start():] if following else "")
