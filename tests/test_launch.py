"""Multi-process training settings (faithdpo.launch, faithdpo.train_worker) and the trackers
(faithdpo.trackers): what is refused before any job, what the launcher gets, and the sampler
that makes N processes train as one. The 2-process runs themselves are in test_training.py
(resume) and test_distributed_run.py (the rule, on the test config)."""

import json
import os
from pathlib import Path

import pytest
import yaml

from faithdpo import launch, trackers, training
from faithdpo.training import TrainingConfig, WholeBatchSampler

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "config" / "accelerate").glob("*.yaml"))


@pytest.mark.parametrize("report_to, names", [
    ("none", []), ("tensorboard", ["tensorboard"]), (["tensorboard", "wandb"], ["tensorboard", "wandb"]),
    (["mlflow"], ["mlflow"]),
])
def test_report_to_names_the_trackers(report_to, names):
    assert trackers.trackers(report_to) == names


def test_an_unknown_tracker_is_named():
    with pytest.raises(ValueError, match=r"training\.report_to = \['tensorboard', 'comet'\]: unknown comet; "
                                         r"allowed: none, tensorboard, wandb, mlflow"):
        trackers.trackers(["tensorboard", "comet"])


def test_a_tracker_without_its_package_stops_before_the_model_loads(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    trackers.check_trackers(["tensorboard"])
    with pytest.raises(RuntimeError, match=r"report_to includes wandb, but the wandb package is not installed "
                                           r"in this job's environment: pip install -e '\.\[wandb\]'"):
        trackers.check_trackers(["tensorboard", "wandb"])


def test_more_than_one_node_is_refused_with_what_to_do_instead():
    with pytest.raises(ValueError, match=r"experiments\.big\.training\.num_nodes = 2: training across nodes is not "
                                         r"supported.*raise training\.num_processes.*DeepSpeed ZeRO-3 or FSDP"):
        launch.check_launch({"num_nodes": 2}, "cuda", where="experiments.big.training")
    launch.check_launch({"num_nodes": 1, "num_processes": 8}, "cuda")


@pytest.mark.parametrize("text, message", [
    ("distributed_type: MULTI_CPU\n", r"distributed_type is 'MULTI_CPU'; allowed: MULTI_GPU, FSDP, DEEPSPEED"),
    ("- just a list\n", r"distributed_type is None"),
    ("distributed_type: [FSDP\n", r"not valid YAML"),
])
def test_an_accelerate_config_we_cannot_run_is_named(tmp_path, text, message):
    path = tmp_path / "acc.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"training\.accelerate_config = '{path}': {message}"):
        launch.check_launch({"accelerate_config": str(path)}, "cuda")


def test_the_accelerate_examples_are_fsdp_and_zero3():
    assert {p.name for p in EXAMPLES} == {"deepspeed_zero3.yaml", "fsdp_qlora.yaml"}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_the_example_accelerate_configs_shard_4bit_weights_in_the_compute_dtype(example, monkeypatch):
    """FSDP and ZeRO-3 shard the weights: QLoRA under them stores the 4-bit weights in the compute
    dtype (bnb_4bit_quant_storage); DDP keeps bitsandbytes' uint8."""
    from faithdpo import models

    launch.check_launch({"accelerate_config": str(example)}, "cuda")
    monkeypatch.setattr(models, "compute_dtype", lambda: "bfloat16")
    cfg = TrainingConfig(accelerate_config=str(example), num_processes=2)
    assert training.quant_storage(cfg) == "bfloat16"
    assert training.quant_storage(TrainingConfig(accelerate_config=str(example), quantization="none")) is None
    assert training.quant_storage(TrainingConfig(num_processes=2)) is None


@pytest.mark.parametrize("stage, shards", [(3, True), (2, False)])
def test_a_deepspeed_json_config_is_read_for_its_zero_stage(tmp_path, stage, shards):
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {"stage": stage}}))
    settings = {"distributed_type": "DEEPSPEED", "deepspeed_config": {"deepspeed_config_file": str(tmp_path / "ds.json")}}
    assert launch.shards_weights(settings) is shards
    assert launch.shards_weights({"distributed_type": "MULTI_GPU"}) is False


def test_quant_storage_reaches_the_4bit_config():
    import torch

    from faithdpo.models import nf4_config

    assert nf4_config("bfloat16").bnb_4bit_quant_storage == torch.bfloat16
    assert nf4_config().bnb_4bit_quant_storage == torch.uint8


def test_the_launcher_gets_the_jobs_processes_one_machine_its_own_port_all_its_gpus_and_no_precision():
    """The job's settings on the command line win over a user's accelerate file (accelerate's rule)."""
    command = launch.launch_command("acc.yaml", 4, 3, 29999, "job.json")
    assert command[1:4] == ["-m", "faithdpo.launch", "launch"]
    args = dict(zip(command[4:18:2], command[5:18:2]))
    assert args == {"--config_file": "acc.yaml", "--num_processes": "4", "--num_machines": "1",
                    "--main_process_port": "29999", "--num_cpu_threads_per_process": "3", "--gpu_ids": "all",
                    "--mixed_precision": "no"}
    assert command[18:] == ["-m", "faithdpo.train_worker", "job.json"]


def test_the_config_written_for_a_launch_without_one_is_ddp():
    config = launch.default_accelerate_config(2)
    assert config["distributed_type"] == "MULTI_GPU" and config["num_processes"] == 2
    assert config["mixed_precision"] == "no"  # the Trainer's bf16/fp16 flags decide


@pytest.mark.slow  # launches processes through accelerate
def test_a_failed_process_stops_the_job_with_the_launchers_exit_code_and_its_last_lines(tmp_path, caplog):
    job = {"params": {}}
    with pytest.raises(RuntimeError, match=r"training in 2 processes failed: accelerate launch exited with 1; the "
                                           r"first error: \[rank \d\] CRITICAL faithdpo: KeyError: 'pairs' "):
        launch.run(job, tmp_path / "run", 2, None, 1)
    assert json.loads((tmp_path / "run" / "job.json").read_text()) == job
    assert yaml.safe_load((tmp_path / "run" / "accelerate.yaml").read_text())["num_processes"] == 2


@pytest.mark.parametrize("size, global_batch", [(13, 4), (8, 4), (3, 8), (1, 2)])
def test_every_epoch_is_whole_global_batches_of_a_shuffled_order(size, global_batch):
    sampler = WholeBatchSampler(size, global_batch, seed=0)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert len(order) == len(sampler) and len(order) % global_batch == 0
        assert len(order) - size < global_batch  # at most one global batch filled up
        assert sorted(set(order)) == list(range(size))  # every pair, each epoch
        fill = len(order) - size
        assert order[size:] == (order[:size] * (fill // size + 1))[:fill]  # filled from the epoch's start
        epochs.append(order)
    if size > 3:
        assert epochs[0] != epochs[1]  # reshuffled each epoch
    # another process (or a resumed run) draws the same order
    again = WholeBatchSampler(size, global_batch, seed=0)
    again.set_epoch(2)
    assert list(again) == epochs[2]
    assert list(WholeBatchSampler(size, global_batch, seed=1)) != epochs[0] or size < 4


def test_trackers_write_under_the_experiment_and_a_users_settings_win(tmp_path, monkeypatch):
    for name in ("MLFLOW_EXPERIMENT_NAME", "TENSORBOARD_LOGGING_DIR", "WANDB_DIR", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    with trackers.tracking_env(str(tmp_path / "tracking")):
        assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "tracking" / "tensorboard")
        assert os.environ["WANDB_DIR"] == str(tmp_path / "tracking") and (tmp_path / "tracking").is_dir()
        assert os.environ["MLFLOW_TRACKING_URI"] == (tmp_path / "tracking" / "mlruns").as_uri()
        assert os.environ["WANDB_PROJECT"] == "mine" and os.environ["MLFLOW_EXPERIMENT_NAME"] == "faithdpo"
    for name in ("MLFLOW_EXPERIMENT_NAME", "TENSORBOARD_LOGGING_DIR", "WANDB_DIR", "MLFLOW_TRACKING_URI"):
        assert name not in os.environ
    assert os.environ["WANDB_PROJECT"] == "mine"


def test_trackers_and_run_name_reach_the_trainer(tmp_path):
    args = training.dpo_config(TrainingConfig(report_to=["tensorboard"]), str(tmp_path), False, run_name="main")
    assert args.report_to == ["tensorboard"] and args.run_name == "main"
    assert training.dpo_config(TrainingConfig(), str(tmp_path), False).report_to == []  # "none"
