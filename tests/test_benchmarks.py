"""The benchmarks stay runnable and print their tables (their numbers are not asserted:
timings belong in benchmarks/, not in unit tests)."""

import subprocess
import sys

import pytest

from workflow_helpers import REPO

pytestmark = pytest.mark.slow  # each test runs a benchmark script in its own process


def test_generation_benchmark_stands_alone_and_prints_the_comparison_table(tmp_path):
    """From any directory, with no prior run: the committed demo model is its default."""
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_generate.py"), "--prompts", "8",
                           "--batch-size", "4", "--max-new-tokens", "8", "--threads", "1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "| mode | seconds | new tokens | tokens/s | vs one at a time |" in lines
    one = next(line for line in lines if line.startswith("| one at a time |"))
    batched = next(line for line in lines if line.startswith("| batched (4/batch) |"))
    assert one.endswith("| 1.00x |") and one.split(" | ")[2] == batched.split(" | ")[2]  # same new tokens
    assert "identical summaries one-at-a-time vs batched: True" in lines


@pytest.mark.gpu_check
def test_the_gpu_check_runs_every_gpu_step_on_the_cpu_with_tiny(tmp_path):
    """benchmarks/gpu_check.py --tiny: the same code as on a GPU, at CPU sizes (about 2 minutes, so it
    runs apart in .ci/run): every table, the rules' steps taken, the merge within tolerance."""
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--tiny"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("# gpu_check: CPU (") and "FAILED" not in done.stdout
    for head in ("| generation | dtype |", "| training | checkpointing |", "| rule | s | result |"):
        assert any(line.startswith(head) for line in lines), head
    assert sum(line.startswith("| batched (4) |") for line in lines) == 2  # bf16 and float32
    assert any(line.startswith("| train_dpo |") and "| 2 optimizer steps | cpu |" in line for line in lines)
    assert sum(line.startswith(("| nf4 |", "| none |")) for line in lines) == 1 + 6  # NF4 + precompute refused
    merge = next(line for line in lines if line.startswith("merge: "))
    assert float(merge.split("difference| ")[1].split(" ")[0]) < 1e-4
    assert any(line.startswith("real run estimate on this device") for line in lines)


def test_the_gpu_check_names_a_missing_package_at_once():
    hide_trl = ("import importlib.util, runpy, sys; find = importlib.util.find_spec; "
                "importlib.util.find_spec = lambda name, *a: None if name == 'trl' else find(name, *a); "
                "sys.argv = ['gpu_check.py', '--tiny']; runpy.run_path('benchmarks/gpu_check.py', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", hide_trl], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "gpu_check: missing Python packages: trl." in done.stderr


def test_scoring_benchmark_checks_both_implementations_agree_and_prints_the_ratio():
    done = subprocess.run([sys.executable, "benchmarks/bench_scoring.py", "--articles", "6", "--candidates", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "6 articles x 2 candidates = 12 summaries (outputs identical)"
    assert lines[-2].startswith("speed-up: ") and lines[-2].endswith("x")
    assert lines[-1].startswith("matching rules alone: ")


def test_the_batch_memory_benchmark_runs_both_steps_at_a_configs_sizes_on_the_cpu(tmp_path):
    """benchmarks/bench_batch_memory.py --tiny: one candidate and one evaluation batch through
    faithdpo.generation; on the CPU there is no GPU memory to report."""
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_batch_memory.py"), "--tiny"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line.split(" | ")[0]: line.split(" | ") for line in done.stdout.splitlines() if line.startswith("| ")}
    assert rows["| candidates"][1:3] == ["bfloat16", "8"]  # 2 prompts x K = 4 sampled rows
    assert rows["| evaluation"][1:3] == ["float32", "4"]  # greedy, one row a prompt
    assert rows["| evaluation"][6:8] == ["n/a", "n/a"]
