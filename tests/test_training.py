"""DPO training through the real code path: TRL DPOTrainer, LoRA on q/k/v/o, 4-bit NF4 on the CPU."""

import json
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest

from conftest import TEMPLATE
from faithdpo import training
from faithdpo.corpus import generate_corpus
from faithdpo.io import write_parquet
from faithdpo.training import TrainingConfig, dpo_config, train_dpo


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    df = generate_corpus(8, "train", seed=0)
    path = tmp_path_factory.mktemp("pairs") / "pairs.parquet"
    write_parquet(pd.DataFrame({
        "prompt": [TEMPLATE.replace("{article}", a) for a in df["article"]],
        "chosen": " " + df["highlights"],
        "rejected": " Someone else won in Atlantis by 99 votes .",
    }), path)
    return path


@pytest.mark.parametrize("quantization", ["nf4", "none"])
def test_dpo_trains_a_lora_adapter_and_logs_rewards(tiny_model_dir, pairs, tmp_path, quantization, caplog):
    caplog.set_level("INFO", logger="faithdpo")
    adapter, history_path = tmp_path / "adapter", tmp_path / "log_history.json"
    history = train_dpo(
        str(pairs), tiny_model_dir, str(adapter), str(history_path), quantization=quantization,
        lora_r=4, lora_alpha=8, per_device_train_batch_size=4, gradient_accumulation_steps=1, max_length=384,
        learning_rate=1e-3, num_train_epochs=2, logging_steps=1,
    )
    # 1 layer x (q, k, v, o, gate, up, down) are 4-bit under nf4, none otherwise
    assert f"{7 if quantization == 'nf4' else 0} 4-bit linear layers" in caplog.text
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8
    assert sorted(config["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert (adapter / "adapter_model.safetensors").stat().st_size > 0
    assert not (adapter / "trainer").exists()  # no optimizer state left behind in the artifact
    steps = [h for h in history if "loss" in h]
    assert len(steps) == 4  # 8 pairs / batch 4 x 2 epochs
    for key in ("rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"):
        assert key in steps[-1]
    assert json.loads(history_path.read_text()) == json.loads(json.dumps(history))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter", "log_history.json"]


LOSS_SETTINGS = {"beta": 0.3, "loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.5], "ld_alpha": 0.5,
                 "precompute_ref_log_probs": True}


def test_precomputed_reference_with_nf4_is_refused_on_the_cpu_with_what_to_do(tiny_model_dir, pairs, tmp_path):
    with pytest.raises(ValueError, match=r"precompute_ref_log_probs with quantization nf4 cannot train on the CPU.*"
                                         r"precompute_ref_log_probs: false, or quantization: none"):
        train_dpo(str(pairs), tiny_model_dir, str(tmp_path / "adapter"), str(tmp_path / "h.json"),
                  quantization="nf4", precompute_ref_log_probs=True)


@pytest.mark.parametrize("setting", LOSS_SETTINGS)
def test_loss_settings_reach_the_dpo_config(setting, tmp_path):
    """Each loss (and reference) setting, at a value other than TRL's default, is the one the trainer gets."""
    from trl import DPOConfig

    args = dpo_config(TrainingConfig(**LOSS_SETTINGS), str(tmp_path), on_gpu=False)
    assert getattr(args, setting) == LOSS_SETTINGS[setting]
    assert getattr(DPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False), setting) != LOSS_SETTINGS[setting]


class Stamped(Exception):
    """Raised in place of training once train_dpo has the fingerprint of its checkpoint folder."""


@pytest.fixture
def checkpoint_fingerprint(tiny_model_dir, pairs, tmp_path, monkeypatch):
    """The fingerprint that train_dpo stamps on its checkpoint folder under given settings (no training)."""
    def stamp(directory, fingerprint):
        raise Stamped(fingerprint)

    monkeypatch.setattr(training, "progress_dir", stamp)

    def fingerprint(**params):
        with pytest.raises(Stamped) as stamped:
            train_dpo(str(pairs), tiny_model_dir, str(tmp_path / "adapter"), str(tmp_path / "h.json"), **params)
        return stamped.value.args[0]

    return fingerprint


CHANGED_TRAINING = {
    "quantization": "none", "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "lora_target_modules": ["q_proj"],
    "per_device_train_batch_size": 1, "gradient_accumulation_steps": 2, "max_length": 512, "learning_rate": 1e-5,
    "lr_scheduler_type": "linear", "warmup_steps": 0.1, "num_train_epochs": 3, "beta": 0.3, "loss_type": ["ipo"],
    "loss_weights": [0.5], "ld_alpha": 0.5, "logging_steps": 2, "gradient_checkpointing": False, "save_steps": 10,
    "precompute_ref_log_probs": True,
    "seed": 1, "trust_remote_code": True, "adapter_dtype": "bfloat16", "disable_dropout": True,
    "num_processes": 2, "accelerate_config": str(Path(__file__).parent / "data" / "accelerate_ddp.yaml"),
}
# Settings that watch training and never change it: a resume under another value is the same training.
UNCHANGED_TRAINING = {"report_to": "tensorboard"}
ONLY_ONE_VALUE = {"num_nodes"}  # more than 1 is refused (test_launch.py)


def test_every_training_setting_is_checked_against_the_checkpoints():
    assert set(CHANGED_TRAINING) | set(UNCHANGED_TRAINING) | ONLY_ONE_VALUE == {f.name for f in fields(TrainingConfig)}
    assert set(UNCHANGED_TRAINING) == set(training.NOT_FINGERPRINTED)


@pytest.mark.parametrize("setting", UNCHANGED_TRAINING)
def test_a_tracker_change_resumes_the_same_checkpoints(setting, checkpoint_fingerprint):
    assert checkpoint_fingerprint(**{setting: UNCHANGED_TRAINING[setting]}) == checkpoint_fingerprint()


@pytest.mark.parametrize("setting", CHANGED_TRAINING)
def test_checkpoints_are_resumed_only_under_the_same_settings(setting, checkpoint_fingerprint):
    """A rerun resumes the checkpoints stamped with its fingerprint: the same settings give the same
    one, and a change to any setting another (the run would otherwise go on from other training)."""
    assert checkpoint_fingerprint() == checkpoint_fingerprint()
    assert checkpoint_fingerprint(**{setting: CHANGED_TRAINING[setting]}) != checkpoint_fingerprint()


def test_no_pairs_is_a_clear_error(tiny_model_dir, tmp_path):
    empty = tmp_path / "empty.parquet"
    write_parquet(pd.DataFrame({"prompt": [], "chosen": [], "rejected": []}, dtype=str), empty)
    with pytest.raises(ValueError, match="holds no preference pairs"):
        train_dpo(str(empty), tiny_model_dir, str(tmp_path / "a"), str(tmp_path / "h.json"))
    assert not (tmp_path / "a").exists()


RUN = """
import sys
from faithdpo.logs import setup_logging
from faithdpo.training import TrainingConfig, dpo_config, train_dpo
setup_logging(sys.argv[5])
train_dpo(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], **{params!r})
"""


def test_a_checkpoint_counts_once_every_process_saved_its_rng_state(tmp_path):
    """The main process writes trainer_state.json and each process its RNG state, with no barrier
    between them: a kill in between leaves a checkpoint a resume must pass over."""
    for step, ranks in ((2, [0, 1]), (4, [0])):
        ckpt = tmp_path / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "trainer_state.json").write_text("{}")
        for rank in ranks:
            (ckpt / f"rng_state_{rank}.pth").write_bytes(b"")
    assert training.last_checkpoint(tmp_path, processes=2).name == "checkpoint-2"
    assert training.last_checkpoint(tmp_path).name == "checkpoint-4"


def adapter_weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


@pytest.mark.slow  # training processes, killed and restarted
@pytest.mark.parametrize("processes", [1, 2])
def test_killed_training_resumes_from_its_last_checkpoint(tiny_model_dir, pairs, tmp_path, processes):
    """A job killed mid-way through its second epoch (kill -9 of the job's process, as SLURM's time
    limit does) resumes from its last checkpoint and ends where an uninterrupted run ends. With 2 processes the launcher and
    its training processes die with the job (nothing writes on), the main process alone wrote the
    checkpoints, and the result is the 1-process run's with the same global batch of 2."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch

    params = dict(quantization="none", lora_r=4, lora_alpha=8, per_device_train_batch_size=2 // processes,
                  gradient_accumulation_steps=1, max_length=384, learning_rate=1e-3, num_train_epochs=2,
                  save_steps=1, lora_dropout=0.0, num_processes=processes, threads=processes)
    adapter = tmp_path / "adapter"
    args = [sys.executable, "-c", RUN.format(params=params), str(pairs), tiny_model_dir, str(adapter),
            str(tmp_path / "history.json")]
    checkpoints = tmp_path / ".adapter.checkpoints"
    proc = subprocess.Popen([*args, str(tmp_path / "first.log")])
    deadline = time.time() + 300
    # in the second epoch (4 steps an epoch): a resume must draw that epoch's order, not the first's
    while not (checkpoints / "checkpoint-5" / "trainer_state.json").exists() and proc.poll() is None \
            and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the kill must land mid-way for this test to mean anything"
    if processes > 1:
        first = set(checkpoints.glob("checkpoint-*"))
        time.sleep(2)  # a process left behind would write its next checkpoint meanwhile
        assert set(checkpoints.glob("checkpoint-*")) == first, "training went on after its job was killed"
        # the main process wrote each checkpoint's state; each process its own RNG state
        newest = max(first, key=lambda p: int(p.name.split("-")[1]))
        assert {p.name for p in newest.glob("rng_state*")} == {"rng_state_0.pth", "rng_state_1.pth"}
    assert not adapter.exists()

    subprocess.run([*args, str(tmp_path / "second.log")], check=True)
    log = (tmp_path / "second.log").read_text()
    assert "resuming from" in log and "checkpoint-" in log
    resumed_at = int(log.split("resuming from ")[1].split("checkpoint-")[1].split()[0])
    assert 5 <= resumed_at < 8
    history = [h for h in json.loads((tmp_path / "history.json").read_text()) if "loss" in h]
    assert [h["step"] for h in history][-1] == 8  # 8 pairs x 2 epochs, global batch 2
    assert not checkpoints.exists(), "checkpoints are removed once the adapter is saved"

    reference = tmp_path / "reference"
    one_process = {**params, "num_processes": 1, "per_device_train_batch_size": 2, "threads": 1}
    train_dpo(str(pairs), tiny_model_dir, str(reference), str(tmp_path / "ref.json"), **one_process)
    resumed, uninterrupted = adapter_weights(adapter), adapter_weights(reference)
    assert resumed.keys() == uninterrupted.keys()
    for name in resumed:
        torch.testing.assert_close(resumed[name], uninterrupted[name], rtol=1e-4, atol=1e-6)


def trainer_for(tiny_model_dir, pairs, tmp_path, **params):
    from faithdpo.io import read_parquet
    from faithdpo.training import TrainingConfig, build_trainer

    cfg = TrainingConfig(**{"lora_r": 4, "lora_alpha": 8, "per_device_train_batch_size": 4,
                            "gradient_accumulation_steps": 1, "max_length": 384, **params})
    return build_trainer(cfg, read_parquet(pairs), tiny_model_dir, str(tmp_path / "out"), on_gpu=False)


def lora_weights(model, part):
    return {n: p.detach().clone() for n, p in model.named_parameters() if part in n}


@pytest.mark.parametrize("adapter_dtype", ["float32", "bfloat16"])
def test_adapter_weights_train_in_float32_over_a_4bit_base(tiny_model_dir, pairs, tmp_path, adapter_dtype):
    """TRL casts the adapter to bf16 over a 4-bit base; at lr 5e-6, AdamW's steps on lora_A (entries
    ~0.1 here) are far below half a bf16 step and round away. In float32 they land."""
    import torch

    trainer = trainer_for(tiny_model_dir, pairs, tmp_path, quantization="nf4", learning_rate=5e-6,
                          adapter_dtype=adapter_dtype, lora_dropout=0.0, num_train_epochs=3)
    trainable = {p.dtype for p in trainer.model.parameters() if p.requires_grad}
    assert trainable == {getattr(torch, adapter_dtype)}
    before = lora_weights(trainer.model, "lora_A")
    trainer.train()  # 6 steps: lora_B leaves 0 at the first, lora_A's gradient is non-zero after it
    after = lora_weights(trainer.model, "lora_A")
    moved = sum(int((after[n] != before[n]).sum()) for n in before) / sum(t.numel() for t in before.values())
    if adapter_dtype == "float32":
        assert moved > 0.9, f"only {moved:.1%} of lora_A entries moved at lr 5e-6"
    else:  # what TRL's cast does, kept as an option: most of lora_A never moves
        assert moved < 0.2


def test_lora_dropout_acts_unless_disable_dropout(tiny_model_dir, pairs, tmp_path):
    """DPOConfig.disable_dropout defaults to True in TRL and zeroes LoRA's dropout."""
    def dropouts(**params):
        model = trainer_for(tiny_model_dir, pairs, tmp_path, quantization="none", lora_dropout=0.25, **params).model
        return {m.p for n, m in model.named_modules() if "lora_dropout" in n and hasattr(m, "p")}

    assert dropouts() == {0.25}
    assert dropouts(disable_dropout=True) == {0.0}
