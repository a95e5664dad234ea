"""DPO training with TRL's DPOTrainer, LoRA adapters and optional 4-bit NF4 (QLoRA).

With a ``peft_config`` and no ``ref_model``, TRL uses the base model with the
adapters disabled as the reference: no second copy of the weights, which is what a
4-bit run wants. The trainer's log history (loss, rewards/accuracies,
rewards/margins, logps/chosen|rejected) is saved for the report.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

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
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
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
    save_steps: int = 50  # optimizer steps between checkpoints (a killed run resumes from the last)
    seed: int = 0
    trust_remote_code: bool = False
    # Trainable LoRA weights while training. TRL casts them to bf16 over a 4-bit base, where
    # AdamW's steps at lr 5e-6 are below half a bf16 step of lora_A and round away.
    adapter_dtype: str = "float32"  # float32 | bfloat16

    def __post_init__(self):
        if self.adapter_dtype not in ADAPTER_DTYPES:
            raise ValueError(f"training.adapter_dtype = {self.adapter_dtype!r}; allowed: {', '.join(ADAPTER_DTYPES)}")


def precision(dtype: str) -> dict:
    """The trainer's mixed-precision flags for the machine's compute dtype (models.compute_dtype)."""
    return {"bf16": dtype == "bfloat16", "fp16": dtype == "float16"}


def dpo_config(cfg: TrainingConfig, output_dir: str, on_gpu: bool):
    from trl import DPOConfig

    from faithdpo.models import compute_dtype

    dtype = compute_dtype()

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
        use_cpu=not on_gpu,
        seed=cfg.seed,
        data_seed=cfg.seed,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        model_init_kwargs={"dtype": dtype, "use_safetensors": True,
                           "trust_remote_code": cfg.trust_remote_code},
    )


def last_checkpoint(directory: Path) -> Path | None:
    """The newest complete trainer checkpoint (its trainer_state.json, written last, parses)."""
    steps = sorted(directory.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]), reverse=True)
    for ckpt in steps:
        try:
            json.loads((ckpt / "trainer_state.json").read_text())
            return ckpt
        except (OSError, ValueError):
            continue
    return None


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


def build_trainer(cfg: TrainingConfig, df, model_dir: str, output_dir: str, on_gpu: bool):
    """TRL's DPOTrainer over ``df`` (prompt/chosen/rejected), adapter weights in ``cfg.adapter_dtype``."""
    import datasets
    from peft import LoraConfig
    from trl import DPOTrainer

    from faithdpo.models import load_tokenizer, nf4_config

    tokenizer = load_tokenizer(model_dir, padding_side="right")
    peft_config = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_target_modules),
        task_type="CAUSAL_LM",
    )
    trainer = DPOTrainer(
        model=model_dir,
        args=dpo_config(cfg, output_dir, on_gpu),
        train_dataset=datasets.Dataset.from_pandas(df[["prompt", "chosen", "rejected"]], preserve_index=False),
        processing_class=tokenizer,
        peft_config=peft_config,
        quantization_config=nf4_config() if cfg.quantization == "nf4" else None,
    )
    cast = set_adapter_dtype(trainer.model, cfg.adapter_dtype)
    log.info("adapter weights in %s (%d tensors cast back from TRL's choice)", cfg.adapter_dtype, cast)
    return trainer


def train_dpo(pairs: str, model_dir: str, adapter_dir: str, log_history: str, device: str = "cpu",
              rule: str = "train_dpo", **params) -> list[dict]:
    """Train a LoRA adapter with DPO on ``pairs`` (prompt/chosen/rejected); save it and the log.

    ``device: cuda`` stops at once without a CUDA device (models.require_device). Checkpoints
    go to a folder beside the adapter every ``save_steps`` steps; a rerun after a kill resumes
    from the last complete one (same inputs only) instead of step 0.
    """
    from faithdpo.models import check_model_dir, require_device

    on_gpu = require_device(device, rule) == "cuda"
    cfg = TrainingConfig(**params)
    check_model_dir(model_dir)
    df = read_parquet(pairs, ["prompt", "chosen", "rejected"])
    if df.empty:
        raise ValueError(f"{pairs} holds no preference pairs: every candidate had badness 0, nothing to train on")
    # The trainer's checkpoints, beside the adapter (see io.progress_dir).
    checkpoints = progress_dir(Path(adapter_dir).with_name(f".{Path(adapter_dir).name}.checkpoints"),
                               inputs_fingerprint([pairs], model_dir, asdict(cfg)))
    resume = last_checkpoint(checkpoints)
    trainer = build_trainer(cfg, df, model_dir, str(checkpoints), on_gpu)
    tokenizer = trainer.processing_class
    four_bit = sum(type(m).__module__.startswith("bitsandbytes") for m in trainer.model.modules())
    log.info("training on %d pairs; %d 4-bit linear layers; (trainable, all) parameters: %s",
             len(df), four_bit, trainer.model.get_nb_trainable_parameters())
    if resume:
        log.info("resuming from %s", resume)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    with atomic_path(adapter_dir) as tmp:
        trainer.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    history = trainer.state.log_history
    write_json(history, log_history)
    shutil.rmtree(checkpoints, ignore_errors=True)
    log.info("saved adapter to %s; final log entry: %s", adapter_dir, history[-1] if history else None)
    return history
