"""Demo only: demo/tiny-qwen2-chat, the demo's tiny Qwen2 with a chat template (prompt.chat).

The tiny model was never trained on chat turns, and retraining it for a mechanics test would
be a second model to keep. This folder is the same model: its config and weights are links to
demo/tiny-qwen2's files, and only the tokenizer differs. Its end-of-text token (id 0) is renamed
``<|im_end|>`` and made the EOS token, and a ChatML template is set (as Qwen2.5-Instruct's,
without a default system turn). So the model ends its turn with ``<|im_end|>`` exactly where it
learned to end a summary. ``<|im_start|>`` is written as text: the vocabulary has no room for
a new token without new embedding rows. The replies are poor (the model reads the turn markers
as unfamiliar text); the chat run tests the mechanics, not the model.

Regenerate with ``python -m faithdpo.tiny_chat`` (tests/test_chat.py checks the committed folder).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

BASE = "demo/tiny-qwen2"
OUTPUT = "demo/tiny-qwen2-chat"
END_OF_TEXT, END_OF_TURN = "<|endoftext|>", "<|im_end|>"
LINKED = ("config.json", "generation_config.json", "model.safetensors")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def chat_tokenizer_files(base_dir: str | Path) -> dict[str, str]:
    """The chat variant's tokenizer files (name -> text) made from ``base_dir``'s."""
    base_dir = Path(base_dir)
    tok = json.loads((base_dir / "tokenizer.json").read_text())
    added = [t for t in tok["added_tokens"] if t["content"] == END_OF_TEXT]
    vocab = tok["model"]["vocab"]
    if len(added) != 1 or END_OF_TEXT not in vocab:
        raise ValueError(f"{base_dir}/tokenizer.json has no single {END_OF_TEXT} token to rename")
    added[0]["content"] = END_OF_TURN
    vocab[END_OF_TURN] = vocab.pop(END_OF_TEXT)
    config = json.loads((base_dir / "tokenizer_config.json").read_text())
    config.update(eos_token=END_OF_TURN, pad_token=END_OF_TURN, chat_template=CHAT_TEMPLATE)
    return {"tokenizer.json": json.dumps(tok, ensure_ascii=False, indent=2) + "\n",
            "tokenizer_config.json": json.dumps(config, ensure_ascii=False, indent=2) + "\n"}


def build_chat_variant(base_dir: str | Path = BASE, output_dir: str | Path = OUTPUT) -> None:
    """Write ``output_dir``: links to ``base_dir``'s config and weights, the chat tokenizer files."""
    base_dir, output_dir = Path(base_dir), Path(output_dir)
    files = chat_tokenizer_files(base_dir)
    shutil.rmtree(output_dir, ignore_errors=True)
    output_dir.mkdir(parents=True)
    for name in LINKED:
        os.symlink(os.path.relpath(base_dir / name, output_dir), output_dir / name)
    for name, text in files.items():
        (output_dir / name).write_text(text)


if __name__ == "__main__":
    build_chat_variant()
    print(f"wrote {OUTPUT}")
