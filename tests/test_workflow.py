"""The workflow itself: formatting, lint, config validation, and the demo end to end."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from faithdpo.verdicts import fmt_delta
from workflow_helpers import (DEMO, REPO, TEST, TEST_OUT, copy_workflow, job_blocks, job_inputs, jobs_in, planned_jobs,
                              snakemake, without_cost)

pytestmark = pytest.mark.slow  # every test here starts Snakemake


def test_rules_are_snakefmt_formatted():
    done = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow"], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("config", [[], DEMO, TEST], ids=["real", "demo", "test"])
def test_lint_is_clean(config):
    done = snakemake(REPO, "--lint", *config)
    assert "Congratulations, your workflow is in a good condition!" in done.stdout + done.stderr


def test_the_docs_7b_configuration_is_the_shipped_file_and_plans():
    """The worked 7B configuration in docs/scaling.md is config/cluster-7b.yaml, word for word, and
    the workflow accepts it on the real experiment (4 generation shards)."""
    shipped = (REPO / "config" / "cluster-7b.yaml").read_text()
    page = (REPO / "docs" / "scaling.md").read_text()
    block = page.split("config/cluster-7b.yaml`):\n\n```yaml\n", 1)[1].split("```", 1)[0]
    assert block in shipped and yaml.safe_load(block) == yaml.safe_load(shipped)
    jobs = planned_jobs(REPO, "--configfile", "config/config.yaml", "config/cluster-7b.yaml")
    assert sum(j.startswith("generate_candidates") for j in jobs) == 4


def test_the_real_run_downloads_its_checker_and_checks_every_evaluation():
    """config/config.yaml turns the checker on: its weights come from the hub in a local rule
    (compute nodes run offline), and the base model's evaluation is checked on a GPU node."""
    jobs = planned_jobs(REPO)
    assert {"download_checker", "check_eval[xdir=results, model=base]"} <= jobs
    assert "check_candidates" not in jobs  # the real run ranks its pairs by badness


def test_the_80gb_configuration_plans_and_fits_its_token_budget():
    """config/gpu-80gb.yaml validates on the real experiment, and its batch sizes at the longest
    prompts stay inside its max_batch_tokens (so the budget, not luck, bounds the memory)."""
    cfg = yaml.safe_load((REPO / "config" / "gpu-80gb.yaml").read_text())["generation"]
    real = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    longest = real["prompt"]["max_prompt_tokens"] + real["generation"]["max_new_tokens"]
    k = real["generation"]["candidates"]["num_return_sequences"]
    assert cfg["batch_size"] * k * longest <= cfg["max_batch_tokens"]
    assert cfg["eval_batch_size"] * longest <= cfg["max_batch_tokens"]
    jobs = planned_jobs(REPO, "--configfile", "config/config.yaml", "config/gpu-80gb.yaml")
    assert any(j.startswith("generate_candidates") for j in jobs)


def test_the_xsum_configuration_plans():
    """config/xsum.yaml on the real experiment: download_dataset fetches XSum's splits from the hub's
    Parquet export, prepare_split reads them (mapping document/summary), the summaries fit
    training.max_length, and every output is under its own outdir."""
    xsum = yaml.safe_load((REPO / "config" / "xsum.yaml").read_text())
    real = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert real["prompt"]["max_prompt_tokens"] + xsum["generation"]["max_new_tokens"] <= real["training"]["max_length"]
    assert xsum["data"]["hub"] == {"path": "EdinburghNLP/xsum", "name": None, "revision": "refs/convert/parquet"}
    out = snakemake(REPO, "-n", "--configfile", "config/config.yaml", "config/xsum.yaml").stdout
    jobs, inputs = jobs_in(out), job_inputs(out)
    assert {"download_dataset[dataset_split=train]", "download_dataset[dataset_split=validation]"} <= jobs
    assert inputs["prepare_split[split=train]"][0] == "resources/datasets/xsum/train.parquet"
    assert inputs["prepare_split[split=validation]"][0] == "resources/datasets/xsum/validation.parquet"
    assert {"report[xdir=results/xsum]", "score_eval[xdir=results/xsum, model=base]"} <= jobs


def test_a_datasets_own_split_name_is_fetched_and_sampled_as_the_workflows(tmp_path):
    """data.splits.validation: test fetches and reads the dataset's test split; its sample is
    still the workflow's validation split."""
    over = tmp_path / "test-split.yaml"
    over.write_text(yaml.safe_dump({"data": {"splits": {"validation": "test"}}}))
    out = snakemake(REPO, "-n", "--configfile", "config/config.yaml", "config/xsum.yaml", str(over)).stdout
    jobs, inputs = jobs_in(out), job_inputs(out)
    assert "download_dataset[dataset_split=test]" in jobs and "download_dataset[dataset_split=validation]" not in jobs
    assert inputs["prepare_split[split=validation]"][0] == "resources/datasets/xsum/test.parquet"
    assert "output: results/xsum/data/validation.parquet" in job_blocks(out)["prepare_split[split=validation]"]


# The schema's checks, which the Snakefile runs (validate). The checks a schema cannot express
# are faithdpo.config_check's, tested in-process in test_config_check.py.
@pytest.mark.parametrize("override, message", [
    ({"data": {"n_trian": 5}}, r"Additional properties are not allowed \('n_trian' was unexpected\)"),
    ({"training": {"lora_r": 0}}, r"0 is less than the minimum of 1"),
    ({"generation": {"candidates": {"num_return_sequences": "four"}}}, r"'four' is not of type 'integer'"),
    ({"pairs": {"strategy": "random"}},
     r"'random' is not one of \['highlights_vs_worst', 'best_vs_worst', 'minimal_swap'\]"),
    ({"experiments": {"main": {}}}, r"should not be valid under \{'const': 'main'\}"),
    ({"generation": {"engine": "tgi"}}, r"'tgi' is not one of \['hf', 'vllm'\]"),
    ({"training": {"report_to": ["tensorboard", "comet"]}}, r"\['tensorboard', 'comet'\] is not valid under any of the given schemas"),
])
def test_bad_config_stops_before_any_job(tmp_path, override, message):
    work = copy_workflow(tmp_path)
    (work / "bad.yaml").write_text(yaml.safe_dump(override))
    done = snakemake(work, "-n", *DEMO, "bad.yaml", check=False)  # --configfile takes several files
    assert done.returncode != 0
    assert re.search(message, done.stdout + done.stderr), done.stdout + done.stderr
    assert not (work / "results").exists()


@pytest.mark.parametrize("override, message", [
    ({}, None),
    ({"scoring": {"checker": {"enabled": False}}, "experiments": {"x": {"pairs": {"rank_by": "checker"}}}},
     r"experiments\.x\.pairs\.rank_by is 'checker' but scoring\.checker\.enabled is false"),
], ids=["good", "bad"])
def test_the_workflow_checks_the_config_before_any_job(tmp_path, override, message):
    """common.smk runs faithdpo.config_check on the config it is given: a good one plans, a bad
    one stops before any job with the check's message (each check: test_config_check.py)."""
    work = copy_workflow(tmp_path)
    (work / "over.yaml").write_text(yaml.safe_dump(override))
    done = snakemake(work, "-n", *DEMO, "over.yaml", check=False)
    if message is None:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "select_pairs" in done.stdout
        return
    assert done.returncode != 0
    assert re.search(message, done.stdout + done.stderr), done.stdout + done.stderr
    assert "faithdpo/config_check.py" in done.stdout + done.stderr
    assert not (work / "results").exists()


def recomputed_rates(scores: pd.DataFrame) -> dict:
    ents = scores["hallucinated_entities"].map(len)
    nums = scores["hallucinated_numbers"].map(len)
    assert (ents == scores["ent_hallucinations"]).all() and (nums == scores["num_hallucinations"]).all()
    return {"Entity Hallucination Rate": (ents > 0).mean(), "Number Hallucination Rate": (nums > 0).mean(),
            "Hallucinated entities per summary": ents.mean(), "Hallucinated numbers per summary": nums.mean()}


def report_table(report: str) -> dict[tuple[str, str], list[str]]:
    """Hallucination table rows: (metric, seed) -> [base, dpo] leading values (intervals dropped)."""
    rows = re.findall(r"^\| ([^|]+?) \| (\d+) \| ([^|]+?) \| ([^|]+?) \| ([^|]+?) \| ([^|]*?) \| ([^|]+?) \|$", report,
                      flags=re.MULTILINE)
    return {(row[0], row[1]): [cell.split(" [")[0] for cell in row[2:4]] for row in rows}


@pytest.mark.demo
def test_demo_report_matches_the_score_files(demo_run):
    """Every seed's row of main's report is the rate recomputed from that seed's score file."""
    out = demo_run / "results" / "demo"
    report = (out / "report.md").read_text()
    table = report_table(report)
    base = recomputed_rates(pd.read_parquet(out / "scores" / "eval_base.parquet"))
    n_val = len(pd.read_parquet(out / "data" / "validation.parquet"))
    for seed in ("0", "1", "2"):
        scores = pd.read_parquet(out / "scores" / f"eval_dpo_seed{seed}.parquet")
        assert len(scores) == n_val == 200
        dpo = recomputed_rates(scores)
        for name in base:
            fmt = (lambda v: f"{100 * v:.1f}%") if "Rate" in name else (lambda v: f"{v:.3f}")
            assert table[(name, seed)] == [fmt(base[name]), fmt(dpo[name])], (name, seed)
    pairs = pd.read_parquet(out / "pairs" / "train.parquet")
    assert f"{len(pairs)} preference pairs; one training run per seed." in report
    assert "LoRA target modules: q_proj, k_proj, v_proj, o_proj." in report  # as config/config.yaml lists them
    assert "| Seed | Optimizer steps | Loss (final) |" in report
    for link in re.findall(r"\]\(([^)]+)\)", report):
        assert (out / link).exists(), link


def test_shared_steps_run_once_for_all_experiments(tmp_path):
    """Three experiments (main + two) and two shards: data, candidates, their scores and the
    base model's evaluation are planned once; pairs and a report per experiment. Training and
    DPO evaluation join the DAG when an experiment's select_pairs checkpoint has found enough
    pairs (pairs.min_pairs); test_demo_comparison_sets_every_experiment_beside_the_base sees them run."""
    counts = {}
    out = snakemake(copy_workflow(tmp_path), "-n", *DEMO).stdout
    for rule, count in re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:")[1], flags=re.MULTILINE):
        counts[rule] = int(count)
    assert counts.pop("total") == sum(counts.values())
    assert counts == {
        "synthesize_corpus": 2, "prepare_split": 2, "build_prompts": 2,
        "generate_candidates": 2, "merge_candidates": 1, "score_candidates": 1,
        "select_pairs": 3, "generate_eval": 2, "merge_eval": 1, "score_eval": 1, "check_eval": 1,  # the base model's
        "report": 3, "comparison": 1, "all": 1,
    }
    # a CPU run (resources.gpu: 0): its GPU steps hold no GPU, so the profile's one-GPU cap
    # does not queue them one at a time on a machine that has none
    generation = [b for b in re.split(r"\n(?=rule )", out) if b.startswith("rule generate_")]
    assert len(generation) == 4 and all(re.search(r"resources: .*\bgpu=0\b", b) for b in generation)


@pytest.mark.demo
def test_demo_comparison_sets_every_experiment_beside_the_base(demo_run):
    out = demo_run / "results" / "demo"
    text = (out / "comparison.md").read_text()
    primary = text.split("## Primary")[1].split("\n## ")[0]
    rows = [line for line in primary.splitlines() if line.startswith("| DPO: ") or line.startswith("| Base model")]
    names, seeds = ["main", "best_vs_worst", "minimal_swap"], ["0, 1, 2", "0, 1, 2", "0"]
    assert [r.split(" | ")[0] for r in rows] == ["| Base model"] + [f"| DPO: `{n}`" for n in names]
    for name, row, seed_list in zip(names, rows[1:], seeds):
        folder = out if name == "main" else out / "experiments" / name
        metrics = json.loads((folder / "metrics.json").read_text())
        strategy = "highlights_vs_worst" if name == "main" else name
        assert metrics["pairs_config"]["strategy"] == strategy and f"| {strategy} |" in row
        assert f"| {len(pd.read_parquet(folder / 'pairs' / 'train.parquet'))} | {seed_list} |" in row
        rate = next(r for r in metrics["comparison"] if r["key"] == "entity_rate")
        if len(rate["seeds"]) > 1:
            mean = sum(e["dpo"]["value"] for e in rate["seeds"]) / len(rate["seeds"])
            assert f"{100 * mean:.1f}% (mean)<br>delta mean {100 * rate['across']['mean']:+.1f} pp (SD " in row
        else:
            assert f"{fmt_delta(rate['seeds'][0]['delta'], True)}, Holm p = " in row
        assert f"Experiment `{name}`" in (folder / "report.md").read_text()
    swaps = pd.read_parquet(out / "experiments" / "minimal_swap" / "pairs" / "train.parquet")
    assert (swaps["swap"].str.contains(" -> ")).all() and (swaps["rejected_badness"] >= 1).all()


@pytest.mark.demo
def test_demo_positive_control_lowers_a_rate_in_most_seeds_without_worse_summaries(demo_run):
    """The measurement has seen a change that replicates: best_vs_worst (settings chosen on the dev
    split) lowers a hallucination rate in a majority of its training seeds, significant after Holm
    over every test of the comparison, while each seed's summaries stay as good (degenerate under
    5%, ROUGE-L no more than 0.02 below the base)."""
    from faithdpo.comparison import decided_rows

    out = demo_run / "results" / "demo"
    names = ["main", "best_vs_worst", "minimal_swap"]
    metrics = [json.loads(((out if n == "main" else out / "experiments" / n) / "metrics.json").read_text())
               for n in names]
    rows, _ = decided_rows(names, metrics)
    control = metrics[1]
    seeds = len(control["seeds"])
    assert seeds == 3
    lowered = {key: [e for e in rows["best_vs_worst"][key]["seeds"] if e["verdict"] == "improved"]
               for key in ("entity_rate", "number_rate")}
    assert any(len(improved) > seeds / 2 for improved in lowered.values()), rows["best_vs_worst"]
    for quality in control["quality"]["dpo"]:
        assert quality["degenerate"] < 0.05
        assert quality["rougeL"] >= control["quality"]["base"]["rougeL"] - 0.02
    assert "improved in " in next(line for line in (out / "comparison.md").read_text().splitlines()
                                  if line.startswith("| DPO: `best_vs_worst`"))


# The rest run on the small test config (.test/config.yaml): 2 shards, main and minimal_swap.

MODEL_FREE_RULES = {"synthesize_corpus", "prepare_split", "merge_candidates", "merge_eval", "score_candidates",
                    "score_eval", "select_pairs", "report", "comparison"}


def own_step(step: str) -> bool:
    """An experiment's own steps (its pairs, and each seed's training, merge and evaluation); the
    rest of a run is shared by every experiment."""
    return step == "select_pairs" or "seed" in step


def benchmark_files(run) -> list[str]:
    return sorted(str(p) for p in (run / TEST_OUT).rglob("*.tsv") if "benchmarks" in p.parts)


@pytest.mark.slow
def test_steps_that_need_no_model_import_no_ml_framework(test_run):
    """Data, scoring, pairs, shard merges, reports and the comparison never import torch,
    transformers, trl or peft (seconds and hundreds of MB per job). The probe's record of the
    model steps shows that it sees the imports it is there to catch."""
    from faithdpo.cost import step_name

    records = [line.split("\t") for line in (test_run / "imports.tsv").read_text().splitlines()]
    importers = {rule for rule, _ in records}
    assert not importers & MODEL_FREE_RULES, sorted(records)
    assert {"generate_candidates", "generate_eval", "train_dpo"} <= importers
    ran = {step_name(b).split(" ")[0] for b in benchmark_files(test_run)}
    assert MODEL_FREE_RULES <= ran


@pytest.mark.slow
def test_reports_give_the_cost_of_every_step(test_run):
    """Each report's Cost section sums the benchmark files of the jobs behind it (shared steps
    and its own); the comparison's covers the whole run; GPU jobs record peak GPU memory."""
    from faithdpo.cost import read_costs, step_name

    out = test_run / TEST_OUT
    everything = benchmark_files(test_run)
    # check_candidates is the cost of the experiment that ranks by the checker (checker_pairs), not main's
    main = [b for b in everything if "/experiments/" not in b
            and step_name(b) not in ("report", "comparison", "check_candidates")]
    shared = [b for b in main if not own_step(step_name(b))]
    swap = [b for b in everything if "/experiments/minimal_swap/" in b and step_name(b) != "report"]
    for report, files in ((out / "report.md", main), (out / "experiments/minimal_swap/report.md", shared + swap)):
        cost = report.read_text().split("## Cost")[1]
        jobs = read_costs(files)
        total = re.search(r"^\| \*\*Total\*\* \| (\d+) \| ([\d.]+) s \| ([\d.]+) s \|", cost, flags=re.MULTILINE)
        assert int(total.group(1)) == len(jobs), cost
        assert float(total.group(2)) == pytest.approx(jobs["wall_s"].sum(), abs=0.051)
        assert float(total.group(3)) == pytest.approx(jobs["cpu_s"].sum(), abs=0.051)
        for step, count in jobs["step"].value_counts().items():
            assert f"| `{step}` | {count} |" in cost, (report, step)
    whole = (out / "comparison.md").read_text().split("## Cost")[1]
    assert f"| **Total** | {len(everything) - 1} |" in whole  # every job but the comparison itself
    gpu = sorted(out.rglob("*.gpu.json"))
    # candidates and base eval shards, the base model's and the candidates' checks; per training
    # seed (main 2, minimal_swap 1, checker_pairs 1) its training, dpo shards and checks
    assert len(gpu) == 2 + 2 + 2 + (2 + 1 + 1) * (1 + 2 + 1)
    for path in gpu:  # this machine has no GPU, and says so
        assert json.loads(path.read_text()) == {"device": "cpu", "peak_allocated_mb": None, "peak_reserved_mb": None}


@pytest.mark.slow
def test_each_training_seed_trains_its_own_adapter_on_the_same_pairs(test_run):
    """The seed sets the pairs' order, LoRA's initialisation and dropout: main's two seeds train
    different adapters (different curves) from the same pairs, each evaluated on every article."""
    from safetensors.numpy import load_file

    models = test_run / TEST_OUT / "models"
    adapters = [load_file(models / f"dpo_seed{s}" / "adapter" / "adapter_model.safetensors") for s in (0, 1)]
    assert adapters[0].keys() == adapters[1].keys()
    assert any(not np.array_equal(adapters[0][k], adapters[1][k]) for k in adapters[0])
    losses = [[h["loss"] for h in json.loads((models / f"dpo_seed{s}" / "log_history.json").read_text()) if "loss" in h]
              for s in (0, 1)]
    assert len(losses[0]) == len(losses[1]) and losses[0] != losses[1]
    metrics = json.loads((test_run / TEST_OUT / "metrics.json").read_text())
    assert metrics["seeds"] == [0, 1] and all(len(r["seeds"]) == 2 for r in metrics["comparison"])


@pytest.mark.slow
def test_a_run_keeps_every_output_under_its_outdir(test_run):
    produced = {p.relative_to(test_run).parts[0] for p in test_run.rglob("*") if p.is_file()}
    assert produced == {"Snakefile", "workflow", "config", "faithdpo", "profiles", "envs", "demo", ".test", "results",
                        ".snakemake", "imports.tsv"}
    assert {p.name for p in (test_run / "results").iterdir()} == {"test"}


@pytest.mark.slow
def test_nothing_to_be_done_after_a_run(test_run):
    done = snakemake(test_run, "-n", *TEST)
    assert "Nothing to be done" in done.stdout + done.stderr


@pytest.mark.slow
def test_snakemake_report_embeds_the_figures(test_run, tmp_path):
    """Each figure's bytes are inside the HTML (base64), as is the report with its Cost section."""
    html = tmp_path / "report.html"
    snakemake(test_run, "--report", str(html), *TEST)
    text = html.read_text(encoding="utf-8")
    figures = sorted((test_run / TEST_OUT).rglob("figures/*.png"))
    assert len(figures) == 3 * 3  # main, minimal_swap and checker_pairs, three figures each
    for figure in figures:
        assert base64.b64encode(figure.read_bytes()).decode()[:2000] in text, figure
    report = (test_run / TEST_OUT / "report.md").read_bytes()
    assert base64.b64encode(report).decode()[:2000] in text


RUNTIME_KEYS = {"train_runtime", "train_samples_per_second", "train_steps_per_second"}
SEEDED_ARTIFACTS = [
    "data/train.parquet", "data/validation.parquet", "prompts/train.parquet", "candidates/train.parquet",
    "scores/candidates.parquet", "pairs/train.parquet", "pairs/selection.json",
    *(f"models/dpo_seed{s}/{f}" for s in (0, 1) for f in ("adapter/adapter_model.safetensors",
                                                           "merged/model.safetensors")),
    "eval/base.parquet", "eval/dpo_seed0.parquet", "eval/dpo_seed1.parquet", "scores/eval_base.parquet",
    "scores/eval_dpo_seed0.parquet", "scores/eval_dpo_seed1.parquet", "metrics.json", "report.md",
]


@pytest.mark.slow
def test_two_fresh_runs_are_byte_identical(test_run, tmp_path):
    """Same seed, fresh directory, same machine: every artifact of main's report, both training
    seeds included, comes out byte for byte the same, except the wall-clock parts (the report's
    Cost section, the trainer's throughput). The other experiment runs the same code; it is left
    out of the second run to keep the suite short."""
    other = copy_workflow(tmp_path)
    snakemake(other, f"{TEST_OUT}/report.md", "--cores", "2", *TEST)
    first, second = test_run / TEST_OUT, other / TEST_OUT
    for rel in SEEDED_ARTIFACTS:
        a, b = (first / rel).read_bytes(), (second / rel).read_bytes()
        if rel.endswith(".md"):
            a, b = without_cost(a.decode()), without_cost(b.decode())
            assert "## Cost" not in a and "## Files" in a
        assert a == b, rel

    def steps(run):  # wall-clock throughput differs between runs; everything else must not
        history = json.loads((run / "models" / "dpo_seed1" / "log_history.json").read_text())
        return [{k: v for k, v in entry.items() if k not in RUNTIME_KEYS} for entry in history]

    assert steps(first) == steps(second)
