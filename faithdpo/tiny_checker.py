"""Demo only: the tiny checker, a MiniCheck-architecture classifier trained for the demo world.

Weights of a real checker cannot be downloaded here, so the demo's checker is a RoBERTa
sequence classifier (MiniCheck-RoBERTa's architecture, 170 thousand parameters) with a
byte-level BPE tokenizer, trained by :func:`build_tiny_checker` on claims about synthetic
stories (faithdpo.corpus, splits of their own). It is loaded through exactly the code that
loads the real checker (faithdpo.checker.load_checker).

Its claims (:func:`claim_examples`) come in minimal pairs: a highlight line of the story,
supported, and the same line made unsupported in one of three ways:

* ``invented``: a place, person, organisation or figure the article does not state, the kind
  regex + NER flag;
* ``swap``: the article's own names or figures in the wrong roles ("Ajax beat Bayern Munich"
  for "Bayern Munich beat Ajax", the analyst quoted as the chief executive, the displaced count
  as the death toll);
* ``negation``: the claim reversed ("Nobody died" for "At least 12 dead", "lost to" for "beat").

Regex + NER see only the first kind; :func:`heldout_accuracy` shows what each catches.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re

import pandas as pd

from faithdpo.corpus import CITIES, COUNTRIES, FIRST_NAMES, LAST_NAMES, TEAMS, generate_corpus
from faithdpo.io import atomic_path, write_json

log = logging.getLogger(__name__)

KINDS = ("supported", "invented", "swap", "negation")
# The held-out set's stories come from a split of their own: no story is in both sets.
TRAIN_SPLIT, HELDOUT_SPLIT = "checker-train", "checker-heldout"


def _lines(highlights: str) -> list[str]:
    return [line.strip() for line in highlights.split("\n") if line.strip()]


_PERSON = re.compile(r"\b(?:" + "|".join(FIRST_NAMES) + r") (?:" + "|".join(LAST_NAMES) + r")\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _swap(line: str, article: str, rng: random.Random) -> str | None:
    """The line with the article's own names or figures in the wrong roles, or None: the two
    sides of "X beat Y" exchanged, or a person or figure replaced by another one the article
    states (the analyst quoted as chief executive; the displaced count as the death toll)."""
    options = []
    if m := re.match(r"^(.+?) beat (.+?)( \d+-\d+| by \d+ votes| in .+)", line):
        options.append(f"{m.group(2)} beat {m.group(1)}{line[m.end(2):]}")
    for pattern in (_PERSON, _NUMBER):
        in_line = {m.group() for m in pattern.finditer(line)}
        others = sorted({m.group() for m in pattern.finditer(article)} - in_line)
        for old in sorted(in_line):
            for new in others:
                if pattern is _NUMBER and not re.search(r"(?<![\d.$])" + re.escape(old) + r"(?![\d.])", line):
                    continue
                options.append(re.sub(r"(?<![\d.])" + re.escape(old) + r"(?![\d.])", new, line, count=1))
    return rng.choice(options) if options else None


NEGATIONS = [
    (r"^At least \d+ dead after", "Nobody died after"),
    (r"^(.+?) beat (.+?) (\d+-\d+)", r"\1 lost to \2 \3"),
    (r"^(.+?) wins (.+?) presidential election", r"\1 loses \2 presidential election"),
    (r"^Daily walk cuts heart disease risk by \d+%", "Daily walk does not cut heart disease risk"),
    (r"^Sales rose", "Sales fell"),
    (r"^Company plans to hire", "Company has no plans to hire"),
    (r"praises the team", "criticises the team"),
    (r"^Rescuers search for survivors", "Rescuers stop searching for survivors"),
]


def _negate(line: str) -> str | None:
    for pattern, repl in NEGATIONS:
        if re.search(pattern, line):
            return re.sub(pattern, repl, line, count=1)
    return None


def _invent(line: str, article: str, rng: random.Random) -> str | None:
    """The line with one name or figure replaced by one the article does not state."""
    options = []
    for pool in (CITIES, COUNTRIES, TEAMS):
        options += [(name, pool) for name in pool if name in line]
    people = re.findall(r"\b(" + "|".join(FIRST_NAMES) + r") (" + "|".join(LAST_NAMES) + r")\b", line)
    options += [(" ".join(p), "person") for p in people]
    options += [(m.group(), "number") for m in _NUMBER.finditer(line)]
    if not options:
        return None
    old, pool = rng.choice(options)
    for _ in range(50):
        if pool == "person":
            new = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        elif pool == "number":
            new = str(int(float(old)) + rng.choice([-3, -2, -1, 1, 2, 3, 10, 20, 50])) if "." not in old else \
                f"{float(old) + rng.choice([0.3, 0.6, 1.2]):.1f}"
            if new.startswith("-") or new == "0":
                continue
        else:
            new = rng.choice(pool)
        if new != old and new not in article:
            return line.replace(old, new, 1)
    return None


def claim_examples(n_stories: int, split: str, seed: int) -> pd.DataFrame:
    """Claims about ``n_stories`` synthetic stories: ``article, claim, label, kind`` (label 1 =
    supported), two rows a story: a highlight line and the same line made unsupported, the kind
    taken in turn (invented, swap, negation; invented where the story's lines allow no other).
    Minimal pairs leave the model no cue but the change itself: trained on a supported line of
    one sentence and an unsupported claim about another, it learned the words of negation and
    little else (held-out balanced accuracy 0.50 to 0.69 in eight configurations, against 0.88
    on minimal pairs at 3,000 stories and 6 epochs)."""
    rng = random.Random(seed)
    stories = generate_corpus(n_stories, split, seed)
    rows = []
    wrong_kinds = ("invented", "swap", "negation")
    for i, (article, highlights) in enumerate(zip(stories["article"], stories["highlights"])):
        lines = _lines(highlights)
        kind = wrong_kinds[i % 3]
        make = {"invented": lambda l: _invent(l, article, rng), "swap": lambda l: _swap(l, article, rng),
                "negation": _negate}[kind]
        options = [(line, c) for line in lines for c in [make(line)] if c and c not in lines]
        if not options:  # this story's lines offer no such error: an invented detail instead
            kind = "invented"
            options = [(line, c) for line in lines for c in [_invent(line, article, rng)] if c]
        if options:  # a minimal pair: the line, and the same line made unsupported
            line, wrong = rng.choice(options)
            rows.append({"article": article, "claim": line, "label": 1, "kind": "supported"})
            rows.append({"article": article, "claim": wrong, "label": 0, "kind": kind})
    return pd.DataFrame(rows, columns=["article", "claim", "label", "kind"])


def roberta_tokenizer(texts: list[str], vocab_size: int):
    """RoBERTa's tokenizer, trained here: byte-level BPE with RoBERTa's special tokens (ids
    0-4 as in roberta-large) and its post-processor, ``<s> A </s> B </s>``."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import RobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(texts, vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    bpe.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False)
    return RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>",
                                sep_token="</s>", cls_token="<s>", unk_token="<unk>", pad_token="<pad>",
                                mask_token="<mask>", model_max_length=512)


def matching_init(model, scale: float = 2.0, position_scale: float = 0.3) -> None:
    """Start the first attention layer as a look-up: query and key projections a scaled
    identity, so that each token attends to its own copies from the first step, and weaker
    position embeddings, so that a copy is found wherever it stands.

    A real checker brings this matching from pre-training on a large corpus. A tiny one trained
    from random weights for a minute on claims learns the words of negation but never the
    look-up that names and figures need: a token-level "is this token in the document?" task
    stayed at chance loss (0.69) from a random start (600 steps at learning rate 1e-3, 1,500 at
    3e-4), and fell to 0.1 in 200 steps at 1e-3 from this one.
    """
    import torch

    attention = model.roberta.encoder.layer[0].attention.self
    hidden = attention.query.weight.shape[0]
    with torch.no_grad():
        for proj in (attention.query, attention.key):
            proj.weight.copy_(torch.eye(hidden) * scale)
            proj.bias.zero_()
        model.roberta.embeddings.position_embeddings.weight.mul_(position_scale)


def build_tiny_checker(output_dir: str, seed: int = 0, train_stories: int = 4000, heldout_stories: int = 600,
                       epochs: int = 8, learning_rate: float = 2e-3, vocab_size: int = 1024, hidden_size: int = 64,
                       num_layers: int = 2, num_heads: int = 4, intermediate_size: int = 128,
                       batch_size: int = 32) -> dict:
    """Train the demo's tiny checker on :func:`claim_examples` and write it with its tokenizer
    and ``training_info.json`` (held-out accuracy per kind, the checker's and regex + NER's).

    Two aids stand in for the pre-training a real checker has: :func:`matching_init`, and an
    auxiliary head trained beside the classifier to say, for each claim token, whether the
    document holds it (dense supervision for the look-up; dropped after training). At 3,000
    stories and 6 epochs, held-out balanced accuracy was 0.70 without the head and 0.88 with it;
    these defaults reach 0.909. No dropout: at this width it only slows the training down. About
    1.5 minutes on 2 cores.
    """
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification

    from faithdpo.checker import load_checker

    random.seed(seed)
    torch.manual_seed(seed)
    train = claim_examples(train_stories, TRAIN_SPLIT, seed)
    tokenizer = roberta_tokenizer(list(train["article"].drop_duplicates()) + list(train["claim"]), vocab_size)
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, intermediate_size=intermediate_size, max_position_embeddings=514,
        type_vocab_size=1, num_labels=2, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, id2label={0: "0", 1: "1"}, label2id={"0": 0, "1": 1},
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0,
    )
    model = RobertaForSequenceClassification(config)
    matching_init(model)
    # The auxiliary "presence" head: for each claim token, is it in the document? Dense
    # supervision for the look-up that the one-bit label alone does not teach; dropped after.
    presence_head = torch.nn.Linear(hidden_size, 2)
    texts = [tokenizer.eos_token.join([a, c]) for a, c in zip(train["article"], train["claim"])]
    labels = torch.tensor(train["label"].to_numpy())
    steps = epochs * math.ceil(len(texts) / batch_size)
    params = list(model.parameters()) + list(presence_head.parameters())
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps)
    model.train()
    losses, pair_order = [], list(range(0, len(texts), 2))
    for epoch in range(epochs):
        random.Random(seed + epoch).shuffle(pair_order)
        order = [j for p in pair_order for j in (p, p + 1)]
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer([texts[i] for i in idx], max_length=512, truncation=True, padding=True,
                            return_tensors="pt")
            out = model(**enc, labels=labels[idx], output_hidden_states=True)
            # the look-up is read one layer before the last, which gathers it into the label
            presence = _presence_labels(enc["input_ids"], tokenizer.eos_token_id)
            aux = torch.nn.functional.cross_entropy(presence_head(out.hidden_states[-2]).flatten(0, 1),
                                                    presence.flatten(), ignore_index=-100)
            (out.loss + aux).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(out.loss.item())
        log.info("tiny checker epoch %d: mean loss %.3f (presence %.3f)", epoch + 1,
                 sum(losses[-20:]) / len(losses[-20:]), aux.item())
    model.eval()
    with atomic_path(output_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        held = heldout_accuracy(load_checker(str(tmp)), heldout_stories, seed)
        info = {"parameters": sum(p.numel() for p in model.parameters()), "steps": steps,
                "first_loss": losses[0], "final_loss": sum(losses[-20:]) / len(losses[-20:]), "heldout": held}
        write_json(info, os.path.join(tmp, "training_info.json"))
    log.info("tiny checker written to %s: held-out accuracy %s", output_dir, held)
    return info


def _presence_labels(input_ids, eos_id: int):
    """Per token of ``<s> document </s> claim </s> <pad>...``: 1 where a claim token also occurs
    in the document, 0 where not, -100 (ignored) for every other position."""
    import torch

    eos = (input_ids == eos_id).cumsum(dim=1)
    position = torch.arange(input_ids.shape[1])
    document = (eos == 0) & (position > 0)
    claim = (eos == 1) & (input_ids != eos_id)
    same = input_ids.unsqueeze(2) == input_ids.unsqueeze(1)
    present = (same & document.unsqueeze(1)).any(dim=2)
    return torch.where(claim, present.long(), torch.full_like(input_ids, -100))


def _accuracy(predicted_supported, held: pd.DataFrame) -> dict:
    correct = pd.Series(predicted_supported == held["label"].astype(bool).to_numpy())
    by_kind = correct.groupby(held["kind"].to_numpy()).mean()
    out = {kind: round(float(by_kind[kind]), 4) for kind in KINDS if kind in by_kind}
    labels = held["label"].to_numpy()
    out["balanced"] = round(float((correct[labels == 1].mean() + correct[labels == 0].mean()) / 2), 4)
    return out


def heldout_accuracy(checker, n_stories: int, seed: int, batch_size: int = 64, threshold: float = 0.5,
                     spacy_model: str = "en_core_web_sm") -> dict:
    """Accuracy on the held-out claims, per kind and balanced over the two labels: the checker's
    (supported above ``threshold``) and regex + NER's beside it (supported when no entity or
    number of the claim is missing from the article)."""
    from faithdpo.checker import score_summaries
    from faithdpo.scoring import Scorer, ScoringConfig

    held = claim_examples(n_stories, HELDOUT_SPLIT, seed)
    support = score_summaries(checker, list(held["article"]), list(held["claim"]), batch_size)["support"]
    regex = Scorer(ScoringConfig(spacy_model=spacy_model)).score(
        pd.DataFrame({"summary": held["claim"], "article": held["article"], "highlights": ""}))
    clean = ((regex["ent_hallucinations"] == 0) & (regex["num_hallucinations"] == 0)).to_numpy()
    return {"claims": len(held), "checker": _accuracy(support.to_numpy() > threshold, held),
            "regex_ner": _accuracy(clean, held)}
