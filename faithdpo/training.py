"""Training stage: DPO training with TRL's DPOTrainer, LoRA adapters and optional 4-bit NF4 (QLoRA).

With a ``peft_config`` and no ``ref_model``, TRL uses the base model with the
adapters disabled as the reference: no second copy of the weights, which is what a
4-bit run wants. The trainer's log history (loss, rewards/accuracies,
rewards/margins, logps/chosen|rejected) is saved for the report, after the layers LoRA adapted
(training.lora_target_modules, ``auto`` resolved by inspecting the model). With
``num_processes`` > 1 the job trains through accelerate's launcher (faithdpo.launch).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from faithdpo import launch, trackers
from faithdpo.io import atomic_path, inputs_fingerprint, progress_dir, read_parquet, write_json

log = logging.getLogger(__name__)


ADAPTER_DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class TrainingConfig:
    """Training settings; every field is a key under ``training:`` in the config."""

    quantization: str = "nf4"  # nf4 | none
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    # TRL's DPOConfig zeroes every dropout, LoRA's included, unless told not to.
    disable_dropout: bool = False
    # "auto": the model's attention projections (resolve_target_modules), or a list of layer names.
    lora_target_modules: str | list[str] = "auto"
    per_device_train_batch_size: int = 2
    gradient_accumulation_steps: int = 4
    max_length: int = 1536
    learning_rate: float = 5e-6
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = 0.0  # steps, or a fraction of all steps when < 1
    num_train_epochs: float = 2
    beta: float = 0.1
    loss_type: list[str] = field(default_factory=lambda: ["sigmoid"])
    loss_weights: list[float] | None = None
    ld_alpha: float | None = None  # LD-DPO: weight of the tokens past the shorter side's length
    logging_steps: int = 1
    gradient_checkpointing: bool = True
    # The reference log-probabilities once before training, not at every step (schema: why).
    precompute_ref_log_probs: bool = False
    save_steps: int = 50  # optimizer steps between checkpoints (a killed run resumes from the last)
    seed: int = 0
    trust_remote_code: bool = False
    # Trainable LoRA weights while training. TRL casts them to bf16 over a 4-bit base, where
    # AdamW's steps at lr 5e-6 are below half a bf16 step of lora_A and round away.
    adapter_dtype: str = "float32"  # float32 | bfloat16
    # Processes (GPUs) of one node that train together; the global batch is per-device batch
    # x accumulation x processes. num_nodes > 1 is refused before any job (launch.check_launch).
    num_processes: int = 1
    num_nodes: int = 1
    accelerate_config: str | None = None  # an accelerate config file: DeepSpeed ZeRO or FSDP
    # Trackers the trainer logs to (none | tensorboard | wandb | mlflow, or a list): they watch
    # the training and never change it, so they are left out of the checkpoints' fingerprint.
    report_to: str | list[str] = "none"

    def __post_init__(self):
        if self.adapter_dtype not in ADAPTER_DTYPES:
            raise ValueError(f"training.adapter_dtype = {self.adapter_dtype!r}; allowed: {', '.join(ADAPTER_DTYPES)}")
        targets = self.lora_target_modules
        if targets != AUTO and not (isinstance(targets, (list, tuple)) and targets
                                    and all(isinstance(t, str) and t for t in targets)):
            raise ValueError(f"training.lora_target_modules = {targets!r}; allowed: auto, or a non-empty list of "
                             "the model's linear layer names such as [q_proj, v_proj]")


AUTO = "auto"
# What training.lora_target_modules: auto adapts: the first of these sets of attention
# projections whose every name is a linear layer of the model.
AUTO_TARGET_MODULES = (
    ("q_proj", "k_proj", "v_proj", "o_proj"),  # Qwen2, Llama, Mistral, Gemma
    ("qkv_proj", "o_proj"),  # Phi-3: query, key and value in one fused projection
)


def resolve_target_modules(requested: str | list[str], linear_names: list[str], model: str = "the model") -> list[str]:
    """The modules that get LoRA adapters, from ``requested`` (training.lora_target_modules) and
    ``linear_names``, the module names of the model's linear layers (full or leaf names).

    ``auto``: the first set of AUTO_TARGET_MODULES the model has. A list is kept as given, once
    each of its names is a linear layer of the model as PEFT matches it (the whole module name
    or its dotted tail). Otherwise a ValueError naming the key, ``model`` and its linear layers
    (leaf names, once each): before training, not deep inside PEFT.
    """
    from faithdpo.models import leaf_names

    leaves = leaf_names(linear_names)
    layers = f"{model}'s linear layers are {', '.join(leaves) or 'none'}"
    if requested == AUTO:
        for names in AUTO_TARGET_MODULES:
            if set(names) <= set(leaves):
                return list(names)
        known = "; ".join(", ".join(names) for names in AUTO_TARGET_MODULES)
        raise ValueError(f"training.lora_target_modules is auto, but {model} has none of the attention projections "
                         f"auto knows ({known}): {layers}. Set training.lora_target_modules to a list of them.")
    missing = [t for t in requested if not any(n == t or n.endswith("." + t) for n in linear_names)]
    if missing:
        raise ValueError(f"training.lora_target_modules names {', '.join(missing)}, which {model} does not have: "
                         f"{layers}. Name some of these, or set training.lora_target_modules: auto.")
    return list(requested)


def target_modules_of(requested: str | list[str], model, name: str = "the model") -> list[str]:
    """resolve_target_modules over a loaded model's linear layers (4-bit ones included)."""
    from faithdpo.models import linear_layers

    return resolve_target_modules(requested, list(linear_layers(model)), name)


def model_target_modules(requested: str | list[str], model_dir: str, trust_remote_code: bool = False) -> list[str]:
    """resolve_target_modules for the model in ``model_dir``, read from its config.json on the meta
    device (models.meta_model: no weights loaded). A model that cannot be built there keeps an
    explicit list unchecked (PEFT checks it when training starts); auto needs it."""
    from faithdpo.models import meta_model

    try:
        model = meta_model(model_dir, trust_remote_code)
    except Exception as exc:
        if requested == AUTO:
            raise ValueError(f"training.lora_target_modules is auto, but the model in {model_dir} cannot be inspected "
                             f"({type(exc).__name__}: {exc}): set training.lora_target_modules to a list of its "
                             "attention layers' names.") from exc
        log.warning("cannot inspect the model in %s (%s); training.lora_target_modules %s unchecked",
                    model_dir, exc, requested)
        return list(requested)
    return target_modules_of(requested, model, f"model {model_dir} ({model.config.model_type})")


def precision(dtype: str) -> dict:
    """The trainer's mixed-precision flags for the machine's compute dtype (models.compute_dtype)."""
    return {"bf16": dtype == "bfloat16", "fp16": dtype == "float16"}


# Settings that do not change what training computes (see TrainingConfig.report_to).
NOT_FINGERPRINTED = ("report_to",)


def result_settings(cfg: TrainingConfig) -> dict:
    """The settings a checkpoint depends on: a resume under other ones would mix two trainings."""
    return {k: v for k, v in asdict(cfg).items() if k not in NOT_FINGERPRINTED}


def dpo_config(cfg: TrainingConfig, output_dir: str, on_gpu: bool, run_name: str | None = None):
    """TRL's DPOConfig for ``cfg``. A launched run loads the model whole in each process
    (device_map None: DDP places it on the process's GPU, FSDP and ZeRO-3 shard it), never
    spread over all GPUs ("auto", TRL's default on a GPU unless told)."""
    from trl import DPOConfig

    from faithdpo.models import compute_dtype

    dtype = compute_dtype()
    report_to = trackers.trackers(cfg.report_to)

    return DPOConfig(
        output_dir=output_dir,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        max_length=cfg.max_length,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_steps,
        num_train_epochs=cfg.num_train_epochs,
        beta=cfg.beta,
        loss_type=list(cfg.loss_type),
        loss_weights=list(cfg.loss_weights) if cfg.loss_weights else None,
        ld_alpha=cfg.ld_alpha,
        logging_steps=cfg.logging_steps,
        disable_dropout=cfg.disable_dropout,
        # DPOConfig defaults to bf16 and gradient checkpointing; the CPU wants neither, and a GPU
        # without bf16 gets fp16.
        **precision(dtype),
        gradient_checkpointing=cfg.gradient_checkpointing and on_gpu,
        precompute_ref_log_probs=cfg.precompute_ref_log_probs,
        use_cpu=not on_gpu,
        seed=cfg.seed,
        data_seed=cfg.seed,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        report_to=report_to or "none",
        run_name=run_name,
        # Several processes: every LoRA weight takes part in each step, so DDP need not search
        # for unused ones (transformers' checkpointing is non-reentrant, which DDP supports).
        ddp_find_unused_parameters=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        model_init_kwargs={"dtype": dtype, "use_safetensors": True, "trust_remote_code": cfg.trust_remote_code,
                           **({"device_map": None} if launch.launched(cfg.num_processes, cfg.accelerate_config) else {})},
    )


def last_checkpoint(directory: Path, processes: int = 1) -> Path | None:
    """The newest complete trainer checkpoint: its trainer_state.json (written last by the main
    process) parses and, with several processes, every process's RNG state is there (each writes
    its own, with no barrier before the main process's state)."""
    steps = sorted(directory.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]), reverse=True)
    for ckpt in steps:
        try:
            json.loads((ckpt / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        if processes == 1 or all((ckpt / f"rng_state_{rank}.pth").exists() for rank in range(processes)):
            return ckpt
    return None


class WholeBatchSampler:
    """An epoch's pairs in shuffled order, filled up to whole global batches with that order's
    first pairs, so that every optimizer step sees one full global batch.

    DDP fills a short last batch with repeated pairs while one process trains on it short, so
    their last step of each epoch (and all after it) would differ; with whole global batches,
    N processes split each step's pairs exactly as one process accumulates them. The order
    depends on (seed, epoch) only: the same in every process and after a resume.
    """

    def __init__(self, size: int, global_batch: int, seed: int):
        self.size, self.global_batch, self.seed, self.epoch = size, global_batch, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.size // self.global_batch) * self.global_batch

    def __iter__(self):
        import numpy as np

        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size).tolist()
        while len(order) < len(self):
            order += order[: len(self) - len(order)]
        return iter(order)


def dpo_trainer_class():
    """TRL's DPOTrainer, sampling whole global batches (WholeBatchSampler)."""
    from transformers import TrainerCallback
    from trl import DPOTrainer

    class SamplerEpoch(TrainerCallback):
        """Tell the sampler each epoch, resumed ones included: with several processes, neither
        accelerate nor the Trainer reaches it through the batch sampler's wrappers after a resume."""

        def __init__(self, trainer):
            self.trainer = trainer

        def on_epoch_begin(self, args, state, control, **kwargs):
            self.trainer.whole_batch_sampler.set_epoch(int(state.epoch))

    class WholeBatchDPOTrainer(DPOTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback(SamplerEpoch(self))

        def _get_train_sampler(self, train_dataset=None):
            dataset = self.train_dataset if train_dataset is None else train_dataset
            args = self.args
            self.whole_batch_sampler = WholeBatchSampler(
                len(dataset), args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size,
                args.data_seed)
            return self.whole_batch_sampler

    return WholeBatchDPOTrainer


def set_adapter_dtype(model, dtype: str) -> int:
    """Cast the trainable (adapter) parameters to ``dtype``; the number of tensors cast.

    Called once the trainer is built, before its optimizer exists: TRL casts them to bf16
    over a quantized base (dpo_trainer.py, "When using QLoRA ..."), which this undoes.
    """
    import torch

    target = getattr(torch, dtype)
    cast = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype != target:
            param.data = param.data.to(target)
            cast += 1
    return cast


def build_trainer(cfg: TrainingConfig, df, model_dir: str, output_dir: str, on_gpu: bool,
                  run_name: str | None = None, quant_storage: str | None = None,
                  target_modules: list[str] | None = None):
    """TRL's DPOTrainer over ``df`` (prompt/chosen/rejected), adapter weights in ``cfg.adapter_dtype``.

    ``quant_storage``: the dtype 4-bit weights are stored in, when FSDP or ZeRO-3 shards them.
    ``target_modules``: the layers LoRA adapts, as train_dpo resolved them; by default resolved
    here from ``cfg.lora_target_modules`` (model_target_modules).
    """
    import datasets
    from peft import LoraConfig

    from faithdpo.models import load_tokenizer, nf4_config

    if target_modules is None:
        target_modules = model_target_modules(cfg.lora_target_modules, model_dir, cfg.trust_remote_code)
    tokenizer = load_tokenizer(model_dir, padding_side="right")
    peft_config = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(target_modules),
        task_type="CAUSAL_LM",
    )
    trainer = dpo_trainer_class()(
        model=model_dir,
        args=dpo_config(cfg, output_dir, on_gpu, run_name),
        train_dataset=datasets.Dataset.from_pandas(df[["prompt", "chosen", "rejected"]], preserve_index=False),
        processing_class=tokenizer,
        peft_config=peft_config,
        quantization_config=nf4_config(quant_storage) if cfg.quantization == "nf4" else None,
    )
    cast = set_adapter_dtype(trainer.model, cfg.adapter_dtype)
    log.info("adapter weights in %s (%d tensors cast back from TRL's choice)", cfg.adapter_dtype, cast)
    return trainer


def train_dpo(pairs: str, model_dir: str, adapter_dir: str, log_history: str, device: str = "cpu",
              rule: str = "train_dpo", run_name: str | None = None, tracking_dir: str | None = None,
              gpu_memory: str | None = None, threads: int = 1, chat: bool = False, **params) -> list[dict]:
    """Train a LoRA adapter with DPO on ``pairs`` (prompt/chosen/rejected); save it and the log.

    ``device: cuda`` stops at once without a CUDA device (models.require_device). Checkpoints
    go to a folder beside the adapter every ``save_steps`` steps; a rerun after a kill resumes
    from the last complete one (same inputs only) instead of step 0. ``num_processes`` > 1
    trains in that many processes through accelerate (faithdpo.launch), the same otherwise.
    ``run_name`` names the run in the trackers, which write under ``tracking_dir`` (trackers.tracking_env).
    ``gpu_memory``: where the peak GPU memory is recorded (gpu_memory.gpu_peak_memory).
    ``chat`` (prompt.chat): the prompts are a chat template's text; both sides of each pair end
    with its end-of-turn token (chat_pairs).
    """
    from faithdpo.gpu_memory import combine_gpu_records, gpu_peak_memory
    from faithdpo.models import check_model_dir, require_device

    on_gpu = require_device(device, rule) == "cuda"
    cfg = TrainingConfig(**params)
    launch.check_launch(asdict(cfg), device)
    trackers.check_trackers(cfg.report_to)
    if on_gpu:
        require_gpus(cfg.num_processes, rule)
    check_model_dir(model_dir)
    # auto resolved, and every name checked against the model's layers, before anything trains
    targets = model_target_modules(cfg.lora_target_modules, model_dir, cfg.trust_remote_code)
    log.info("LoRA target modules: %s (training.lora_target_modules: %s)", ", ".join(targets),
             cfg.lora_target_modules if cfg.lora_target_modules == AUTO else "as listed")
    if read_parquet(pairs, ["prompt"]).empty:
        raise ValueError(f"{pairs} holds no preference pairs: every candidate had badness 0, nothing to train on")
    # The trainer's checkpoints, beside the adapter (see io.progress_dir).
    # An accelerate config's content is part of what the checkpoints were made under.
    settings_files = [cfg.accelerate_config] if cfg.accelerate_config else []
    checkpoints = progress_dir(Path(adapter_dir).with_name(f".{Path(adapter_dir).name}.checkpoints"),
                               inputs_fingerprint([pairs, *settings_files], model_dir,
                                                  {**result_settings(cfg), **({"chat": True} if chat else {})}))
    resume = last_checkpoint(checkpoints, cfg.num_processes)
    if cfg.precompute_ref_log_probs and cfg.quantization == "nf4" and not on_gpu:
        raise ValueError(
            f"rule {rule}: training.precompute_ref_log_probs with quantization nf4 cannot train on the CPU: TRL "
            "precomputes in eval mode, where bitsandbytes repacks the 4-bit weights for inference only. Set "
            "training.precompute_ref_log_probs: false, or quantization: none, or train on a GPU."
        )
    if resume:
        log.info("resuming from %s", resume)
    elif tracking_dir:
        # A fresh training starts fresh TensorBoard logs; a resumed one adds to its own.
        shutil.rmtree(Path(tracking_dir) / "tensorboard", ignore_errors=True)
    job = {
        "pairs": pairs, "model_dir": model_dir, "adapter_dir": adapter_dir, "log_history": log_history,
        "checkpoints": str(checkpoints), "resume": str(resume) if resume else None, "on_gpu": on_gpu,
        "run_name": run_name, "tracking_dir": tracking_dir, "params": asdict(cfg), "quant_storage": quant_storage(cfg),
        "target_modules": targets, "chat": chat,
    }
    if launch.launched(cfg.num_processes, cfg.accelerate_config):
        run_dir = checkpoints / "launch"
        launch.run(job, run_dir, cfg.num_processes, cfg.accelerate_config, max(1, threads // cfg.num_processes))
        if gpu_memory:
            combine_gpu_records(sorted(map(str, run_dir.glob("gpu_memory.rank*.json"))), gpu_memory)
    else:
        with gpu_peak_memory(gpu_memory) if gpu_memory else contextlib.nullcontext():
            run_training(job)
    history = json.loads(Path(log_history).read_text())
    shutil.rmtree(checkpoints, ignore_errors=True)
    log.info("saved adapter to %s; final log entry: %s", adapter_dir, history[-1] if history else None)
    return history


def require_gpus(num_processes: int, rule: str) -> None:
    """Stop when the job sees fewer GPUs than it trains on (the scheduler gave it fewer)."""
    import torch

    found = torch.cuda.device_count()
    if found < num_processes:
        raise RuntimeError(
            f"rule {rule}: training.num_processes = {num_processes}, but this job sees {found} CUDA device(s) "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}). The rule asks the cluster for "
            f"gpu: {num_processes}; run it where that many are free, or lower num_processes."
        )


def quant_storage(cfg: TrainingConfig) -> str | None:
    """The storage dtype of 4-bit weights: the compute dtype where FSDP or ZeRO-3 shards them."""
    if cfg.quantization != "nf4" or cfg.accelerate_config is None:
        return None
    if not launch.shards_weights(launch.accelerate_settings(cfg.accelerate_config)):
        return None
    from faithdpo.models import compute_dtype

    return compute_dtype()


def chat_pairs(df, model_dir: str):
    """The pairs of a chat run (prompt.chat) as TRL gets them: plain text, the prompt as the prompts
    file holds it (the rendered chat template), both sides ending with the template's end-of-turn
    token, so that the model learns to end its turn where generation stops it.

    TRL's conversational format would render the template again at training time, and appends no
    EOS, while generation and the pairs use the prompt file's text: one text everywhere instead.
    TRL appends the EOS token to a plain-text side unless it ends with it already (the end-of-turn
    token is the EOS token of most chat tokenizers, as Qwen2.5-Instruct's). A BOS that the template
    writes and the tokenizer adds again is left to the tokenizer (chat.without_added_bos).
    """
    from faithdpo.chat import end_of_turn, without_added_bos
    from faithdpo.models import load_tokenizer

    tokenizer = load_tokenizer(model_dir, padding_side="right")
    eot = end_of_turn(tokenizer, model_dir)
    log.info("chat prompts: both sides of each pair end with the end-of-turn token %r", eot)
    return df.assign(prompt=df["prompt"].map(lambda p: without_added_bos(p, tokenizer)),
                     chosen=df["chosen"] + eot, rejected=df["rejected"] + eot)


def run_training(job: dict) -> None:
    """Train ``job`` (as train_dpo builds it) in this process: the only one, or one of the
    launched ones. The main process alone writes the adapter and the log history."""
    cfg = TrainingConfig(**job["params"])
    df = read_parquet(job["pairs"], ["prompt", "chosen", "rejected"])
    if job.get("chat"):
        df = chat_pairs(df, job["model_dir"])
    with trackers.tracking_env(job["tracking_dir"] if trackers.trackers(cfg.report_to) else None):
        trainer = build_trainer(cfg, df, job["model_dir"], job["checkpoints"], job["on_gpu"], job["run_name"],
                                job["quant_storage"], job["target_modules"])
        four_bit = sum(type(m).__module__.startswith("bitsandbytes") for m in trainer.model.modules())
        world = trainer.args.world_size
        log.info("training on %d pairs in %d process(es), global batch %d (%d per device x %d accumulation x %d); "
                 "%d 4-bit linear layers; (trainable, all) parameters: %s", len(df), world,
                 cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * world,
                 cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps, world, four_bit,
                 trainer.model.get_nb_trainable_parameters())
        trainer.train(resume_from_checkpoint=job["resume"])
    save_adapter(trainer, job["adapter_dir"], Path(job["checkpoints"]) / "adapter")
    if trainer.is_world_process_zero():
        # the trainer's log, after the layers LoRA adapted (the report shows them)
        write_json([{"lora_target_modules": job["target_modules"]}, *trainer.state.log_history], job["log_history"])


def save_adapter(trainer, adapter_dir: str, staging: Path) -> None:
    """Save the adapter and tokenizer to ``adapter_dir`` (atomically: staged, then renamed).

    Every process takes part: under FSDP or ZeRO-3 the adapter's weights are sharded and
    Trainer.save_model gathers them (FSDP as a full state dict, PEFT's FSDP recipe); the main
    process writes.
    """
    if trainer.is_fsdp_enabled:
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(staging))
    if trainer.is_world_process_zero():
        (staging / "training_args.bin").unlink(missing_ok=True)  # the Trainer's pickle: not part of the adapter
        with atomic_path(adapter_dir) as tmp:
            staging.rename(tmp)
