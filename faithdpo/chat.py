"""Shared by the prompt, generation and training steps: an instruction-tuned model in its own
format (``prompt.chat: true``).

The prompt is the tokenizer's chat template rendered to text (``apply_chat_template(...,
tokenize=False, add_generation_prompt=True)``), the article in the user turn through
``prompt.template``. That text is the prompt everywhere: build_prompts writes it (its tokens
counted against the budget), generation tokenizes it as written, the pairs carry it, and
training hands it to TRL as a plain-text prompt. What the template adds around a reply is
handled here: the token that ends the assistant's turn (generation stops at it; training
appends it to both sides of a pair, so the model learns to stop), and a BOS token that the
template writes and the tokenizer would add again.

Heavy libraries are not imported here: the functions take a loaded tokenizer.
"""

from __future__ import annotations

# A reply text no template changes, to find what a template writes after a reply.
_REPLY = "FAITHDPO-REPLY-7f3a"


def require_chat_template(tokenizer, model: str) -> None:
    """Stop, naming ``model``, when its tokenizer has no chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"prompt.chat is true but the model {model} has no chat template (its tokenizer's chat_template is "
            "unset): a base model has no chat format. Set prompt.chat: false to use prompt.template as a plain "
            "prompt, or point model.name / model.path at the instruction-tuned model (docs/new-model.md)."
        )


def messages(user: str, system: str | None = None) -> list[dict]:
    """The conversation of one prompt: an optional system turn, then the user turn."""
    turns = [{"role": "system", "content": system}] if system else []
    return turns + [{"role": "user", "content": user}]


def render(tokenizer, user: str, system: str | None = None) -> str:
    """The prompt text: the conversation rendered by the model's chat template, ending where
    the assistant's reply starts (add_generation_prompt)."""
    return tokenizer.apply_chat_template(messages(user, system), tokenize=False, add_generation_prompt=True)


def end_of_turn(tokenizer, model: str) -> str:
    """The special token the chat template closes an assistant turn with (``<|im_end|>`` for
    Qwen's ChatML, ``<|eot_id|>`` for Llama 3, ``<end_of_turn>`` for Gemma), or the EOS token
    where the template writes nothing special after a reply."""
    require_chat_template(tokenizer, model)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": _REPLY}], tokenize=False)
    # a template that leaves the reply out of the text writes nothing after it that we could read
    after = text[text.rindex(_REPLY) + len(_REPLY):].lstrip() if _REPLY in text else ""
    specials = {str(t) for t in tokenizer.added_tokens_decoder.values() if t.special}
    for token in sorted(specials, key=len, reverse=True):  # the longest match: "<|im_end|>" over "<|im"
        if after.startswith(token):
            return token
    if tokenizer.eos_token:
        return tokenizer.eos_token
    raise ValueError(
        f"the chat template of {model} ends an assistant turn with {after[:40]!r}, no special token, and the "
        "tokenizer has no EOS token: generation would not know where a reply ends. Use prompt.chat: false."
    )


def stop_token_ids(tokenizer, model: str) -> list[int]:
    """The tokens a reply ends at: the EOS token and the template's end-of-turn token."""
    ids = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(end_of_turn(tokenizer, model))]
    return list(dict.fromkeys(i for i in ids if i is not None))


def without_added_bos(prompt: str, tokenizer) -> str:
    """``prompt`` without a leading BOS text when the tokenizer adds a BOS itself.

    A template such as Llama 3's writes ``<|begin_of_text|>`` into the text; generation tokenizes
    the text without special tokens, but TRL tokenizes a plain-text prompt with them and would
    start it with two BOS tokens. Stripped, TRL's tokens equal generation's.
    """
    bos = tokenizer.bos_token
    if bos and prompt.startswith(bos) and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]:
        return prompt[len(bos):]
    return prompt
