"""Demo only: the demo's tiny Qwen2, built from scratch (rule build_tiny_model).

A byte-level BPE tokenizer and random weights, taught to copy (``copy_warmup``), then
trained briefly on the synthetic pretrain split. It is saved as safetensors with its
tokenizer, so every later step loads it through models.load_model, the very
``from_pretrained(path)`` code as Qwen2.5-1.5B: only the directory differs. Apart from
models.py so that editing the demo's builder reruns no step of a real run.
"""

from __future__ import annotations

import logging
import math
import os
import random

from faithdpo.io import atomic_path, read_parquet, write_json

log = logging.getLogger(__name__)

EOS = "<|endoftext|>"


def qwen2_linear_shapes(hidden_size: int, intermediate_size: int, num_heads: int, num_kv_heads: int,
                        **_) -> dict[str, tuple[int, int]]:
    """(out, in) of each linear layer of a Qwen2 decoder block, as quantized to 4 bits: what
    config_check holds ``model.tiny`` against (models.nf4_shape_problems) for 4-bit generation."""
    head_dim = hidden_size // num_heads
    return {"q_proj": (hidden_size, hidden_size), "k_proj": (num_kv_heads * head_dim, hidden_size),
            "v_proj": (num_kv_heads * head_dim, hidden_size), "o_proj": (hidden_size, hidden_size),
            "gate_proj": (intermediate_size, hidden_size), "up_proj": (intermediate_size, hidden_size),
            "down_proj": (hidden_size, intermediate_size)}


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
