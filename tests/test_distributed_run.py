"""train_dpo in 2 processes on the CPU (gloo), through the rule, on the small test config: the
same training as 1 process with the same global batch, only the main process writes, and
TensorBoard logs that read back offline. (test_training.py kills and resumes a 2-process run.)"""

import json
import shutil

import pytest
import yaml

from workflow_helpers import TEST, TEST_OUT, snakemake

# The test config trains at 4 pairs a step (4 per device x 1 accumulation), LoRA dropout off
# (each process would draw its own masks: the curves would agree in distribution, not in value).
# 2 processes at 2 per device keep that global batch.
TWO = {"training": {"num_processes": 2, "per_device_train_batch_size": 2, "report_to": "tensorboard"}}
# Credentials in the job's environment, as a user's shell has them: none may reach our files.
SECRETS = {"WANDB_API_KEY": "wandb-secret-5f1e", "HF_TOKEN": "hf_secret_7c2a", "MLFLOW_TRACKING_TOKEN": "mlflow-secret-9b3d"}
LOSS_TOLERANCE = 1e-5  # absolute, per logged step: float32 rounding of a different reduction order
MAIN = f"{TEST_OUT}/models/dpo_seed0"  # main's first training seed


def trained(work):
    """main's log history, adapter and training log in the run ``work``."""
    return (json.loads((work / MAIN / "log_history.json").read_text()), work / MAIN / "adapter",
            (work / TEST_OUT / "logs" / "train_dpo" / "seed0.log").read_text())


@pytest.fixture(scope="module")
def runs(test_run, tmp_path_factory):
    """The test run (main trained in 1 process) and a copy where main trains again in 2."""
    work = shutil.copytree(test_run, tmp_path_factory.mktemp("distributed") / "run", symlinks=True)
    (work / "two.yaml").write_text(yaml.safe_dump(TWO))
    done = snakemake(work, "--cores", "2", *TEST, "two.yaml", "--", f"{MAIN}/log_history.json", env=SECRETS)
    return work, trained(test_run), (done, *trained(work))


def losses(history, key="loss"):
    return [(h["step"], h[key]) for h in history if "loss" in h]


def test_two_processes_train_as_one_with_the_same_global_batch(runs):
    import torch
    from safetensors.torch import load_file

    _, (one, one_adapter, one_log), (done, two, two_adapter, two_log) = runs
    assert "in 1 process(es), global batch 4 (4 per device x 1 accumulation x 1)" in one_log
    assert "in 2 process(es), global batch 4 (2 per device x 1 accumulation x 2)" in two_log
    assert "launching 2 training processes" in two_log and "launching" not in one_log
    assert "gpu=2" in done.stdout + done.stderr  # the job asked for one GPU per process
    assert [s for s, _ in losses(two)] == [s for s, _ in losses(one)]  # the same optimizer steps
    assert len(losses(one)) >= 4
    for key in ("loss", "rewards/margins", "logps/chosen"):
        for (step, a), (_, b) in zip(losses(one, key), losses(two, key)):
            assert abs(a - b) <= LOSS_TOLERANCE, f"step {step}: {key} {a} (1 process) vs {b} (2 processes)"
    assert max(v for _, v in losses(one)) - min(v for _, v in losses(one)) > 1e-3  # a curve, not a constant
    a, b = load_file(one_adapter / "adapter_model.safetensors"), load_file(two_adapter / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5)


def test_the_main_process_alone_logs_and_tracks_and_nothing_is_left_behind(runs):
    work, _, (_, _, adapter, log) = runs
    assert "[rank 0] INFO faithdpo.training: training on" in log
    assert "[rank 1] INFO" not in log  # the other process speaks only about problems
    assert sorted(p.name for p in adapter.iterdir() if p.name != ".snakemake_timestamp") == [
        "README.md", "adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    assert not (work / MAIN / ".adapter.checkpoints").exists()
    assert len(list((work / TEST_OUT / "tracking" / "seed0" / "tensorboard").iterdir())) == 1  # the main process's
    gpu = json.loads((work / TEST_OUT / "benchmarks" / "train_dpo" / "seed0.gpu.json").read_text())
    assert gpu == {"device": "cpu", "peak_allocated_mb": None, "peak_reserved_mb": None}


def test_tensorboard_logs_read_back_offline_under_the_experiment(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    work, _, (_, two, _, _) = runs
    events = EventAccumulator(str(work / TEST_OUT / "tracking" / "seed0" / "tensorboard"))
    events.Reload()
    scalars = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert [s for s, _ in scalars] == [s for s, _ in losses(two)]
    assert [v for _, v in scalars] == pytest.approx([v for _, v in losses(two)], abs=1e-6)
    args = json.loads(events.Tensors("args/text_summary")[0].tensor_proto.string_val[0])
    assert args["run_name"] == "main-seed0"  # the run is named after the experiment and seed
    assert args["report_to"] == ["tensorboard"]


def test_no_credential_from_the_environment_reaches_our_files(runs):
    work, _, _ = runs
    for path in (work / TEST_OUT).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in SECRETS.values():
                assert secret.encode() not in data, f"{path} holds {secret}"
