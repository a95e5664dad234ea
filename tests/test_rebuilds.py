"""Only stale steps rebuild: the exact jobs a dry run plans after each kind of change,
on a copy of a completed demo run (module dependencies are declared inputs)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml

from workflow_helpers import DEMO, jobs_in, planned_jobs, snakemake

pytestmark = pytest.mark.slow

SCORING_CHANGE = {
    "score_candidates", "select_pairs", "train_dpo", "generate_eval[model=dpo]", "score_eval[model=base]",
    "score_eval[model=dpo]", "report",
}


@pytest.fixture
def run_copy(demo_run, tmp_path):
    return shutil.copytree(demo_run, tmp_path / "run", symlinks=True)


def edit(path, old: str, new: str) -> None:
    """Change a file's content (not just its mtime, which Snakemake would see through checksums)."""
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def with_config(run, override: dict) -> list[str]:
    (run / "override.yaml").write_text(yaml.safe_dump(override))
    return [*DEMO, "override.yaml"]


def test_copy_of_a_completed_run_is_up_to_date(run_copy):
    assert planned_jobs(run_copy, *DEMO) == set()
    assert "Nothing to be done" in snakemake(run_copy, "-n", *DEMO).stdout


def test_scoring_module_change_reruns_scoring_and_downstream_never_generation(run_copy):
    edit(run_copy / "faithdpo" / "scoring.py", '"thousand": 3,', '"thousand": 3, "lakh": 5,')
    assert planned_jobs(run_copy, *DEMO) == SCORING_CHANGE


def test_scoring_config_change_reruns_the_same_steps(run_copy):
    labels = ["PERSON", "ORG", "GPE"]
    assert planned_jobs(run_copy, *with_config(run_copy, {"scoring": {"ner_labels": labels}})) == SCORING_CHANGE


def test_number_pattern_change_reruns_the_same_steps(run_copy):
    assert planned_jobs(run_copy, *with_config(run_copy, {"scoring": {"number_pattern": "seed"}})) == SCORING_CHANGE


def test_report_code_change_reruns_the_report_alone(run_copy):
    edit(run_copy / "faithdpo" / "report.py", '"# faithdpo report"', '"# faithdpo report (v2)"')
    assert planned_jobs(run_copy, *DEMO) == {"report"}


def test_training_hyperparameter_change_reruns_training_and_what_follows(run_copy):
    jobs = planned_jobs(run_copy, *with_config(run_copy, {"training": {"learning_rate": 1.0e-4}}))
    assert jobs == {"train_dpo", "generate_eval[model=dpo]", "score_eval[model=dpo]", "report"}


def test_rebuild_with_identical_output_runs_no_gpu_step(run_copy):
    """Scoring reruns after a code change, but the pairs come out byte-identical: the
    select_pairs checkpoint then lets training and DPO generation stand."""
    edit(run_copy / "faithdpo" / "scoring.py", '"thousand": 3,', '"thousand": 3,  # same logic, new bytes')
    done = snakemake(run_copy, "--cores", "2", *DEMO)
    assert jobs_in(done.stdout + done.stderr) == {
        "score_candidates", "score_eval[model=base]", "score_eval[model=dpo]", "select_pairs", "report",
    }
    assert planned_jobs(run_copy, *DEMO) == set()


def test_changed_pairs_retrain_and_regenerate(run_copy):
    badness = pd.read_parquet(run_copy / "results" / "demo" / "pairs" / "train.parquet")["rejected_badness"]
    assert badness.nunique() > 1, "the demo's pairs must differ in badness for this test to mean anything"
    args = with_config(run_copy, {"pairs": {"min_badness": int(badness.max())}})
    done = snakemake(run_copy, "--cores", "2", *args)
    assert jobs_in(done.stdout + done.stderr) == {
        "select_pairs", "train_dpo", "generate_eval[model=dpo]", "score_eval[model=dpo]", "report",
    }
