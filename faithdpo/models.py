"""Model loading, hub download, and the demo's tiny Qwen2 built from scratch.

The demo model goes through the very same ``from_pretrained(path)`` code as
Qwen2.5-1.5B: only the directory differs.
"""

from __future__ import annotations

import logging
import math
import os
import random
from pathlib import Path

from faithdpo.io import atomic_path, read_parquet, write_json

log = logging.getLogger(__name__)

EOS = "<|endoftext|>"


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


DEVICES = ("cuda", "cpu")


def require_device(requested: str, rule: str) -> str:
    """The device a GPU rule's job runs on; with ``device: cuda`` (the real run) and no CUDA
    device found, stop at once, naming the rule, the torch build and the fixes: a CPU-only
    torch in a cluster job would otherwise train in fp32 on the CPU until the time limit.
    ``device: cpu`` declares a CPU run (the demo): the job uses a GPU only if it finds one."""
    import torch

    if requested not in DEVICES:
        raise ValueError(f"device = {requested!r}; allowed: {', '.join(DEVICES)}")
    found = device()
    if requested == "cuda" and found != "cuda":
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only"
        raise RuntimeError(
            f"rule {rule}: the config says device: cuda, but this job finds no CUDA device (torch "
            f"{torch.__version__}, a {build} build; CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}). "
            "Run it on a GPU node (the SLURM profile's GPU partition), install a CUDA build of torch "
            "there, or set `device: cpu` in the config to run on the CPU on purpose (slow: the demo does)."
        )
    log.info("rule %s runs on %s (config device: %s)", rule, found, requested)
    return found


def compute_dtype() -> str:
    """The half precision of this machine: bf16 where the GPU supports it, else fp16 (said in
    the log); fp32 on the CPU."""
    import torch

    if device() != "cuda":
        return "float32"
    if torch.cuda.is_bf16_supported():
        return "bfloat16"
    log.warning("%s does not support bf16: computing in fp16 instead", torch.cuda.get_device_name())
    return "float16"


def hub_model_dir(repo_id: str, root: str = "resources/models") -> str:
    """Where download_model puts a hub model: one folder per repo, "org--name"."""
    return os.path.join(root, repo_id.replace("/", "--"))


def check_model_dir(path: str) -> None:
    """Fail with the fixing command when ``path`` holds no safetensors weights."""
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(
            f"model directory {path} does not exist; run `snakemake download_model` "
            "(real run) or the demo's build_tiny_model rule first."
        )
    if not any(p.glob("*.safetensors")):
        raise FileNotFoundError(
            f"model directory {path} holds no *.safetensors weights (only safetensors are loaded); "
            "re-run `snakemake --forcerun download_model`."
        )


def load_tokenizer(path: str, padding_side: str = "left"):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, padding_side=padding_side)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str, trust_remote_code: bool = False, quantization: str = "none", dtype: str | None = None):
    """Load a causal LM for inference from safetensors: ``dtype`` ("float32", "bfloat16"), or
    by default the machine's (``compute_dtype``: bf16 or fp16 on a GPU, fp32 on the CPU)."""
    import torch
    from transformers import AutoModelForCausalLM

    check_model_dir(path)
    kwargs = {"use_safetensors": True, "trust_remote_code": trust_remote_code}
    kwargs["dtype"] = getattr(torch, dtype or compute_dtype())
    if device() == "cuda":
        kwargs.update(attn_implementation="sdpa", device_map="cuda")
    if quantization == "nf4":
        kwargs["quantization_config"] = nf4_config()
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if quantization == "nf4" and device() == "cpu":
        check_nf4_shapes(model, path)
    model.eval()
    return model


# bitsandbytes' 4-bit inference kernel for CPUs with AVX-512 BF16 repacks each weight in
# blocks: it needs in_features divisible by the quantization block (64) and out_features by
# 32, and fails deep inside bitsandbytes otherwise. Other CPUs and GPUs accept any size.
NF4_CPU_IN_MULTIPLE, NF4_CPU_OUT_MULTIPLE = 64, 32


def nf4_shape_problems(linear_shapes: dict[str, tuple[int, int]]) -> list[str]:
    """The layers (name -> (out_features, in_features)) that 4-bit CPU inference cannot run."""
    return [f"{name} ({out} x {inp})" for name, (out, inp) in linear_shapes.items()
            if inp % NF4_CPU_IN_MULTIPLE or out % NF4_CPU_OUT_MULTIPLE]


def qwen2_linear_shapes(hidden_size: int, intermediate_size: int, num_heads: int, num_kv_heads: int,
                        **_) -> dict[str, tuple[int, int]]:
    """(out, in) of each linear layer of a Qwen2 decoder block, as quantized to 4 bits."""
    head_dim = hidden_size // num_heads
    return {"q_proj": (hidden_size, hidden_size), "k_proj": (num_kv_heads * head_dim, hidden_size),
            "v_proj": (num_kv_heads * head_dim, hidden_size), "o_proj": (hidden_size, hidden_size),
            "gate_proj": (intermediate_size, hidden_size), "up_proj": (intermediate_size, hidden_size),
            "down_proj": (hidden_size, intermediate_size)}


def check_nf4_shapes(model, where: str) -> None:
    """Refuse, with the layers named, a 4-bit model whose layer sizes the CPU kernel cannot run."""
    shapes = {name: (m.out_features, m.in_features) for name, m in model.named_modules()
              if type(m).__name__ == "Linear4bit"}
    problems = nf4_shape_problems(shapes)
    if problems:
        raise ValueError(
            f"{where}: 4-bit NF4 on the CPU needs every quantized layer's input size to be a multiple of "
            f"{NF4_CPU_IN_MULTIPLE} and its output size a multiple of {NF4_CPU_OUT_MULTIPLE}; "
            f"{len(problems)} layer(s) are not (first: {', '.join(problems[:3])}). Use quantization: none, "
            "a GPU, or a model with such sizes (hidden_size and intermediate_size multiples of 64)."
        )


def nf4_config(quant_storage: str | None = None):
    """4-bit NF4 with double quantisation (QLoRA's recipe); bf16 (or fp16) compute on a GPU.

    ``quant_storage``: the dtype the packed 4-bit weights are stored in (bitsandbytes: uint8);
    FSDP and DeepSpeed ZeRO-3 need the compute dtype to shard them (training.quant_storage).
    """
    import torch
    from transformers import BitsAndBytesConfig

    storage = {"bnb_4bit_quant_storage": getattr(torch, quant_storage)} if quant_storage else {}
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=getattr(torch, compute_dtype()),
        **storage,
    )


def download_model(output_dir: str, repo_id: str, revision: str | None) -> None:
    """Snapshot a hub model (safetensors, config and tokenizer files only) into ``output_dir``."""
    from huggingface_hub import snapshot_download

    with atomic_path(output_dir) as tmp:
        try:
            snapshot_download(
                repo_id,
                revision=revision,
                local_dir=tmp,
                allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"],
            )
        except Exception as exc:
            raise RuntimeError(
                f"could not download model {repo_id!r} (revision {revision!r}) from the hub: {exc}. "
                "Check the network, `model.name`/`model.revision`, and HF_TOKEN for gated models."
            ) from exc
        check_model_dir(str(tmp))
    log.info("downloaded %s@%s to %s", repo_id, revision, output_dir)


def _train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE trained on ``texts`` with Qwen2's own normalizer and pre-tokenizer.

    ``from_pretrained`` loads a qwen2 model's tokenizer as ``Qwen2Tokenizer``, which
    re-creates Qwen2's pre-tokenizer (digits one by one) whatever the saved file says. The
    BPE is trained, and the model then trained, with that very pipeline, so that the model
    sees the same tokens in training as every later step feeds it.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS)


ALPHABET = 12  # tokens per copy warm-up sequence


def copy_warmup(model, vocab_size: int, steps: int, batch_size: int, learning_rate: float, seed: int,
                length: int = 24) -> list[float]:
    """Teach a fresh model to copy before it reads news: ``steps`` steps on random token
    sequences shown twice, the loss on the repeat.

    Real LMs learn to copy from the source (induction heads) over billions of tokens; a tiny
    model trained for minutes on news learns it late or not at all, and without it cannot
    tell the article's figures and names from invented ones. This task teaches the copying
    in a few hundred steps (loss ~7 -> <0.01 here), and the news training builds on it.
    """
    import torch

    if steps <= 0:
        return []
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    losses = []
    for _ in range(steps):
        # Each sequence draws from its own small alphabet, so that a token recurs within it and
        # the copy must follow two or more tokens of context, as a figure's digits do in news.
        alphabets = torch.randint(1, vocab_size, (batch_size, ALPHABET), generator=generator)
        picks = torch.randint(0, ALPHABET, (batch_size, length), generator=generator)
        first = torch.gather(alphabets, 1, picks)
        ids = torch.cat([first, first], dim=1)
        labels = ids.clone()
        labels[:, : length + 1] = -100  # the first copy is unpredictable; its repeat is not
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    log.info("copy warm-up: %d steps, loss %.3f -> %.3f", steps, losses[0], sum(losses[-10:]) / 10)
    return losses


def build_tiny_model(
    corpus: str,
    output_dir: str,
    template: str,
    seed: int = 0,
    vocab_size: int = 2048,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 192,
    epochs: int = 12,
    batch_size: int = 16,
    learning_rate: float = 5e-3,
    max_length: int = 512,
    copy_warmup_steps: int = 1000,
) -> dict:
    """Build the demo's tiny Qwen2: BPE tokenizer and random weights, briefly trained.

    A copy warm-up (``copy_warmup``), then "prompt + highlights" of the synthetic pretrain
    split (disjoint from the train and validation samples), the loss on the highlights
    only. The model copies what the article states and, where the article leaves out a
    place or a figure, invents one about as often as the pretrain highlights did
    (corpus.PRETRAIN_EXTRINSIC): readable news summaries with hallucinations to remove.
    Defaults match ``model.tiny`` in the config schema: 12 epochs of 6,000 stories, about
    4 minutes on 2 cores; the loss on the highlights falls to ~0.08, the floor that the
    invented details leave.
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    random.seed(seed)
    torch.manual_seed(seed)
    df = read_parquet(corpus, ["article", "highlights"])
    tokenizer = _train_tokenizer(list(df["article"]) + list(df["highlights"]), vocab_size)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max(2048, max_length),
        tie_word_embeddings=True,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    n_params = sum(p.numel() for p in model.parameters())
    # The loss covers the summary only: the model must learn to copy entities and
    # numbers from the article, which is what the hallucination scores then measure.
    examples = []
    for article, highlights in zip(df["article"], df["highlights"]):
        prompt = tokenizer(template.replace("{article}", article), add_special_tokens=False)["input_ids"]
        summary = tokenizer(" " + highlights + EOS, add_special_tokens=False)["input_ids"]
        ids = (prompt + summary)[:max_length]
        examples.append((ids, len(prompt)))
    model.train()
    copy_warmup(model, len(tokenizer), copy_warmup_steps, batch_size, learning_rate, seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    steps = epochs * math.ceil(len(examples) / batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps)
    model.train()
    losses = []
    order = list(range(len(examples)))
    for epoch in range(epochs):
        random.Random(seed + epoch).shuffle(order)
        for start in range(0, len(order), batch_size):
            batch = [examples[i] for i in order[start : start + batch_size]]
            width = max(len(seq) for seq, _ in batch)
            ids = torch.full((len(batch), width), tokenizer.pad_token_id)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            labels = torch.full((len(batch), width), -100)
            for row, (seq, prompt_len) in enumerate(batch):
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
                labels[row, prompt_len : len(seq)] = ids[row, prompt_len : len(seq)]
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        log.info("tiny model epoch %d: mean loss %.3f", epoch + 1, sum(losses[-10:]) / len(losses[-10:]))
    model.eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    with atomic_path(output_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        info = {"parameters": n_params, "steps": steps, "first_loss": losses[0], "final_loss": losses[-1]}
        write_json(info, os.path.join(tmp, "training_info.json"))
    log.info("tiny Qwen2 with %d parameters written to %s", n_params, output_dir)
    return info
