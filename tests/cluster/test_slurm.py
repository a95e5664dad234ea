"""The workflow (test config) on a real single-node SLURM cluster (slurm-wlm 22.05, munge, one "gpu" GRES
on /dev/null): every GPU rule must run as a SLURM job holding gres:gpu:1, and the report must
equal the local run's. Needs root and `apt-get install slurm-wlm munge`; .ci/run installs them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workflow_helpers import TEST, TEST_OUT, without_cost

HERE = Path(__file__).parent
GPU_RULES = {"generate_candidates", "generate_eval", "train_dpo", "check_eval", "check_candidates"}
# The GPU rules minimal_swap's report needs (it ranks its pairs by badness: no check_candidates)
GPU_RULES_RUN = GPU_RULES - {"check_candidates"}
pytestmark = pytest.mark.slow


def slurm_missing() -> str | None:
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch") if not shutil.which(b)
               and not Path("/usr/sbin", b).exists()]
    if missing:
        return f"SLURM is not installed (missing {', '.join(missing)}): apt-get install slurm-wlm munge"
    if os.geteuid() != 0:
        return "starting slurmctld, slurmd and munged needs root"
    return None


def skip_unless_ci(reason: str) -> None:
    """Skip where the cluster cannot start, but fail under CI (.ci/run sets CI): CI must run this test."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the cluster test: {reason}")
    pytest.skip(reason)


def start_cluster(directory: Path) -> None:
    reason = slurm_missing()
    if reason:
        skip_unless_ci(reason)
    started = subprocess.run(["bash", str(HERE / "start_slurm.sh"), str(directory)], capture_output=True, text=True)
    if started.returncode == 2:  # a real SLURM config is there: leave it alone
        skip_unless_ci(started.stderr.strip())
    assert started.returncode == 0, started.stdout + started.stderr


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    cluster = tmp_path_factory.mktemp("slurm")
    start_cluster(cluster)
    yield cluster
    subprocess.run(["bash", str(HERE / "stop_slurm.sh"), str(cluster)], check=False)


@pytest.mark.parametrize("ci, outcome", [("1", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_slurm_config_not_ours_fails_under_ci_and_skips_elsewhere(ci, outcome, monkeypatch, tmp_path):
    """start_slurm.sh leaves a SLURM config that it did not write alone (exit 2): a skip there would
    let CI pass without the cluster test. Nothing is started here."""
    monkeypatch.setenv("CI", ci)
    monkeypatch.setitem(globals(), "slurm_missing", lambda: None)
    refused = subprocess.CompletedProcess([], 2, "", "refusing to overwrite /etc/slurm/slurm.conf")
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: refused)
    with pytest.raises(outcome, match="refusing to overwrite /etc/slurm/slurm.conf"):
        start_cluster(tmp_path)


# The SLURM plugin adds 10 s to its wait after each status check that finds no job finished (up
# to 3 minutes: meant for hour-long cluster jobs), which made most of this test's minutes. Its
# jobs take seconds: poll every second instead. Only the polling changes; submission is real.
POLL_EVERY_SECOND = """
import snakemake_executor_plugin_slurm as slurm
from snakemake.cli import main

slurm.Executor.next_seconds_between_status_checks = property(lambda self: 1, lambda self, value: None)
main()
"""


def snakemake_polling_every_second(work: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-c", POLL_EVERY_SECOND, *args], cwd=work, capture_output=True, text=True)
    assert done.returncode == 0, f"snakemake {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def slurm_jobs(text: str) -> list[str]:
    return re.findall(r"has been submitted with SLURM jobid (\d+)", text)


@pytest.mark.cluster
def test_slurm_runs_gpu_rules_with_a_gpu_and_matches_the_local_run(slurm_cluster, test_run, tmp_path):
    """On a copy of the local run, the GPU steps are forced to rerun on the cluster: every GPU rule
    (both generation steps, training, the checker) and every CPU rule after them (shard merges, scoring,
    pairs, the adapter merge, the report) runs as a SLURM job, and the report equals the local
    run's. The data steps before generation are CPU rules like these; leaving them out keeps
    the test to minutes."""
    work = shutil.copytree(test_run, tmp_path / "run", symlinks=True)
    # minimal_swap's report: one training seed, fewer jobs than main's two (the target comes
    # first: --configfile takes several files)
    report = f"{TEST_OUT}/experiments/minimal_swap/report.md"
    done = snakemake_polling_every_second(
        work, report, "--forcerun", "generate_candidates", "generate_eval", "train_dpo",
        "--profile", "profiles/slurm", "--slurm-no-account", *TEST)
    output = done.stdout + done.stderr

    rules_seen = {}
    for job_id in slurm_jobs(output):
        info = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True).stdout
        rule = re.search(r"Comment=rule_(\w+?)(?:_wildcards_\S*)?\s", info).group(1)
        assert "JobState=COMPLETED" in info, info
        rules_seen.setdefault(rule, []).append(info)
    assert GPU_RULES_RUN <= set(rules_seen), f"GPU rules not submitted to SLURM: {GPU_RULES_RUN - set(rules_seen)}"
    for rule, infos in rules_seen.items():
        for info in infos:
            has_gpu = "gres:gpu:1" in info
            assert has_gpu == (rule in GPU_RULES), f"{rule}: {'a GPU' if has_gpu else 'no GPU'} requested\n{info}"
    assert len(rules_seen["generate_eval"]) == 4  # base and minimal_swap's one seed, two shards each

    assert {"merge_candidates", "score_candidates", "select_pairs", "merge_adapter", "merge_eval", "score_eval",
            "report"} <= set(rules_seen)
    local = without_cost((test_run / report).read_text())
    assert without_cost((work / report).read_text()) == local
