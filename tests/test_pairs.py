import pandas as pd

from faithdpo.pairs import build_pairs, worst_candidates


def frames():
    scores = pd.DataFrame({
        "id": ["x", "x", "x", "y", "y", "z", "z"],
        "candidate": [0, 1, 2, 0, 1, 0, 1],
        "summary": ["x0", "x1 bad", "x2 bad", "y0", "y1", "z0 worst", "z1"],
        "badness": [1, 3, 3, 0, 0, 5, 2],
    })
    prompts = pd.DataFrame({"id": ["z", "x", "y"], "prompt": ["Pz", "Px", "Py"]})
    data = pd.DataFrame({"id": ["z", "x", "y"], "highlights": ["hz", "hx ", "hy"]})
    return scores, prompts, data


def test_worst_candidate_breaks_ties_by_lowest_index():
    scores, _, _ = frames()
    worst = worst_candidates(scores).set_index("id")
    assert worst.loc["x", "candidate"] == 1
    assert worst.loc["z", "candidate"] == 0


def test_pairs_chosen_highlights_rejected_worst_skip_clean_articles():
    pairs = build_pairs(*frames())
    assert list(pairs["id"]) == ["z", "x"]  # data order; y has badness 0 everywhere
    assert list(pairs["prompt"]) == ["Pz", "Px"]
    assert list(pairs["chosen"]) == [" hz", " hx"]
    assert list(pairs["rejected"]) == [" z0 worst", " x1 bad"]
    assert list(pairs["rejected_badness"]) == [5, 3]
    assert list(pairs["chosen_badness"]) == [0, 0]


def test_min_badness_filters_weak_pairs():
    pairs = build_pairs(*frames(), min_badness=4)
    assert list(pairs["id"]) == ["z"]


def test_select_pairs_stores_token_lengths(tiny_model_dir, tmp_path):
    from faithdpo.io import write_parquet
    from faithdpo.models import load_tokenizer
    from faithdpo.pairs import select_pairs

    scores, prompts, data = frames()
    paths = {}
    for name, frame in (("scores", scores), ("prompts", prompts), ("data", data)):
        paths[name] = str(tmp_path / f"{name}.parquet")
        write_parquet(frame, paths[name])
    pairs = select_pairs(paths["scores"], paths["prompts"], paths["data"], tiny_model_dir, str(tmp_path / "p.parquet"))
    tokenizer = load_tokenizer(tiny_model_dir)
    assert list(pairs["rejected_tokens"]) == [len(tokenizer(t, add_special_tokens=False)["input_ids"])
                                              for t in pairs["rejected"]]
    assert (pairs["chosen_tokens"] > 0).all()
    assert pd.read_parquet(tmp_path / "p.parquet").equals(pairs)
