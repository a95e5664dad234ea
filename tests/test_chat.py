"""An instruction-tuned model in its own format (prompt.chat): the rendered chat template is the
prompt of every step, its tokens count in the budget, a reply ends at the end-of-turn token,
and both sides of a pair end with it in training. The chat demo (config/demo-chat.yaml) runs the
whole workflow that way (-m demo)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import TEMPLATE
from faithdpo import chat
from faithdpo.corpus import generate_corpus
from faithdpo.generation import GenerationConfig, cut_at_stop, stop_strings_for, until_stop_token, vllm_sampling
from faithdpo.io import write_parquet
from faithdpo.pairs import build_pairs, completion
from faithdpo.prompts import PromptBuilder, build_prompts
from workflow_helpers import REPO, copy_workflow, demo_config, merge_config, snakemake

BASE = str(REPO / "demo" / "tiny-qwen2")
CHAT_MODEL = str(REPO / "demo" / "tiny-qwen2-chat")
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
ARTICLE = ("Mayor Anna Berg of Tromso opened the new bridge on Monday . The bridge cost 40 million kroner "
           "and took 3 years to build . ") * 12


@pytest.fixture(scope="module")
def chatml_tokenizer():
    """The demo's tokenizer with ChatML's two special tokens added and a ChatML template: the
    end-of-turn token <|im_end|> is not its EOS token (<|endoftext|>), as in many chat models."""
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(BASE)
    tok.add_tokens([AddedToken("<|im_start|>", special=True), AddedToken("<|im_end|>", special=True)],
                   special_tokens=True)
    tok.chat_template = CHATML
    assert tok.convert_tokens_to_ids("<|im_end|>") not in (None, tok.eos_token_id)
    return tok


def test_the_prompt_is_the_rendered_chat_template(chatml_tokenizer):
    tok = chatml_tokenizer
    row = PromptBuilder(tok, TEMPLATE, 384, chat=True).build("The mayor opened a bridge .")
    user = TEMPLATE.replace("{article}", "The mayor opened a bridge .")
    assert row["prompt"] == tok.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                                    add_generation_prompt=True)
    assert row["prompt"] == f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    assert row["prompt_tokens"] == len(tok(row["prompt"], add_special_tokens=False)["input_ids"])
    system = PromptBuilder(tok, TEMPLATE, 384, chat=True, system="Be exact.").build("A bridge .")["prompt"]
    assert system.startswith("<|im_start|>system\nBe exact.<|im_end|>\n<|im_start|>user\n")
    # chat off: the template alone, as before
    assert PromptBuilder(tok, TEMPLATE, 384).build("A bridge .")["prompt"] == TEMPLATE.replace("{article}", "A bridge .")


def test_the_budget_counts_the_chat_templates_tokens(chatml_tokenizer):
    tok = chatml_tokenizer
    plain, chatted = PromptBuilder(tok, TEMPLATE, 200), PromptBuilder(tok, TEMPLATE, 200, chat=True)
    markers = len(tok(chat.render(tok, ""), add_special_tokens=False)["input_ids"])  # the turns' tokens alone
    assert markers > 10 and plain.article_budget - chatted.article_budget == markers
    for builder in (plain, chatted):
        row = builder.build(ARTICLE)
        assert row["truncated"] and 195 <= row["prompt_tokens"] <= 200
        assert row["prompt_tokens"] == len(tok(row["prompt"], add_special_tokens=False)["input_ids"])
    assert len(chatted.build(ARTICLE)["article"]) < len(plain.build(ARTICLE)["article"])
    with pytest.raises(ValueError, match="leaves no room for the article"):
        PromptBuilder(tok, TEMPLATE, markers, chat=True)


def test_a_model_without_a_chat_template_stops_build_prompts_naming_it(tmp_path):
    data = tmp_path / "data.parquet"
    write_parquet(pd.DataFrame({"id": ["a"], "article": ["A bridge ."]}), data)
    with pytest.raises(ValueError, match=r"prompt\.chat is true but the model .*demo/tiny-qwen2 has no chat template"):
        build_prompts(str(data), BASE, str(tmp_path / "p.parquet"), TEMPLATE, 384, chat=True)
    assert not (tmp_path / "p.parquet").exists()
    out = build_prompts(str(data), CHAT_MODEL, str(tmp_path / "p.parquet"), TEMPLATE, 384, chat=True)
    assert out["prompt"][0].startswith("<|im_start|>user\n") and out["prompt"][0].endswith("<|im_start|>assistant\n")


def test_the_end_of_turn_token_is_read_from_the_template(chatml_tokenizer):
    tok = chatml_tokenizer
    assert chat.end_of_turn(tok, "m") == "<|im_end|>"
    assert chat.stop_token_ids(tok, "m") == [tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")]
    from transformers import AutoTokenizer

    demo = AutoTokenizer.from_pretrained(CHAT_MODEL)  # the demo's: its end-of-turn token is its EOS token
    assert chat.end_of_turn(demo, CHAT_MODEL) == demo.eos_token == "<|im_end|>"
    assert chat.stop_token_ids(demo, CHAT_MODEL) == [demo.eos_token_id]
    plain = AutoTokenizer.from_pretrained(BASE)  # a template that writes nothing special: the EOS token
    plain.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    assert chat.end_of_turn(plain, "m") == plain.eos_token
    plain.chat_template = None
    with pytest.raises(ValueError, match="the model my/base has no chat template"):
        chat.end_of_turn(plain, "my/base")


def test_chat_replies_are_not_cut_at_a_blank_line_and_the_wrong_stop_strings_are_refused():
    assert GenerationConfig().stop_strings == ["\n\n"]
    assert GenerationConfig(chat=True).stop_strings == []
    reply = "Here is a summary:\n\nMayor Anna Berg opened the bridge ."
    assert cut_at_stop(reply, GenerationConfig(chat=True).stop_strings) == reply
    assert cut_at_stop(reply, GenerationConfig().stop_strings) == "Here is a summary:"
    for blank in (["\n\n"], ["\n"], ["Article:", " \n "]):
        with pytest.raises(ValueError, match=r"generation\.stop_strings = .* with prompt\.chat: true: .* whitespace"):
            GenerationConfig(chat=True, stop_strings=blank)
    assert stop_strings_for(["\n\nArticle:"], True) == ["\n\nArticle:"]
    assert stop_strings_for([], False) == [] and stop_strings_for(["\n"], False) == ["\n"]


def test_generation_ends_a_row_at_its_first_stop_token():
    assert until_stop_token([5, 6, 9, 7, 0, 8], [0, 9]) == [5, 6]
    assert until_stop_token([5, 6], [0, 9]) == [5, 6]
    cfg = GenerationConfig(chat=True)
    assert vllm_sampling(cfg, "a", [7])["stop_token_ids"] == [7] and vllm_sampling(cfg, "a")["stop"] is None
    assert "stop_token_ids" not in vllm_sampling(GenerationConfig(), "a")


def chat_config_with(override: dict) -> dict:
    from snakemake.utils import validate

    cfg = merge_config(demo_config("config/demo-chat.yaml"), override)
    validate(cfg, str(REPO / "workflow/schemas/config.schema.yaml"), set_default=True)
    return cfg


@pytest.mark.parametrize("override, message", [
    ({"generation": {"stop_strings": ["\n\n"]}}, r"generation\.stop_strings = \['\\n\\n'\] with prompt\.chat: true"),
    ({"prompt": {"chat": False, "system": "Be exact."}}, r"prompt\.system is set but prompt\.chat is false"),
])
def test_the_config_check_refuses_a_wrong_chat_combination(override, message, monkeypatch):
    from faithdpo.config_check import check_config

    monkeypatch.chdir(REPO)
    schema = REPO / "workflow/schemas/config.schema.yaml"
    check_config(chat_config_with({}), schema)  # the chat demo's config passes
    check_config(chat_config_with({"prompt": {"system": "Be exact."}}), schema)
    with pytest.raises(ValueError, match=message):
        check_config(chat_config_with(override), schema)


def test_the_real_config_with_chat_on_needs_no_other_change():
    """config/config.yaml leaves generation.stop_strings to the prompt format: turning chat on
    there gives replies no stop string, and a plain run keeps its blank line."""
    cfg = demo_config("config/config.yaml")
    assert cfg["generation"]["stop_strings"] is None and not cfg["prompt"]["chat"]
    assert stop_strings_for(cfg["generation"]["stop_strings"], False) == ["\n\n"]
    assert stop_strings_for(cfg["generation"]["stop_strings"], True) == []


def test_chat_pairs_are_completions_of_the_prompt_without_a_leading_space():
    scores = pd.DataFrame({"id": ["x", "x"], "candidate": [0, 1], "summary": [" x0 ", "x1 bad"], "badness": [0, 2]})
    prompts = pd.DataFrame({"id": ["x"], "prompt": ["<|im_start|>user\nPx<|im_end|>\n<|im_start|>assistant\n"],
                            "article": ["ax"]})
    data = pd.DataFrame({"id": ["x"], "article": ["ax"], "highlights": ["hx"]})
    pairs = build_pairs("best_vs_worst", scores, prompts, data, chat=True)
    assert list(pairs["prompt"]) == list(prompts["prompt"])
    assert list(pairs["chosen"]) == ["x0"] and list(pairs["rejected"]) == ["x1 bad"]
    assert completion(" x ") == " x" and completion(" x ", chat=True) == "x"


class FakeTokenizer:
    """A tokenizer that adds a BOS (as Llama 3's does), or not."""

    def __init__(self, adds_bos: bool):
        self.bos_token, self.bos_token_id, self.adds_bos = "<s>", 1, adds_bos

    def __call__(self, text):
        return {"input_ids": ([1] if self.adds_bos else []) + [5] * len(text)}


def test_a_bos_the_template_writes_is_not_added_twice_in_training():
    assert chat.without_added_bos("<s>[user] hi", FakeTokenizer(True)) == "[user] hi"
    assert chat.without_added_bos("<s>[user] hi", FakeTokenizer(False)) == "<s>[user] hi"
    assert chat.without_added_bos("[user] hi", FakeTokenizer(True)) == "[user] hi"


def test_trl_trains_on_the_prompt_files_tokens_and_both_sides_end_their_turn(tmp_path):
    """What TRL tokenizes in a chat run: the prompt exactly as generation fed it, each side
    followed by <|im_end|> once (the demo chat model's EOS token too, so TRL adds no second)."""
    from faithdpo.models import load_tokenizer
    from faithdpo.training import TrainingConfig, build_trainer, chat_pairs

    tok = load_tokenizer(CHAT_MODEL)
    prompt = chat.render(tok, TEMPLATE.replace("{article}", "Mayor Anna Berg opened the bridge ."))
    df = pd.DataFrame({"prompt": [prompt] * 4, "chosen": ["Anna Berg opened the bridge ."] * 4,
                       "rejected": ["Olaf Lund opened the bridge in 1999 ."] * 4})
    trained = chat_pairs(df, CHAT_MODEL)
    assert list(trained["prompt"]) == list(df["prompt"])
    assert (trained["chosen"] == df["chosen"] + "<|im_end|>").all()
    assert (trained["rejected"] == df["rejected"] + "<|im_end|>").all()
    cfg = TrainingConfig(quantization="none", per_device_train_batch_size=2, gradient_accumulation_steps=1,
                         max_length=256, lora_target_modules=["q_proj", "v_proj"])
    row = build_trainer(cfg, trained, CHAT_MODEL, str(tmp_path / "out"), on_gpu=False).train_dataset[0]
    end = tok.convert_tokens_to_ids("<|im_end|>")
    assert row["prompt_ids"] == tok(prompt, add_special_tokens=False)["input_ids"]
    for side, text in (("chosen_ids", df["chosen"][0]), ("rejected_ids", df["rejected"][0])):
        assert row[side][-1] == end and row[side].count(end) == 1
        assert tok.decode(row[side][:-1]) == text


@pytest.mark.slow  # generates with the demo's model
def test_generation_stops_at_the_end_of_turn_token_even_where_it_is_not_eos(tmp_path):
    """The demo chat model ends its turn with <|im_end|> (id 0). Here its tokenizer gets another
    EOS token, which the model never writes: a chat row still ends at <|im_end|>, a plain one runs on."""
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    from faithdpo.generation import HFEngine

    model = tmp_path / "model"
    shutil.copytree(CHAT_MODEL, model)  # links resolved
    tok = AutoTokenizer.from_pretrained(model)
    tok.add_tokens([AddedToken("<|endoftext|>", special=True)], special_tokens=True)
    tok.eos_token = "<|endoftext|>"
    tok.save_pretrained(model)
    articles = generate_corpus(4, "validation", seed=0)["article"]
    prompts = [chat.render(tok, TEMPLATE.replace("{article}", a)) for a in articles]
    ids = [str(i) for i in range(len(prompts))]
    replies = HFEngine(str(model), GenerationConfig(chat=True, max_new_tokens=64)).generate(ids, prompts)
    runs_on = HFEngine(str(model), GenerationConfig(stop_strings=[], max_new_tokens=64)).generate(ids, prompts)
    assert all(r["new_tokens"] < 64 for r in replies)  # each ended at <|im_end|>, before the limit
    for reply, longer in zip(replies, runs_on):  # without the end of turn, each runs on past it
        assert longer["new_tokens"] > reply["new_tokens"]
        assert longer["summary"].startswith(reply["summary"]) and len(longer["summary"]) > len(reply["summary"])


def _chat_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(CHAT_MODEL)


def test_the_committed_chat_model_is_the_demo_model_with_the_chat_tokenizer():
    from faithdpo.tiny_chat import LINKED, chat_tokenizer_files

    model = Path(CHAT_MODEL)
    for name in LINKED:  # the same weights and config, linked
        assert (model / name).is_symlink() and (model / name).resolve() == (Path(BASE) / name).resolve()
    for name, text in chat_tokenizer_files(BASE).items():
        assert (model / name).read_text() == text, f"{model / name} is stale: run python -m faithdpo.tiny_chat"
    tok = _chat_tokenizer()
    assert tok.chat_template and tok.eos_token == "<|im_end|>" and tok.eos_token_id == 0
    assert json.loads((Path(BASE) / "config.json").read_text())["eos_token_id"] == 0


@pytest.mark.demo
def test_the_chat_demo_runs_every_step_on_the_rendered_template(tmp_path):
    """config/demo-chat.yaml end to end: the prompts are the rendered template, generation ended
    at <|im_end|> (a greedy rerun shows the token), the pairs carry build_prompts' prompts, training
    ran on them with the end-of-turn token, and the report is written."""
    import torch
    from transformers import AutoModelForCausalLM

    work = copy_workflow(tmp_path)
    snakemake(work, "--cores", "2", "--configfile", "config/demo-chat.yaml")
    out = work / "results" / "demo-chat"
    cfg = yaml.safe_load((REPO / "config" / "demo-chat.yaml").read_text())
    budget, max_new = cfg["prompt"]["max_prompt_tokens"], cfg["generation"]["max_new_tokens"]
    tok = _chat_tokenizer()
    for split in ("train", "validation"):
        prompts = pd.read_parquet(out / "prompts" / f"{split}.parquet")
        data = pd.read_parquet(out / "data" / f"{split}.parquet").set_index("id")
        assert len(prompts) == len(data)
        for pid, prompt, n in zip(prompts["id"], prompts["prompt"], prompts["prompt_tokens"]):
            assert prompt == chat.render(tok, TEMPLATE.replace("{article}", data.loc[pid, "article"]))
            assert n == len(tok(prompt, add_special_tokens=False)["input_ids"]) <= budget
    # generation stopped at the end-of-turn token: every row before the limit, and the greedy
    # evaluation rerun here writes <|im_end|> right after each summary's tokens
    candidates, base = pd.read_parquet(out / "candidates" / "train.parquet"), pd.read_parquet(out / "eval" / "base.parquet")
    assert (candidates["new_tokens"] < max_new).mean() > 0.9 and (base["new_tokens"] < max_new).all()
    model = AutoModelForCausalLM.from_pretrained(CHAT_MODEL)
    prompts = pd.read_parquet(out / "prompts" / "validation.parquet").set_index("id")
    for pid, summary, n in list(zip(base["id"], base["summary"], base["new_tokens"]))[:4]:
        enc = tok(prompts.loc[pid, "prompt"], add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            seq = model.generate(**enc, max_new_tokens=max_new, do_sample=False, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id)[0, enc["input_ids"].shape[1]:].tolist()
        assert seq[n] == tok.convert_tokens_to_ids("<|im_end|>")
        assert tok.decode(seq[:n], skip_special_tokens=True).strip() == summary
    # the pairs carry build_prompts' prompts, both sides as replies (no leading space)
    pairs = pd.read_parquet(out / "pairs" / "train.parquet")
    train_prompts = pd.read_parquet(out / "prompts" / "train.parquet").set_index("id")["prompt"]
    assert len(pairs) >= cfg["pairs"]["min_pairs"]
    assert list(pairs["prompt"]) == list(train_prompts.loc[pairs["id"]])
    assert not pairs["chosen"].str.startswith(" ").any() and not pairs["rejected"].str.startswith(" ").any()
    # training ran on those pairs, each side ending its turn
    log = (out / "logs" / "train_dpo" / "seed0.log").read_text()
    assert "end with the end-of-turn token '<|im_end|>'" in log and f"training on {len(pairs)} pairs" in log
    history = json.loads((out / "models" / "dpo_seed0" / "log_history.json").read_text())
    assert any("loss" in entry for entry in history)
    assert (out / "eval" / "dpo_seed0.parquet").exists()
    report = (out / "report.md").read_text()
    assert "dpo" in report.lower() and (out / "metrics.json").exists()
