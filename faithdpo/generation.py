"""Generation stage: batched, sharded and resumable summary generation (Hugging Face or vLLM engine).

The batch plan is a pure function of the prompts and the settings: prompts sorted by token
length (longest first) and cut into batches under a row limit and a token budget. Shard s of
n runs batches s, s+n, s+2n, ... (round robin, so every shard gets long and short prompts),
and each batch seeds its sampling from the seed and its first article id. A batch therefore
gives the same summaries whichever shard runs it and whatever ran before it: merged shards
equal an unsharded run, and a run resumed after a kill equals one that was never killed.

Finished batches are kept in a progress folder beside the output (``.{output}.progress``)
until the output is written; a rerun with the same inputs picks them up.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from faithdpo.io import inputs_fingerprint, progress_dir, read_parquet, write_parquet

log = logging.getLogger(__name__)

OUTPUT_COLUMNS = ["id", "candidate", "summary", "prompt_tokens", "new_tokens"]
OUTPUT_TYPES = {"candidate": "int64", "prompt_tokens": "int64", "new_tokens": "int64"}
ENGINES = ("hf", "vllm")
DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding and batching settings; ``num_return_sequences`` > 1 needs ``do_sample``."""

    num_return_sequences: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    # Only the k most likely tokens are sampled; 0 = off. transformers applies 50 unless told
    # otherwise and vLLM none, so it is passed to both engines explicitly.
    top_k: int = 50
    max_new_tokens: int = 128
    batch_size: int = 8  # prompts per batch at most (HF engine)
    # vLLM batches by itself (up to max_num_seqs = 256 sequences at once by default): hand it
    # hundreds of prompts per call, or it idles between calls. Also the checkpoint unit.
    vllm_batch_size: int = 256
    # Padded tokens per batch at most: prompts x K x (longest prompt + max_new_tokens).
    max_batch_tokens: int | None = None
    seed: int = 0
    # A summary ends at the first of these (generation.stop_strings). [] = none; None = the prompt
    # format's: a blank line for a plain template, none with chat (see stop_strings_for).
    stop_strings: list[str] | None = None
    # prompt.chat: the prompts are a chat template's text; a reply also ends at the template's
    # end-of-turn token (faithdpo.chat), and stop_strings default to none.
    chat: bool = False
    engine: str = "hf"
    quantization: str = "none"  # none | nf4 (HF engine: 4-bit weights for a small GPU)
    # Weights and compute: None = the device's (bf16 on a GPU, fp32 on the CPU). Evaluation
    # uses float32 (generation.eval_dtype): the DPO model's merged float32 weights hold changes
    # that bf16 would round away.
    dtype: str | None = None
    trust_remote_code: bool = False

    @property
    def prompts_per_batch(self) -> int:
        """Prompts per batch of the plan: ``vllm_batch_size`` for vLLM, ``batch_size`` for HF."""
        return self.vllm_batch_size if self.engine == "vllm" else self.batch_size

    def __post_init__(self):
        if self.num_return_sequences > 1 and not self.do_sample:
            raise ValueError("generation: num_return_sequences > 1 needs sampling (do_sample: true)")
        if self.engine not in ENGINES:
            raise ValueError(f"generation.engine = {self.engine!r}; allowed: {', '.join(ENGINES)}")
        if self.dtype not in (None, *DTYPES):
            raise ValueError(f"generation dtype = {self.dtype!r}; allowed: {', '.join(DTYPES)}")
        object.__setattr__(self, "stop_strings", stop_strings_for(self.stop_strings, self.chat))


PLAIN_STOPS = ["\n\n"]


def stop_strings_for(stop_strings: Sequence[str] | None, chat: bool) -> list[str]:
    """The stop strings generation uses: ``stop_strings`` as configured, or by default (None) a blank
    line after a plain template and none with ``chat`` (a reply ends at its end-of-turn token).

    With ``chat`` a whitespace-only stop string is refused: a reply that opens "Here is a
    summary:\n\n" would be cut to its preamble, which states no fact and scores as clean.
    """
    if stop_strings is None:
        return [] if chat else list(PLAIN_STOPS)
    blank = [s for s in stop_strings if not s.strip()]
    if chat and blank:
        raise ValueError(
            f"generation.stop_strings = {list(stop_strings)!r} with prompt.chat: true: {blank[0]!r} is whitespace "
            "only, and a chat reply that opens with a line such as 'Here is a summary:' followed by it would be cut "
            "to that line. A chat reply ends at the template's end-of-turn token: set generation.stop_strings: "
            "null (none with chat), or stop strings with text in them."
        )
    return list(stop_strings)


def _first_stop(text: str, stop_strings: Sequence[str]) -> tuple[int, int]:
    """Where the first stop string starts and ends in ``text``; (len, len) when none occurs."""
    found = (len(text), len(text))
    for stop in stop_strings:
        pos = text.find(stop)
        if 0 <= pos < found[0]:
            found = (pos, pos + len(stop))
    return found


def cut_at_stop(text: str, stop_strings: Sequence[str]) -> str:
    """Cut ``text`` at the first stop string after its leading whitespace, and strip it.

    Both engines already end a row at its first stop (an opening stop leaves it empty); this cut
    also serves text generated without them. An empty summary is a failure (quality.is_failed),
    never a clean one.
    """
    text = text.lstrip()
    return text[: _first_stop(text, stop_strings)[0]].strip()


def tokens_to_stop(decode, seq: Sequence[int], stop_strings: Sequence[str]) -> int:
    """How many tokens of ``seq`` the summary took: up to the one that completes the first stop
    string (as ``cut_at_stop`` finds it), or all of them when none occurs."""
    text = decode(seq)
    lead = len(text) - len(text.lstrip())
    _, end = _first_stop(text[lead:], stop_strings)
    if lead + end >= len(text):
        return len(seq)
    low, high = 1, len(seq)  # the fewest tokens whose text reaches the stop's end
    while low < high:
        mid = (low + high) // 2
        if len(decode(seq[:mid])) >= lead + end:
            high = mid
        else:
            low = mid + 1
    return low


def batch_seed(seed: int, first_id: str) -> int:
    return int(hashlib.sha256(f"{seed}/{first_id}".encode()).hexdigest()[:8], 16)


def plan_batches(prompt_tokens: Sequence[int], batch_size: int, max_batch_tokens: int | None = None,
                 num_return_sequences: int = 1, max_new_tokens: int = 0) -> list[list[int]]:
    """Row positions of each batch: longest prompts first (ties in input order).

    A batch grows while it holds fewer than ``batch_size`` prompts and its padded size fits
    ``max_batch_tokens``; a single prompt over the budget still gets a batch of its own.
    """
    order = sorted(range(len(prompt_tokens)), key=lambda i: -int(prompt_tokens[i]))
    batches: list[list[int]] = []
    for i in order:
        if batches:
            batch = batches[-1]
            padded = (len(batch) + 1) * num_return_sequences * (int(prompt_tokens[batch[0]]) + max_new_tokens)
            if len(batch) < batch_size and (max_batch_tokens is None or padded <= max_batch_tokens):
                batch.append(i)
                continue
        batches.append([i])
    return batches


def parse_shard(item: str) -> tuple[int, int]:
    """Snakemake's scatter item "2-of-4" as (shard index 1, shards 4)."""
    match = re.fullmatch(r"(\d+)-of-(\d+)", item)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ValueError(f"shard {item!r} is not of the form 'i-of-n' with 1 <= i <= n")
    return int(match[1]) - 1, int(match[2])


def order_rows(rows: pd.DataFrame, ids: Sequence[str]) -> pd.DataFrame:
    """Rows in prompt order, then by candidate, with the output schema's types."""
    position = {pid: i for i, pid in enumerate(ids)}
    rows = rows.sort_values(["id", "candidate"], key=lambda s: s.map(position) if s.name == "id" else s,
                            kind="stable")
    return rows.reset_index(drop=True)[OUTPUT_COLUMNS].astype(OUTPUT_TYPES)


def hf_sampling(cfg: GenerationConfig) -> dict:
    """The decoding arguments of transformers' ``generate`` (top_k 0 is off there)."""
    if cfg.do_sample:
        return {"do_sample": True, "temperature": cfg.temperature, "top_p": cfg.top_p, "top_k": cfg.top_k}
    return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}


def vllm_sampling(cfg: GenerationConfig, prompt_id: str, stop_ids: Sequence[int] = ()) -> dict:
    """vLLM's ``SamplingParams`` for one prompt: the same distribution as ``hf_sampling``
    (top_k -1 is off in every vLLM version), seeded per prompt; ``stop_ids``: a chat template's
    end-of-turn token (vLLM stops at the EOS token by itself)."""
    return {"n": cfg.num_return_sequences, "temperature": cfg.temperature if cfg.do_sample else 0.0,
            "top_p": cfg.top_p if cfg.do_sample else 1.0,
            "top_k": cfg.top_k if cfg.do_sample and cfg.top_k > 0 else -1,
            "max_tokens": cfg.max_new_tokens, "seed": batch_seed(cfg.seed, prompt_id),
            "stop": list(cfg.stop_strings) or None, **({"stop_token_ids": list(stop_ids)} if stop_ids else {})}


def until_stop_token(seq: Sequence[int], stop_ids: Sequence[int]) -> list[int]:
    """The tokens of ``seq`` before its first stop token (EOS or a chat template's end of turn)."""
    ends = [seq.index(t) for t in stop_ids if t in seq]
    return list(seq[: min(ends)]) if ends else list(seq)


class Engine:
    """What the batch loop needs of an engine: ``count_tokens`` (for the plan) and ``generate``."""

    tokenizer = None

    def count_tokens(self, prompts: list[str]) -> list[int]:
        return [len(x) for x in self.tokenizer(prompts, add_special_tokens=False)["input_ids"]]


class HFEngine(Engine):
    """transformers ``generate``: left padding, K samples via ``num_return_sequences``.

    bf16 weights and SDPA attention on a GPU (see models.load_model), 4-bit NF4 on request.
    """

    def __init__(self, model_dir: str, config: GenerationConfig):
        from transformers import StoppingCriteriaList, StopStringCriteria

        from faithdpo.models import load_model, load_tokenizer

        self.config = config
        self.tokenizer = load_tokenizer(model_dir, padding_side="left")
        # A row ends at the EOS token and, for a chat prompt, at the template's end-of-turn token.
        self.stop_ids = [i for i in [self.tokenizer.eos_token_id] if i is not None]
        if config.chat:
            from faithdpo.chat import stop_token_ids

            self.stop_ids = stop_token_ids(self.tokenizer, model_dir)
        self.model = load_model(model_dir, trust_remote_code=config.trust_remote_code,
                                quantization=config.quantization, dtype=config.dtype)
        # A row stops at its first stop string. Built once per job: given stop_strings, generate
        # builds the criteria again at every call, reading and sorting the whole vocabulary
        # (~152k tokens for Qwen2.5).
        self.stops = ({"stopping_criteria": StoppingCriteriaList([StopStringCriteria(self.tokenizer,
                                                                                     list(config.stop_strings))])}
                      if config.stop_strings else {})

    def generate(self, ids: list[str], prompts: list[str]) -> list[dict]:
        import torch

        cfg, tok = self.config, self.tokenizer
        sampling = hf_sampling(cfg)
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        torch.manual_seed(batch_seed(cfg.seed, ids[0]))
        with torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=cfg.max_new_tokens,
                                      num_return_sequences=cfg.num_return_sequences,
                                      pad_token_id=tok.pad_token_id, eos_token_id=self.stop_ids,
                                      **sampling, **self.stops)
        width, k = enc["input_ids"].shape[1], cfg.num_return_sequences
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        decode = lambda seq: tok.decode(seq, skip_special_tokens=True)  # noqa: E731
        rows = []
        for j, seq in enumerate(out[:, width:].tolist()):
            seq = until_stop_token(seq, self.stop_ids)
            seq = [t for t in seq if t != tok.pad_token_id]
            rows.append({"id": ids[j // k], "candidate": j % k,
                         "summary": cut_at_stop(decode(seq), cfg.stop_strings),
                         "prompt_tokens": int(prompt_lens[j // k]),
                         "new_tokens": tokens_to_stop(decode, seq, cfg.stop_strings)})
        return rows


class VLLMEngine(Engine):
    """vLLM (an optional extra, GPU only), same outputs schema as the HF engine.

    Each prompt carries its own sampling seed, so outputs do not depend on batching;
    ``vllm_batch_size`` (hundreds) is the number of prompts handed to vLLM (and checkpointed)
    at once.
    Adapters are merged beforehand (rule merge_adapter): serving through LoRA would cost
    30-50% throughput and need ``max_lora_rank`` >= r (vLLM's default is 16).
    """

    def __init__(self, model_dir: str, config: GenerationConfig):
        try:
            from vllm import LLM
        except ImportError:
            raise RuntimeError(
                "generation.engine is 'vllm' but vLLM is not installed: `pip install 'faithdpo[vllm]'` "
                "on a CUDA machine, or set generation.engine: hf"
            ) from None
        from faithdpo.models import check_model_dir

        check_model_dir(model_dir)
        self.config = config
        from faithdpo.models import compute_dtype

        self.llm = LLM(model=model_dir, dtype=config.dtype or compute_dtype(), seed=config.seed,
                       trust_remote_code=config.trust_remote_code)
        self.tokenizer = self.llm.get_tokenizer()
        self.stop_ids = []
        if config.chat:
            from faithdpo.chat import stop_token_ids

            self.stop_ids = stop_token_ids(self.tokenizer, model_dir)

    def generate(self, ids: list[str], prompts: list[str]) -> list[dict]:
        from vllm import SamplingParams

        cfg = self.config
        params = [SamplingParams(**vllm_sampling(cfg, pid, self.stop_ids)) for pid in ids]
        outputs = self.llm.generate([{"prompt_token_ids": self.tokenizer(p, add_special_tokens=False)["input_ids"]}
                                     for p in prompts], params, use_tqdm=False)
        return [{"id": pid, "candidate": j, "summary": cut_at_stop(c.text, cfg.stop_strings),
                 "prompt_tokens": len(out.prompt_token_ids), "new_tokens": len(c.token_ids)}
                for pid, out in zip(ids, outputs) for j, c in enumerate(out.outputs)]


def load_engine(model_dir: str, config: GenerationConfig):
    return VLLMEngine(model_dir, config) if config.engine == "vllm" else HFEngine(model_dir, config)


class Progress:
    """The finished batches of one generation job, one parquet file each, in a folder
    stamped with the job's inputs (see io.progress_dir)."""

    def __init__(self, directory: str | Path, fingerprint: str):
        self.dir = progress_dir(directory, fingerprint)

    def _path(self, batch: int) -> Path:
        return self.dir / f"batch-{batch:06d}.parquet"

    def load(self, batches: Sequence[int]) -> dict[int, pd.DataFrame]:
        return {b: pd.read_parquet(self._path(b)) for b in batches if self._path(b).exists()}

    def save(self, batch: int, rows: pd.DataFrame) -> None:
        write_parquet(rows, self._path(batch))

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def generate_summaries(engine, prompts: pd.DataFrame, config: GenerationConfig, shard: tuple[int, int] = (0, 1),
                       progress: Progress | None = None) -> pd.DataFrame:
    """Summaries of this shard's batches of ``prompts`` (``id``, ``prompt``), in prompt order."""
    from tqdm.auto import tqdm

    ids, texts = [str(i) for i in prompts["id"]], list(prompts["prompt"])
    batches = plan_batches(engine.count_tokens(texts), config.prompts_per_batch, config.max_batch_tokens,
                           config.num_return_sequences, config.max_new_tokens)
    mine = list(range(shard[0], len(batches), shard[1]))
    done = progress.load(mine) if progress else {}
    todo = [b for b in mine if b not in done]
    total = sum(len(batches[b]) for b in mine)
    if done:
        log.info("resuming: %d of %d batches already done", len(done), len(mine))
    log.info("shard %d of %d: %d prompts in %d batches (%d to run)", shard[0] + 1, shard[1], total, len(mine),
             len(todo))
    new_tokens, started = 0, time.perf_counter()
    with tqdm(total=total, initial=total - sum(len(batches[b]) for b in todo), unit="prompt",
              desc="generate") as bar:
        for b in todo:
            rows = pd.DataFrame(engine.generate([ids[i] for i in batches[b]], [texts[i] for i in batches[b]]),
                                columns=OUTPUT_COLUMNS)
            if progress:
                progress.save(b, rows)
            done[b] = rows
            new_tokens += int(rows["new_tokens"].sum())
            rate = new_tokens / max(time.perf_counter() - started, 1e-9)
            bar.update(len(batches[b]))
            bar.set_postfix(tokens_per_s=f"{rate:.1f}")
            log.info("%d/%d batches, %.1f new tokens/s", len(done), len(mine), rate)
    rows = pd.concat([done[b] for b in mine], ignore_index=True) if mine else pd.DataFrame(columns=OUTPUT_COLUMNS)
    return order_rows(rows, ids)


def generate_file(prompts: str, model_dir: str, output: str, shard: str = "1-of-1", device: str = "cpu",
                  rule: str = "generate", **params) -> pd.DataFrame:
    """Generate one shard's summaries of a prompts parquet; write them, resuming earlier progress.

    ``device: cuda`` stops at once without a CUDA device (models.require_device)."""
    from faithdpo.models import require_device

    require_device(device, rule)
    config = GenerationConfig(**params)
    where = parse_shard(shard)
    prompts_df = read_parquet(prompts, ["id", "prompt"])
    out_path = Path(output)
    progress = Progress(out_path.with_name(f".{out_path.name}.progress"),
                        inputs_fingerprint([prompts], model_dir, [asdict(config), where]))
    out = generate_summaries(load_engine(model_dir, config), prompts_df, config, where, progress)
    write_parquet(out, output)
    progress.clear()
    log.info("wrote %d summaries to %s", len(out), output)
    return out


def merge_shards(prompts: str, shards: Sequence[str], output: str, num_return_sequences: int = 1) -> pd.DataFrame:
    """Concatenate shard outputs in prompt order, checking that every prompt has its K summaries."""
    ids = [str(i) for i in read_parquet(prompts, ["id"])["id"]]
    merged = order_rows(pd.concat([read_parquet(s, OUTPUT_COLUMNS) for s in shards], ignore_index=True), ids)
    counts = merged["id"].value_counts()
    wrong = [i for i in ids if counts.get(i, 0) != num_return_sequences]
    extra = sorted(set(counts.index) - set(ids))
    if wrong or extra:
        raise ValueError(
            f"shards {list(shards)} do not cover {prompts}: {len(wrong)} prompt(s) without exactly "
            f"{num_return_sequences} summaries (first: {wrong[:3]}), {len(extra)} unknown id(s) {extra[:3]}"
        )
    write_parquet(merged, output)
    log.info("merged %d shard(s) into %s: %d summaries", len(shards), output, len(merged))
    return merged
