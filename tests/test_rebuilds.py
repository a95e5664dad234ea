"""Only stale steps rebuild: the exact jobs a dry run plans (or a run executes) after each kind
of change, on a copy of a completed run of the test config (module dependencies are declared
inputs)."""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest
import yaml

from workflow_helpers import REPO, TEST, TEST_OUT, job_inputs, jobs_in, planned_jobs, snakemake

pytestmark = pytest.mark.slow

MAIN = TEST_OUT
XDIRS = [MAIN, f"{MAIN}/experiments/minimal_swap", f"{MAIN}/experiments/checker_pairs"]
SHARDS = ["1-of-2", "2-of-2"]
# The training seeds of the test config: main replicates, the experiments train once.
SEEDS = {XDIRS[0]: [0, 1], XDIRS[1]: [0], XDIRS[2]: [0]}


def seed_steps(xdir: str, seed: int) -> set[str]:
    """One training seed's jobs: its training, merge and evaluation."""
    model = f"dpo_seed{seed}"
    jobs = {f"train_dpo[xdir={xdir}, tseed={seed}]", f"merge_adapter[xdir={xdir}, tseed={seed}]",
            f"merge_eval[xdir={xdir}, model={model}]", f"score_eval[xdir={xdir}, model={model}]",
            f"check_eval[xdir={xdir}, model={model}]"}
    return jobs | {f"generate_eval[xdir={xdir}, model={model}, scatteritem={s}]" for s in SHARDS}


def dpo_steps(xdir: str, pairs: bool = True) -> set[str]:
    """An experiment's jobs from (its pairs and) training, for every seed, to its report."""
    jobs = {f"report[xdir={xdir}]"}.union(*(seed_steps(xdir, seed) for seed in SEEDS[xdir]))
    return jobs | ({f"select_pairs[xdir={xdir}]"} if pairs else set())


SCORING_CHANGE = {"score_candidates", f"score_eval[xdir={MAIN}, model=base]", "comparison"}
SCORING_CHANGE |= {f"{rule}[xdir={x}]" for x in XDIRS for rule in ("select_pairs", "report")}
# A dry run cannot know whether select_pairs will write the same pairs: it lists each trained
# experiment's DPO steps too ("Input files updated by another job"), an upper bound that the
# checkpoint settles when it has run; test_rebuild_with_identical_output_runs_no_gpu_step checks that.
SCORING_CHANGE_PLANNED = SCORING_CHANGE | set().union(*(dpo_steps(x, pairs=False) for x in XDIRS))
REPORTS = {f"report[xdir={x}]" for x in XDIRS} | {"comparison"}
# The checker's own steps: the base model's evaluation, the candidates (checker_pairs ranks by them)
CHECKER_STEPS = {f"check_eval[xdir={MAIN}, model=base]", "check_candidates"}


@pytest.fixture
def run_copy(test_run, tmp_path):
    return shutil.copytree(test_run, tmp_path / "run", symlinks=True)


def edit(path, old: str, new: str) -> None:
    """Change a file's content (not just its mtime, which Snakemake would see through checksums)."""
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def with_config(run, override: dict) -> list[str]:
    (run / "override.yaml").write_text(yaml.safe_dump(override))
    return [*TEST, "override.yaml"]


def test_copy_of_a_completed_run_is_up_to_date(run_copy):
    assert planned_jobs(run_copy, *TEST) == set()
    assert "Nothing to be done" in snakemake(run_copy, "-n", *TEST).stdout


def test_scoring_module_change_reruns_scoring_and_downstream_never_generation(run_copy):
    edit(run_copy / "faithdpo" / "scoring.py", '"thousand": 3,', '"thousand": 3, "lakh": 5,')
    assert planned_jobs(run_copy, *TEST) == SCORING_CHANGE_PLANNED


def test_scoring_config_change_reruns_the_same_steps(run_copy):
    labels = ["PERSON", "ORG", "GPE"]
    assert planned_jobs(run_copy, *with_config(run_copy, {"scoring": {"ner_labels": labels}})) == SCORING_CHANGE_PLANNED


def test_number_pattern_change_reruns_the_same_steps(run_copy):
    assert planned_jobs(run_copy, *with_config(run_copy, {"scoring": {"number_pattern": "seed"}})) == SCORING_CHANGE_PLANNED


def test_regex_ner_changes_never_rerun_the_checker(run_copy):
    assert not SCORING_CHANGE_PLANNED & CHECKER_STEPS


# What a change of the checker reruns: its steps, the pairs ranked by it (and, as an upper bound
# until that checkpoint has run, what they train), the reports; never generation or regex + NER.
CHECKER_CHANGE_PLANNED = CHECKER_STEPS | REPORTS | {f"select_pairs[xdir={XDIRS[2]}]"} | {
    f"check_eval[xdir={x}, model=dpo_seed{seed}]" for x in XDIRS for seed in SEEDS[x]} | dpo_steps(XDIRS[2], pairs=False)


def test_checker_module_change_reruns_the_checker_and_what_reads_it(run_copy):
    edit(run_copy / "faithdpo" / "checker.py", "CHUNK_TOKENS = 400", "CHUNK_TOKENS = 400  # new bytes")
    assert planned_jobs(run_copy, *TEST) == CHECKER_CHANGE_PLANNED


def test_checker_config_change_reruns_the_same_steps_and_the_threshold_no_checker_step(run_copy):
    jobs = planned_jobs(run_copy, *with_config(run_copy, {"scoring": {"checker": {"batch_size": 8}}}))
    assert jobs == CHECKER_CHANGE_PLANNED
    # the threshold: the reports, and the pairs ranked by the checker (their chosen side must be supported)
    jobs = planned_jobs(run_copy, *with_config(run_copy, {"scoring": {"checker": {"threshold": 0.3}}}))
    assert jobs == REPORTS | {f"select_pairs[xdir={XDIRS[2]}]"} | dpo_steps(XDIRS[2], pairs=False)


def test_tiny_model_module_change_reruns_no_step(run_copy):
    """The demo's tiny-model builder (faithdpo/tiny_model.py) is an input of build_tiny_model
    alone: on a finished run of the demo's world, editing it makes no step stale, generation,
    training and merges included. (The real config and the demo's own: test_deps.py.)"""
    jobs = {}  # each job's declared inputs: every job, then (the pairs checkpoint standing) training's
    for force in (["--forceall"], ["--forcerun", "train_dpo"]):
        jobs.update(job_inputs(snakemake(run_copy, "-n", *force, *TEST).stdout))
    assert {job.split("[")[0] for job in jobs} >= {"generate_candidates", "generate_eval", "merge_candidates",
                                                  "merge_eval", "train_dpo", "merge_adapter", "check_eval"}
    assert all("faithdpo/models.py" in files for job, files in jobs.items() if job.startswith("generate_"))
    assert not [job for job, files in jobs.items() if "faithdpo/tiny_model.py" in files]
    edit(run_copy / "faithdpo" / "tiny_model.py", "ALPHABET = 12", "ALPHABET = 12  # new bytes")
    assert planned_jobs(run_copy, *TEST) == set()


def test_report_code_change_reruns_the_report_alone(run_copy):
    edit(run_copy / "faithdpo" / "report.py", '"# faithdpo report"', '"# faithdpo report (v2)"')
    assert planned_jobs(run_copy, *TEST) == REPORTS


def test_training_hyperparameter_change_reruns_training_and_what_follows(run_copy):
    """The experiments set their own learning rates in the test config, so they stand."""
    jobs = planned_jobs(run_copy, *with_config(run_copy, {"training": {"learning_rate": 1.0e-4}}))
    assert jobs == dpo_steps(XDIRS[0], pairs=False) | {"comparison"}
    jobs = planned_jobs(run_copy, *with_config(run_copy, {"training": {"beta": 0.2}}))
    assert jobs == set().union(*(dpo_steps(x, pairs=False) for x in XDIRS)) | {"comparison"}


def test_the_evaluation_batch_size_reruns_evaluation_alone(run_copy):
    """generation.eval_batch_size is a parameter of the evaluation jobs only: never of candidates."""
    jobs = planned_jobs(run_copy, *with_config(run_copy, {"generation": {"eval_batch_size": 4}}))
    assert {job.split("[")[0] for job in jobs} == {"generate_eval", "merge_eval", "score_eval", "check_eval", "report",
                                                   "comparison"}
    models = {f"[xdir={MAIN}, model=base"} | {f"[xdir={x}, model=dpo_seed{s}" for x in XDIRS for s in SEEDS[x]}
    assert {job.split(", scatteritem")[0].removeprefix("generate_eval") for job in jobs
            if job.startswith("generate_eval")} == models


def test_adding_a_seed_trains_that_seed_alone(run_copy):
    """The list of seeds is no parameter of a seed's training: the seeds already trained stand."""
    jobs = planned_jobs(run_copy, *with_config(run_copy, {"training": {"seeds": [0, 1, 2]}}))
    assert jobs == seed_steps(XDIRS[0], 2) | {f"report[xdir={XDIRS[0]}]", "comparison"}


def test_one_experiments_change_reruns_that_experiment_alone(run_copy):
    override = {"experiments": {"minimal_swap": {"pairs": {"strategy": "minimal_swap"},
                                                 "training": {"beta": 0.2}}}}
    jobs = planned_jobs(run_copy, *with_config(run_copy, override))
    assert jobs == dpo_steps(XDIRS[1], pairs=False) | {"comparison"}


def test_rebuild_with_identical_output_runs_no_gpu_step(run_copy):
    """Scoring reruns after a code change, but the pairs come out byte-identical: the
    select_pairs checkpoint then lets training and DPO generation stand."""
    edit(run_copy / "faithdpo" / "scoring.py", "_SCALES = {", "_SCALES = {  # same logic, new bytes")
    done = snakemake(run_copy, "--cores", "2", *TEST)
    assert jobs_in(done.stdout + done.stderr) == {
        "score_candidates", "comparison",
        *(f"score_eval[xdir={x}, model=dpo_seed{seed}]" for x in XDIRS for seed in SEEDS[x]),
        f"score_eval[xdir={MAIN}, model=base]", *(f"select_pairs[xdir={x}]" for x in XDIRS),
        *(f"report[xdir={x}]" for x in XDIRS),
    }  # and no checker step: the checker never reads regex + NER's scores
    assert planned_jobs(run_copy, *TEST) == set()


def test_changed_pairs_retrain_and_regenerate(run_copy):
    swaps = pd.read_parquet(run_copy / MAIN / "experiments" / "minimal_swap" / "pairs" / "train.parquet")
    margin = swaps["rejected_badness"] - swaps["chosen_badness"]
    assert margin.nunique() > 1, "the demo's swaps must differ in margin for this test to mean anything"
    # the next margin up: fewer pairs, still enough to train (pairs.min_pairs)
    min_margin = int(sorted(margin.unique())[1])
    assert (margin >= min_margin).sum() >= 4  # pairs.min_pairs in the test config
    override = {"experiments": {"minimal_swap": {"pairs": {"strategy": "minimal_swap", "min_margin": min_margin}}}}
    done = snakemake(run_copy, "--cores", "2", *with_config(run_copy, override))
    assert jobs_in(done.stdout + done.stderr) == dpo_steps(XDIRS[1]) | {"comparison"}


def test_an_experiment_below_min_pairs_is_reported_and_the_run_completes(run_copy):
    """Too few pairs is an outcome: no training is scheduled for that experiment, its report and
    the comparison say why, the log warns, every other experiment stands, and the run exits 0."""
    override = {"experiments": {"minimal_swap": {"pairs": {"strategy": "minimal_swap", "min_pairs": 10_000}}}}
    done = snakemake(run_copy, "--cores", "2", *with_config(run_copy, override))
    assert jobs_in(done.stdout + done.stderr) == {f"select_pairs[xdir={XDIRS[1]}]", f"report[xdir={XDIRS[1]}]",
                                                  "comparison"}
    folder = run_copy / XDIRS[1]
    report = (folder / "report.md").read_text()
    assert "**Not trained**" in report and "fewer than pairs.min_pairs = 10000" in report
    comparison = (run_copy / MAIN / "comparison.md").read_text()
    row = next(line for line in comparison.splitlines() if line.startswith("| DPO: `minimal_swap`"))
    assert "**not trained**: " in row
    assert "not training this experiment" in (folder / "logs" / "select_pairs.log").read_text()
    assert "| DPO: `main` |" in comparison and "**not trained**" not in comparison.split("minimal_swap")[0]


def test_data_code_change_with_identical_data_never_regenerates(run_copy):
    """data.py changes but writes the same samples: prepare_split and the build_prompts
    checkpoint rerun; the steps that read the data and prompts through the checkpoints see the
    same checksums and stand: no scoring, no generation, no training. The comparison, planned
    before the checkpoints settled and not behind one, reruns (seconds: cheap CPU steps are not
    guarded, see docs/reruns.md)."""
    edit(run_copy / "faithdpo" / "data.py", "import logging", "import logging  # same logic, new bytes")
    done = snakemake(run_copy, "--cores", "2", *TEST)
    assert jobs_in(done.stdout + done.stderr) == {"comparison"} | {
        f"{rule}[split={split}]" for rule in ("prepare_split", "build_prompts") for split in ("train", "validation")}
    assert planned_jobs(run_copy, *TEST) == set()


def test_checksum_limit_covers_a_full_runs_prompt_files():
    """The checkpoints spare generation only when Snakemake can checksum the rebuilt file (1 MB
    by default): both profiles raise the limit above the real run's prompt files (articles x
    max_prompt_tokens x at most 8 bytes a token)."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    largest = max(config["data"]["n_train"], config["data"]["n_validation"]) * config["prompt"]["max_prompt_tokens"] * 8
    assert largest > 2**20
    for profile in ("default", "slurm"):
        limit = yaml.safe_load((REPO / "profiles" / profile / "config.yaml").read_text())["max-checksum-file-size"]
        number, unit = re.fullmatch(r"(\d+)\s*([KMG]B)", limit).groups()
        assert int(number) * {"KB": 2**10, "MB": 2**20, "GB": 2**30}[unit] >= largest, profile
