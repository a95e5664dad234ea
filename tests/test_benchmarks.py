"""The benchmarks stay runnable and print their tables (their numbers are not asserted:
timings belong in benchmarks/, not in unit tests)."""

import subprocess
import sys

from workflow_helpers import REPO


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


def test_scoring_benchmark_checks_both_implementations_agree_and_prints_the_ratio():
    done = subprocess.run([sys.executable, "benchmarks/bench_scoring.py", "--articles", "6", "--candidates", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "6 articles x 2 candidates = 12 summaries (outputs identical)"
    assert lines[-2].startswith("speed-up: ") and lines[-2].endswith("x")
    assert lines[-1].startswith("matching rules alone: ")
