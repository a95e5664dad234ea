"""The Cost section: Snakemake benchmark files summed per step, GPU memory read beside them."""

import json

import pytest

from faithdpo.cost import cost_section, read_cost_tables, read_costs, step_name, summarize_costs, write_costs
from faithdpo.gpu_memory import combine_gpu_records, gpu_peak_memory

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(path, seconds, rss, cpu, gpu=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n")
    if gpu is not None:
        path.with_suffix(".gpu.json").write_text(json.dumps({"device": "H100", "peak_allocated_mb": gpu - 1,
                                                             "peak_reserved_mb": gpu}))
    return str(path)


@pytest.mark.parametrize("path, step", [
    ("out/benchmarks/train_dpo.tsv", "train_dpo"),
    ("out/benchmarks/generate_candidates/2-of-4.tsv", "generate_candidates"),
    ("out/experiments/x/benchmarks/generate_eval/dpo_seed1.1-of-2.tsv", "generate_eval (dpo_seed1)"),
    ("out/benchmarks/train_dpo/seed1.tsv", "train_dpo (seed1)"),
    ("out/benchmarks/prepare_split/train.tsv", "prepare_split (train)"),
])
def test_a_benchmark_file_names_its_step(path, step):
    assert step_name(path) == step


def test_steps_sum_their_jobs_and_the_total_sums_the_steps(tmp_path):
    b = tmp_path / "benchmarks"
    files = [bench(b / "generate_candidates" / "1-of-2.tsv", 10.0, 500.0, 9.0, gpu=3000.0),
             bench(b / "generate_candidates" / "2-of-2.tsv", 12.0, 700.0, 11.0, gpu=3500.0),
             bench(b / "score_candidates.tsv", 3.0, 250.0, 2.5)]
    table = summarize_costs(read_costs(files)).set_index("step")
    assert table.loc["generate_candidates"].tolist() == [2, 22.0, 20.0, 700.0, 3500.0]
    assert table.loc["Total"].tolist() == [3, 25.0, 22.5, 700.0, 3500.0]
    lines = cost_section(read_costs(files + [str(b / "generate_candidates" / "1-of-2.gpu.json")]), "The whole run.")
    assert lines[0] == "## Cost" and lines[2].startswith("The whole run. From Snakemake's benchmark files")
    assert "| `generate_candidates` | 2 | 22.0 s | 20.0 s | 700 MB | 3,500 MB |" in lines
    assert "| `score_candidates` | 1 | 3.0 s | 2.5 s | 250 MB | n/a |" in lines
    assert "| **Total** | 3 | 25.0 s | 22.5 s | 700 MB | 3,500 MB |" in lines


def test_long_steps_read_in_minutes(tmp_path):
    lines = cost_section(read_costs([bench(tmp_path / "benchmarks" / "train_dpo.tsv", 5400.0, 9000.0, 5000.0)]), "Run.")
    assert "| `train_dpo` | 1 | 90.0 min | 83.3 min | 9,000 MB | n/a |" in lines


def test_a_file_that_is_not_a_benchmark_is_named(tmp_path):
    path = tmp_path / "benchmarks" / "report.tsv"
    path.parent.mkdir()
    path.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match=r"report\.tsv: not a Snakemake benchmark file"):
        read_costs([str(path)])


def test_gpu_peak_memory_says_when_there_is_no_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this test is about a machine without CUDA; on a GPU the device is named")
    with gpu_peak_memory(str(tmp_path / "job.gpu.json")):
        torch.ones(1000).sum()
    assert json.loads((tmp_path / "job.gpu.json").read_text()) == {
        "device": "cpu", "peak_allocated_mb": None, "peak_reserved_mb": None}


def test_a_jobs_processes_give_its_peak_on_any_one_gpu(tmp_path):
    """train_dpo in N processes: each records its own GPU, the job's record is the largest."""
    paths = []
    for rank, (allocated, reserved) in enumerate([(900.0, 1000.0), (1200.5, 1100.0)]):
        paths.append(str(tmp_path / f"rank{rank}.json"))
        (tmp_path / f"rank{rank}.json").write_text(json.dumps(
            {"device": "NVIDIA H100", "peak_allocated_mb": allocated, "peak_reserved_mb": reserved}))
    combine_gpu_records(paths, str(tmp_path / "job.gpu.json"))
    assert json.loads((tmp_path / "job.gpu.json").read_text()) == {
        "device": "NVIDIA H100", "peak_allocated_mb": 1200.5, "peak_reserved_mb": 1100.0}
    cpu = tmp_path / "cpu.json"
    cpu.write_text(json.dumps({"device": "cpu", "peak_allocated_mb": None, "peak_reserved_mb": None}))
    combine_gpu_records([str(cpu), str(cpu)], str(tmp_path / "cpu.gpu.json"))
    assert json.loads((tmp_path / "cpu.gpu.json").read_text())["peak_allocated_mb"] is None


def test_reports_cost_tables_count_a_shared_job_once(tmp_path):
    """Two experiments' reports both list the shared steps; the whole run has each job once."""
    shared = bench(tmp_path / "benchmarks" / "score_candidates.tsv", 3.0, 250.0, 2.5)
    tables = []
    for name in ("main", "other"):
        own = bench(tmp_path / name / "benchmarks" / "train_dpo.tsv", 20.0, 900.0, 19.0, gpu=5000.0)
        tables.append(str(tmp_path / f"{name}.cost.tsv"))
        write_costs(read_costs([shared, own]), tables[-1])
    jobs = read_cost_tables(tables)
    assert sorted(jobs["step"]) == ["score_candidates", "train_dpo", "train_dpo"]
    assert "| **Total** | 3 | 43.0 s | 40.5 s | 900 MB | 5,000 MB |" in cost_section(jobs, "Run.")
