"""The torch-free token counts equal what transformers' tokenizer (training's) counts."""

import pandas as pd
import pytest

from faithdpo.models import load_tokenizer
from faithdpo.tokens import count_tokens, load_text_tokenizer
from workflow_helpers import REPO

TEXTS = pd.Series([
    "Police in Oslo said 28 people were hurt.",
    "The council approved a $1.5 billion budget on 3 March 2024 -- a 12% rise.",
    "  Leading spaces,\nnew lines\tand tabs  ",
    "Café Zürich’s “quoted” naïve façade: ½ of 1,000,000 ",
    "",
], index=[10, 11, 12, 13, 14])


@pytest.mark.parametrize("which", ["demo", "fixture"])
def test_counts_match_the_transformers_tokenizer(which, tiny_model_dir):
    model_dir = str(REPO / "demo" / "tiny-qwen2") if which == "demo" else tiny_model_dir
    expected = [len(ids) for ids in load_tokenizer(model_dir)(list(TEXTS), add_special_tokens=False)["input_ids"]]
    counts = count_tokens(TEXTS, load_text_tokenizer(model_dir))
    assert counts.tolist() == expected and counts.index.tolist() == TEXTS.index.tolist()
    assert counts.iloc[0] > 5


def test_a_model_without_a_fast_tokenizer_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json does not exist"):
        load_text_tokenizer(str(tmp_path))
