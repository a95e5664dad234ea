"""Pairs stage: token counts for CPU steps, without importing torch.

transformers imports torch when it loads a tokenizer (1-2 s and a few hundred MB in every
job); the `tokenizers` library reads the same ``tokenizer.json`` that transformers' fast
tokenizer wraps and encodes identically (tests/test_tokens.py checks it against
AutoTokenizer), so steps that only count tokens use it directly.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def load_text_tokenizer(model_dir: str):
    """The model's fast tokenizer from ``tokenizer.json``, with padding and truncation off."""
    from tokenizers import Tokenizer

    path = Path(model_dir) / "tokenizer.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: token counts need the model's fast tokenizer file. "
            "Save it with AutoTokenizer.from_pretrained(...).save_pretrained(model_dir)."
        )
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def count_tokens(texts: pd.Series, tokenizer) -> pd.Series:
    """Token count of each text, without special tokens: what a completion adds to a sequence."""
    if texts.empty:
        return pd.Series([], dtype="int64")
    encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    return pd.Series([len(e.ids) for e in encodings], index=texts.index, dtype="int64")
