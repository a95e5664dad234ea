"""Training stage: DPO training in several processes, one per GPU, through accelerate's launcher.

With ``training.num_processes: 1`` (and no ``training.accelerate_config``) the job trains in
its own process. Otherwise it writes what every process needs to a spec file and runs
``accelerate launch`` (torchrun underneath) through this module, each process a
faithdpo.train_worker (which imports training; this module never does): DDP by default,
DeepSpeed ZeRO or FSDP when ``training.accelerate_config`` names an accelerate config file.
Each process trains on its share of every global batch (per-device batch x accumulation x
processes); the main process alone writes the adapter, the log history and the checkpoints
(each process adds its own RNG state to a checkpoint, as the Trainer does, so that a resume
draws the same dropout).

Training across nodes is refused before any job (see check_launch): it needs a launcher per
node with a shared rendezvous, which one Snakemake job holding one node's GPUs does not give.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

# accelerate's distributed types a training job may name in its accelerate config.
DISTRIBUTED_TYPES = ("MULTI_GPU", "FSDP", "DEEPSPEED")


def launched(num_processes: int, accelerate_config: str | None) -> bool:
    """Whether training goes through accelerate's launcher rather than the job's own process."""
    return num_processes > 1 or accelerate_config is not None


def accelerate_settings(path: str) -> dict:
    """An accelerate config file (``accelerate config`` writes one), checked for what we run."""
    where = f"training.accelerate_config = {path!r}"
    try:
        settings = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise ValueError(f"{where}: cannot read it ({e.strerror}); write one with `accelerate config --config_file "
                         f"{path}` or set accelerate_config: null for DDP") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{where}: not valid YAML ({e})") from None
    kind = settings.get("distributed_type") if isinstance(settings, dict) else None
    if kind not in DISTRIBUTED_TYPES:
        raise ValueError(f"{where}: distributed_type is {kind!r}; allowed: {', '.join(DISTRIBUTED_TYPES)} "
                         "(DDP, FSDP, DeepSpeed on GPUs)")
    return settings


def shards_weights(settings: dict) -> bool:
    """Whether the config shards the model's weights across processes (FSDP, DeepSpeed ZeRO-3).

    Sharded 4-bit weights must be stored in the compute dtype (bnb_4bit_quant_storage), not
    uint8, or FSDP/ZeRO-3 cannot flatten them with the rest (PEFT's QLoRA-with-FSDP recipe).
    """
    if settings["distributed_type"] == "FSDP":
        return True
    if settings["distributed_type"] != "DEEPSPEED":
        return False
    deepspeed = settings.get("deepspeed_config") or {}
    if "deepspeed_config_file" in deepspeed:  # DeepSpeed's own JSON
        stage = json.loads(Path(deepspeed["deepspeed_config_file"]).read_text()).get("zero_optimization", {}).get("stage")
    else:
        stage = deepspeed.get("zero_stage")
    return stage == 3


def check_launch(training: dict, device: str, where: str = "training") -> None:
    """Cross-key checks of the launch settings; run on the config before any job."""
    if training.get("num_nodes", 1) > 1:
        raise ValueError(
            f"{where}.num_nodes = {training['num_nodes']}: training across nodes is not supported. A train_dpo job "
            "holds the GPUs of one node: raise training.num_processes to that node's GPUs (8 on most nodes), and name "
            "a DeepSpeed ZeRO-3 or FSDP config in training.accelerate_config when the model does not fit one GPU. "
            "To train across nodes, train on the experiment's pairs/train.parquet outside the workflow."
        )
    path = training.get("accelerate_config")
    if path is None:
        return
    settings = accelerate_settings(path)
    if device == "cpu" and settings["distributed_type"] != "MULTI_GPU":
        raise ValueError(f"{where}.accelerate_config = {path!r} uses {settings['distributed_type']}, which needs "
                         "CUDA, but the config says device: cpu (a CPU run trains with DDP over gloo only)")


def default_accelerate_config(num_processes: int) -> dict:
    """DDP on one machine: what ``accelerate config`` writes for "multi-GPU, no DeepSpeed/FSDP".

    Written for every launch without a config of the user's, so that an accelerate default
    config in the user's home (~/.cache/huggingface/accelerate) never changes the run.
    """
    return {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "MULTI_GPU",
        "num_machines": 1,
        "machine_rank": 0,
        "num_processes": num_processes,
        "gpu_ids": "all",
        # The Trainer sets bf16/fp16 itself (training.precision); the launcher must not add any.
        "mixed_precision": "no",
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
        "debug": False,
    }


def free_port() -> int:
    """A free TCP port for the processes' rendezvous: two training jobs on one node must not meet."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(config_file: str, num_processes: int, threads_per_process: int, port: int,
                   spec: str) -> list[str]:
    """``accelerate launch`` (through this module's ``launch`` entry, see main) on the worker
    entry (faithdpo.train_worker); the job's own settings on top of the file's."""
    return [
        sys.executable, "-m", "faithdpo.launch", "launch",
        "--config_file", config_file,
        "--num_processes", str(num_processes),
        "--num_machines", "1",
        "--main_process_port", str(port),
        "--num_cpu_threads_per_process", str(threads_per_process),
        # every GPU the scheduler gave the job, and no precision of the launcher's (the Trainer's)
        "--gpu_ids", "all",
        "--mixed_precision", "no",
        "-m", "faithdpo.train_worker", spec,
    ]


def run(job: dict, run_dir: Path, num_processes: int, accelerate_config: str | None, threads_per_process: int) -> None:
    """Train ``job`` (see training.run_training) in ``num_processes`` processes; their output
    goes to this job's log. Raises with the launcher's exit code when a process fails."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = accelerate_config
    if config_file is None:
        config_file = str(run_dir / "accelerate.yaml")
        Path(config_file).write_text(yaml.safe_dump(default_accelerate_config(num_processes)))
    spec = run_dir / "job.json"
    spec.write_text(json.dumps(job, indent=1))
    command = launch_command(config_file, num_processes, threads_per_process, free_port(), str(spec))
    log.info("launching %d training processes: %s", num_processes, " ".join(command))
    errors = []  # the processes' uncaught errors (logs.setup_logging logs them as CRITICAL)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as proc:
        for line in proc.stdout:
            line = line.rstrip()
            if "] CRITICAL " in line:
                errors.append(line)
            log.info("%s", line)
    if proc.returncode != 0:
        raise RuntimeError(
            f"training in {num_processes} processes failed: accelerate launch exited with {proc.returncode}; "
            f"{'the first error: ' + errors[0] if errors else 'no process logged an error'} "
            "(the processes' output is in this job's log)"
        )


def die_with_parent() -> None:
    """Have the kernel kill this process when its parent dies (Linux): the launcher dies with
    the job, the training processes with the launcher. A killed job (SLURM's time limit, a
    kill -9) then leaves no process behind to write into the checkpoints its rerun resumes from."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the launcher's own signal handling is what is left


def main(argv: list[str]) -> None:
    """``launch ARGS``: accelerate launch with ARGS, dying with the job (each process it starts
    is a train_worker)."""
    command, args = argv[0], argv[1:]
    die_with_parent()
    if command == "launch":
        from accelerate.commands.launch import main as accelerate_launch

        sys.argv = ["accelerate launch", *args]
        accelerate_launch()
    else:
        raise SystemExit(f"usage: python -m faithdpo.launch launch ARGS (not {command!r})")


if __name__ == "__main__":
    main(sys.argv[1:])
