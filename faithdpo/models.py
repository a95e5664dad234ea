"""Shared by the model steps: the device, loading a model from safetensors, the hub download.

The steps that load a model or its tokenizer (prompts, generation, training, merge, the
checker) run this module. Any causal LM loads here from a safetensors directory, the real
Qwen2.5-1.5B and the demo's tiny Qwen2 (built by tiny_model.py) alike: only the directory
differs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from faithdpo.io import atomic_path

log = logging.getLogger(__name__)


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


# What to do when a weights directory is missing, and when it holds no safetensors, by what it holds.
_CHECKER_FIX = (
    "does not exist or holds no *.safetensors weights: with scoring.checker.source: hub run `snakemake "
    "download_checker`; with source: local set scoring.checker.path to a directory holding the checker's "
    "safetensors, config and tokenizer."
)
WEIGHTS_FIXES = {
    "model": (
        "does not exist; run `snakemake download_model` (real run) or the demo's build_tiny_model rule first.",
        "holds no *.safetensors weights (only safetensors are loaded); re-run `snakemake --forcerun download_model`.",
    ),
    "checker": (_CHECKER_FIX, _CHECKER_FIX),
}


def check_model_dir(path: str, kind: str = "model") -> None:
    """Fail with the fixing command when ``path`` holds no safetensors weights; ``kind``: "model"
    (the causal LM) or "checker" (the consistency checker, see checker.py)."""
    p = Path(path)
    missing, empty = WEIGHTS_FIXES[kind]
    if not p.is_dir():
        raise FileNotFoundError(f"{kind} directory {path} {missing}")
    if not any(p.glob("*.safetensors")):
        raise FileNotFoundError(f"{kind} directory {path} {empty}")


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


def linear_layers(model) -> dict[str, tuple[int, int]]:
    """Every linear layer of ``model`` by module name -> (out_features, in_features), in module
    order: torch's nn.Linear and its subclasses (bitsandbytes' Linear4bit among them, so a 4-bit
    model counts too) and transformers' Conv1D (GPT-2's, its weight stored transposed). For a
    plain model, not a PeftModel (whose LoRA matrices are linear layers too)."""
    import torch

    layers = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            layers[name] = (module.out_features, module.in_features)
        elif type(module).__name__ == "Conv1D" and hasattr(module, "nf"):
            layers[name] = (module.nf, module.weight.shape[0])
    return layers


def leaf_names(names) -> list[str]:
    """The last part of each dotted module name, once each, in first-seen order
    ("model.layers.0.self_attn.q_proj" -> "q_proj")."""
    return list(dict.fromkeys(name.rsplit(".", 1)[-1] for name in names))


def meta_model(path: str, trust_remote_code: bool = False):
    """The causal LM that ``path``'s config.json describes, built on the meta device: every layer
    with its shapes and no weights (no memory, under a second even for a 7B model)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)


def nf4_layer_shapes(model) -> dict[str, tuple[int, int]]:
    """The (out, in) of each layer a 4-bit load quantizes (every linear layer but the output
    embeddings, which transformers keeps unquantized), by leaf name where all the layers of that
    name share one shape (the decoder blocks' repeats), by full name otherwise."""
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    skipped = {name for name, module in model.named_modules() if output is not None and module is output}
    shapes = {name: shape for name, shape in linear_layers(model).items() if name not in skipped}
    by_leaf: dict[str, set] = {}
    for name, shape in shapes.items():
        by_leaf.setdefault(name.rsplit(".", 1)[-1], set()).add(shape)
    named = {}
    for name, shape in shapes.items():
        leaf = name.rsplit(".", 1)[-1]
        named.setdefault(leaf if len(by_leaf[leaf]) == 1 else name, shape)
    return named


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
