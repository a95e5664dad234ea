"""The workflow itself: formatting, lint, config validation, and the demo end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from workflow_helpers import DEMO, REPO, copy_workflow, snakemake


def test_rules_are_snakefmt_formatted():
    done = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow"], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("config", [[], DEMO], ids=["real", "demo"])
def test_lint_is_clean(config):
    done = snakemake(REPO, "--lint", *config)
    assert "Congratulations, your workflow is in a good condition!" in done.stdout + done.stderr


@pytest.mark.parametrize("override, message", [
    ({"data": {"n_trian": 5}}, r"Additional properties are not allowed \('n_trian' was unexpected\)"),
    ({"training": {"lora_r": 0}}, r"0 is less than the minimum of 1"),
    ({"generation": {"candidates": {"num_return_sequences": "four"}}}, r"'four' is not of type 'integer'"),
    ({"data": {"n_train": 61}}, r"data\.n_train = 61 is larger than the synthetic train split"),
    ({"prompt": {"max_prompt_tokens": 600}}, r"prompt\.max_prompt_tokens \(600\) \+ generation\.max_new_tokens"),
])
def test_bad_config_stops_before_any_job(tmp_path, override, message):
    work = copy_workflow(tmp_path)
    (work / "bad.yaml").write_text(yaml.safe_dump(override))
    done = snakemake(work, "-n", *DEMO, "bad.yaml", check=False)  # --configfile takes several files
    assert done.returncode != 0
    assert re.search(message, done.stdout + done.stderr), done.stdout + done.stderr
    assert not (work / "results").exists()


def recomputed_rates(scores: pd.DataFrame) -> dict:
    ents = scores["hallucinated_entities"].map(len)
    nums = scores["hallucinated_numbers"].map(len)
    assert (ents == scores["ent_hallucinations"]).all() and (nums == scores["num_hallucinations"]).all()
    return {"Entity Hallucination Rate": (ents > 0).mean(), "Number Hallucination Rate": (nums > 0).mean(),
            "Hallucinated entities per summary": ents.mean(), "Hallucinated numbers per summary": nums.mean()}


def report_table(report: str) -> dict[str, list[str]]:
    """Hallucination table rows: metric -> [base, dpo, delta] leading values (intervals dropped)."""
    rows = re.findall(r"^\| ([^|]+?) \| ([^|]+?) \| ([^|]+?) \| ([^|]+?) \| ([^|]+?) \| ([^|]+?) \|$", report,
                      flags=re.MULTILINE)
    return {row[0]: [cell.split(" [")[0] for cell in row[1:4]] for row in rows}


@pytest.mark.slow
def test_demo_report_matches_the_score_files(demo_run):
    out = demo_run / "results" / "demo"
    report = (out / "report.md").read_text()
    table = report_table(report)
    base = recomputed_rates(pd.read_parquet(out / "scores" / "eval_base.parquet"))
    dpo = recomputed_rates(pd.read_parquet(out / "scores" / "eval_dpo.parquet"))
    for name in base:
        pct = "Rate" in name
        fmt = (lambda v: f"{100 * v:.1f}%") if pct else (lambda v: f"{v:.3f}")
        assert table[name][:2] == [fmt(base[name]), fmt(dpo[name])], name
    n_val = len(pd.read_parquet(out / "data" / "validation.parquet"))
    assert n_val == 40 and len(pd.read_parquet(out / "scores" / "eval_dpo.parquet")) == n_val
    pairs = pd.read_parquet(out / "pairs" / "train.parquet")
    assert f"| Preference pairs | {len(pairs)} |" in report
    assert "DPO training loss (final)" in report and "Reward accuracy (final)" in report
    for link in re.findall(r"\]\(([^)]+)\)", report):
        assert (out / link).exists(), link


@pytest.mark.slow
def test_demo_keeps_every_output_under_results_demo(demo_run):
    produced = {p.relative_to(demo_run).parts[0] for p in demo_run.rglob("*") if p.is_file()}
    assert produced == {"Snakefile", "workflow", "config", "faithdpo", "profiles", "envs", "results", ".snakemake"}
    assert {p.name for p in (demo_run / "results").iterdir()} == {"demo"}


@pytest.mark.slow
def test_nothing_to_be_done_after_the_demo(demo_run):
    done = snakemake(demo_run, "-n", *DEMO)
    assert "Nothing to be done" in done.stdout + done.stderr


@pytest.mark.slow
def test_snakemake_report_embeds_the_figures(demo_run, tmp_path):
    html = tmp_path / "report.html"
    snakemake(demo_run, "--report", str(html), *DEMO)
    text = html.read_text(encoding="utf-8")
    for name in ("rates.png", "training.png", "pair_lengths.png", "report.md"):
        assert name in text
    assert html.stat().st_size > 100_000  # self-contained: the pictures are inside


RUNTIME_KEYS = {"train_runtime", "train_samples_per_second", "train_steps_per_second"}
SEEDED_ARTIFACTS = [
    "data/train.parquet", "data/validation.parquet", "prompts/train.parquet", "candidates/train.parquet",
    "scores/candidates.parquet", "pairs/train.parquet", "models/base/model.safetensors",
    "models/dpo/adapter/adapter_model.safetensors", "eval/base.parquet", "eval/dpo.parquet",
    "scores/eval_base.parquet", "scores/eval_dpo.parquet", "metrics.json", "report.md",
]


@pytest.mark.slow
def test_two_fresh_runs_are_byte_identical(demo_run, tmp_path):
    """Same seed, fresh directory: every artifact of the CPU demo comes out byte for byte the same."""
    other = copy_workflow(tmp_path)
    snakemake(other, "--cores", "2", *DEMO)
    first, second = demo_run / "results" / "demo", other / "results" / "demo"
    for rel in SEEDED_ARTIFACTS:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel

    def steps(run):  # wall-clock throughput differs between runs; everything else must not
        history = json.loads((run / "models" / "dpo" / "log_history.json").read_text())
        return [{k: v for k, v in entry.items() if k not in RUNTIME_KEYS} for entry in history]

    assert steps(first) == steps(second)
