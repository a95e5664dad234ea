"""Run the workflow from a copy of the repository, the way a user would, in a subprocess."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = ["--configfile", "config/demo.yaml"]
WORKFLOW_FILES = ["Snakefile", "workflow", "config", "faithdpo", "profiles", "envs", "demo"]


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


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``snakemake ARGS`` in ``workdir``; each call is a fresh process (Snakemake caches mtimes)."""
    done = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def planned_jobs(workdir: Path, *args: str) -> set[str]:
    """The jobs a dry run would execute (an upper bound where checkpoints are involved)."""
    return jobs_in(snakemake(workdir, "-n", *args).stdout)


def jobs_in(out: str) -> set[str]:
    """Jobs listed in Snakemake's output, as ``rule`` or ``rule[wildcards]``, without the target rule ``all``."""
    jobs = set()
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \w+:)", out):
        head = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", block)
        if not head or head.group(1) == "all":
            continue
        wildcards = re.search(r"^    wildcards: (.+)$", block, flags=re.MULTILINE)
        jobs.add(f"{head.group(1)}[{wildcards.group(1)}]" if wildcards else head.group(1))
    return jobs


def demo_config() -> dict:
    """config/config.yaml overridden by config/demo.yaml, schema defaults filled: what the demo runs with."""
    import yaml
    from snakemake.utils import validate

    def merge(base: dict, over: dict) -> dict:
        out = dict(base)
        for key, value in over.items():
            out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        return out

    cfg = merge(yaml.safe_load((REPO / "config/config.yaml").read_text()),
                yaml.safe_load((REPO / "config/demo.yaml").read_text()))
    validate(cfg, str(REPO / "workflow/schemas/config.schema.yaml"), set_default=True)
    return cfg
