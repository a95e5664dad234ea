import pandas as pd
import pytest

from faithdpo.pairs import HIGHLIGHTS, build_pairs, filter_pairs, worst_candidates
from faithdpo.scoring import entity_supported, normalize_number, reference_index, reference_number_values


def frames():
    scores = pd.DataFrame({
        "id": ["x", "x", "x", "y", "y", "z", "z"],
        "candidate": [0, 1, 2, 0, 1, 0, 1],
        "summary": ["x0", "x1 bad", "x2 bad", "y0", "y1", "z0 worst", "z1"],
        "badness": [1, 3, 3, 0, 0, 5, 2],
    })
    prompts = pd.DataFrame({"id": ["z", "x", "y"], "prompt": ["Pz", "Px", "Py"], "article": ["az", "ax", "ay"]})
    data = pd.DataFrame({"id": ["z", "x", "y"], "article": ["az", "ax", "ay"], "highlights": ["hz", "hx ", "hy"]})
    return scores, prompts, data


def test_worst_candidate_breaks_ties_by_lowest_index():
    scores, _, _ = frames()
    worst = worst_candidates(scores).set_index("id")
    assert worst.loc["x", "candidate"] == 1
    assert worst.loc["z", "candidate"] == 0


def test_highlights_vs_worst_pairs_highlights_with_the_worst_candidate():
    pairs, dropped = filter_pairs(build_pairs("highlights_vs_worst", *frames()))
    assert list(pairs["id"]) == ["z", "x"]  # data order; y has badness 0 everywhere
    assert dropped["below_min_margin"] == 1
    assert list(pairs["prompt"]) == ["Pz", "Px"]
    assert list(pairs["chosen"]) == [" hz", " hx"]
    assert list(pairs["rejected"]) == [" z0 worst", " x1 bad"]
    assert list(pairs["rejected_badness"]) == [5, 3]
    assert list(pairs["chosen_badness"]) == [0, 0]
    assert list(pairs["chosen_candidate"]) == [HIGHLIGHTS] * 2 and list(pairs["rejected_candidate"]) == [0, 1]


def test_best_vs_worst_needs_a_clean_and_a_dirty_candidate_and_breaks_ties_by_rouge():
    scores = pd.DataFrame({
        "id": ["a", "a", "a", "a", "b", "b", "c"],
        "candidate": [0, 1, 2, 3, 0, 1, 0],
        "summary": ["Rain fell in the town.", "Heavy rain hit the coastal town on Monday.", "Storm in Paris.",
                    "Rain hit the town of Leeds.", "b0", "b1", "c0"],
        "badness": [0, 0, 3, 1, 0, 0, 2],
    })
    data = pd.DataFrame({"id": ["a", "b", "c"], "article": ["..."] * 3,
                         "highlights": ["Heavy rain hit the coastal town on Monday night.", "hb", "hc"]})
    prompts = pd.DataFrame({"id": ["a", "b", "c"], "prompt": ["Pa", "Pb", "Pc"]})
    pairs = build_pairs("best_vs_worst", scores, prompts, data)
    # b has no hallucinating candidate, c no clean one: both skipped
    assert list(pairs["id"]) == ["a"]
    row = pairs.iloc[0]
    assert (row["chosen_candidate"], row["rejected_candidate"]) == (1, 2)  # ROUGE-L picks 1 over 0
    assert (row["chosen"], row["rejected"]) == (" Heavy rain hit the coastal town on Monday.", " Storm in Paris.")
    assert (row["chosen_badness"], row["rejected_badness"]) == (0, 3)


SWAP_DATA = pd.DataFrame({
    "id": ["a", "b", "c"],
    "article": ["Angela Merkel met officials in Berlin on Monday. Growth was 3.5% as 1,200 jobs were added.",
                "Apple said revenue rose 12% to $90 billion in California.",
                "Barack Obama visited Paris with 40 aides."],
    "highlights": ["Angela Merkel met officials in Berlin. Growth was 3.5%.",
                   "Apple revenue rose 12% in California.",
                   "Barack Obama visited Paris with 40 aides."],
})
SWAP_PROMPTS = pd.DataFrame({"id": ["a", "b", "c"], "prompt": ["Pa", "Pb", "Pc"]})


def differing_span(chosen: str, rejected: str) -> tuple[str, str]:
    """The one stretch where two texts differ (common prefix and suffix stripped)."""
    start = 0
    while start < min(len(chosen), len(rejected)) and chosen[start] == rejected[start]:
        start += 1
    end = 0
    while end < min(len(chosen), len(rejected)) - start and chosen[-1 - end] == rejected[-1 - end]:
        end += 1
    return chosen[start:len(chosen) - end], rejected[start:len(rejected) - end]


def test_minimal_swap_changes_exactly_one_item_to_an_absent_one_of_the_same_kind(scorer):
    scores = pd.DataFrame({"id": ["a"], "candidate": [0], "summary": ["x"], "badness": [0]})
    pairs = build_pairs("minimal_swap", scores, SWAP_PROMPTS, SWAP_DATA, scorer, seed=0)
    assert list(pairs["id"]) == ["a", "b", "c"]
    for row, (_, src) in zip(pairs.itertuples(), SWAP_DATA.iterrows()):
        assert row.chosen == " " + src["highlights"]
        old, new = row.swap.split(" -> ")
        assert row.rejected == row.chosen.replace(old, new, 1)
        removed, added = differing_span(row.chosen, row.rejected)
        assert removed in old and added in new  # nothing else in the text changed
        reference = f"{src['article']}\n{src['highlights']}"
        kind_old = {i["text"]: i["kind"] for i in scorer.items([src["highlights"]])[0]}[old]
        pool = {i["text"]: i["kind"] for t in SWAP_DATA["highlights"] for i in scorer.items([t])[0]}
        assert pool[new] == kind_old, "the replacement has the same kind (NER label or number shape)"
        if kind_old.startswith("NUMBER:"):
            assert normalize_number(new) not in reference_number_values(reference, scorer.number_re)
            assert row.rejected_badness == 2
        else:
            assert not entity_supported(new, reference_index(reference), kind_old)
            assert row.rejected_badness == 1
        assert row.chosen_badness == 0 and row.chosen_candidate == HIGHLIGHTS


def test_minimal_swap_is_seeded(scorer):
    scores = pd.DataFrame({"id": ["a"], "candidate": [0], "summary": ["x"], "badness": [0]})
    runs = [build_pairs("minimal_swap", scores, SWAP_PROMPTS, SWAP_DATA, scorer, seed=s) for s in (0, 0, 1, 2, 3)]
    pd.testing.assert_frame_equal(runs[0], runs[1])
    assert len({tuple(r["swap"]) for r in runs}) > 1, "other seeds draw other swaps"


def test_minimal_swap_from_the_cleanest_candidate(scorer):
    scores = pd.DataFrame({"id": ["a", "a", "b"], "candidate": [0, 1, 0],
                           "summary": ["Angela Merkel met officials.", "Merkel met Putin.", "Apple sold phones."],
                           "badness": [0, 1, 1]})
    pairs = build_pairs("minimal_swap", scores, SWAP_PROMPTS, SWAP_DATA, scorer, chosen_from="cleanest")
    assert list(pairs["id"]) == ["a"]  # b has no clean candidate
    row = pairs.iloc[0]
    assert row["chosen"] == " Angela Merkel met officials." and row["chosen_candidate"] == 0
    assert row["swap"].startswith("Angela Merkel -> ")


def test_filters_margin_length_and_duplicates():
    pairs = pd.DataFrame({
        "prompt": ["P1", "P2", "P3", "P4", "P4"],
        "chosen": ["c", "same", "long chosen", "c4", "c4"],
        "rejected": ["r", "same", "r", "r4", "r4"],
        "chosen_badness": [0, 0, 0, 0, 0],
        "rejected_badness": [1, 3, 3, 2, 2],
        "chosen_tokens": [10, 5, 30, 8, 8],
        "rejected_tokens": [11, 5, 10, 9, 9],
    })
    kept, dropped = filter_pairs(pairs, min_margin=2, max_length_diff=0.5, dedupe=True)
    assert list(kept["prompt"]) == ["P4"]
    assert dropped == {"chosen_failed": 0, "below_min_margin": 1, "over_max_length_diff": 1, "duplicate": 2}
    kept, dropped = filter_pairs(pairs, min_margin=1, max_length_diff=None, dedupe=False)
    assert len(kept) == 5 and dropped == {"chosen_failed": 0, "below_min_margin": 0}


def test_a_failed_summary_is_never_the_chosen_side():
    """Empty, punctuation-only and looping candidates have badness 0 (they state nothing) but are
    no faithful summary: best_vs_worst passes over them, and the filter drops any such chosen side."""
    scores = pd.DataFrame({
        "id": ["a"] * 5 + ["b"] * 2,
        "candidate": [0, 1, 2, 3, 4, 0, 1],
        "summary": ["", " . ,", "the rain the rain the rain the rain", "Rain fell.", "Storm in Paris.", "", "Snow."],
        "badness": [0, 0, 0, 0, 3, 0, 2],
    })
    data = pd.DataFrame({"id": ["a", "b"], "article": ["..."] * 2, "highlights": ["the rain the rain", "Sun."]})
    prompts = pd.DataFrame({"id": ["a", "b"], "prompt": ["Pa", "Pb"]})
    pairs = build_pairs("best_vs_worst", scores, prompts, data)
    assert list(pairs["id"]) == ["a"] and pairs.loc[0, "chosen"] == " Rain fell."  # b: only "" is clean
    made = pd.DataFrame({"prompt": ["P1", "P2", "P3"], "chosen": [" ", " ...", " Rain fell."],
                         "rejected": ["r1", "r2", "r3"], "chosen_badness": 0, "rejected_badness": 2})
    kept, dropped = filter_pairs(made)
    assert list(kept["prompt"]) == ["P3"] and dropped["chosen_failed"] == 2


def test_unknown_strategy_names_the_allowed_ones():
    with pytest.raises(ValueError, match="pairs.strategy = 'random'; allowed: highlights_vs_worst, best_vs_worst, "
                                         "minimal_swap"):
        build_pairs("random", *frames())


def test_select_pairs_stores_token_lengths(tiny_model_dir, tmp_path):
    from faithdpo.io import write_parquet
    from faithdpo.models import load_tokenizer
    from faithdpo.pairs import select_pairs

    scores, prompts, data = frames()
    paths = {}
    for name, frame in (("scores", scores), ("prompts", prompts), ("data", data)):
        paths[name] = str(tmp_path / f"{name}.parquet")
        write_parquet(frame, paths[name])
    pairs = select_pairs(paths["scores"], paths["prompts"], paths["data"], tiny_model_dir, str(tmp_path / "p.parquet"),
                         str(tmp_path / "selection.json"))
    tokenizer = load_tokenizer(tiny_model_dir)

    def count(text):
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    # the chosen texts are the highlights as completions, each shorter than its rejected text
    assert list(pairs["chosen"]) == [" hz", " hx"] and list(pairs["rejected"]) == [" z0 worst", " x1 bad"]
    assert count(" hz") < count(" z0 worst") and count(" hx") < count(" x1 bad")
    assert list(pairs["chosen_tokens"]) == [count(t) for t in pairs["chosen"]]
    assert list(pairs["rejected_tokens"]) == [count(t) for t in pairs["rejected"]]
    assert pd.read_parquet(tmp_path / "p.parquet").equals(pairs)


def test_the_selection_says_what_each_step_dropped_and_whether_to_train(tiny_model_dir, tmp_path):
    """x has no clean candidate, y no hallucinating one, z no clean one: best_vs_worst pairs none."""
    import json

    from faithdpo.io import write_parquet
    from faithdpo.pairs import select_pairs

    paths = {}
    for name, frame in zip(("scores", "prompts", "data"), frames()):
        paths[name] = str(tmp_path / f"{name}.parquet")
        write_parquet(frame, paths[name])
    args = [paths["scores"], paths["prompts"], paths["data"], tiny_model_dir, str(tmp_path / "p.parquet"),
            str(tmp_path / "s.json")]
    select_pairs(*args, strategy="highlights_vs_worst", min_pairs=2)
    selection = json.loads((tmp_path / "s.json").read_text())
    assert selection == {"strategy": "highlights_vs_worst", "articles": 3, "built": 3, "without_pair": {},
                         "dropped": {"chosen_from_cut_tail": 0, "chosen_failed": 0, "below_min_margin": 1,
                                     "duplicate": 0}, "pairs": 2, "min_pairs": 2, "trained": True,
                         "chosen_from_cut_tail": {"pairs": 0, "action": "drop"}, "rank_by": "badness"}
    select_pairs(*args, strategy="best_vs_worst", min_pairs=2)
    selection = json.loads((tmp_path / "s.json").read_text())
    assert selection["without_pair"] == {"no badness-0 candidate": 2, "no candidate with a hallucination": 1}
    assert selection["trained"] is False and selection["pairs"] == 0
    assert selection["reason"] == ("0 pair(s), fewer than pairs.min_pairs = 2; from 3 train articles, strategy "
                                   "best_vs_worst made 0 pair(s) (2 article(s): no badness-0 candidate; 1 article(s): "
                                   "no candidate with a hallucination)")
    assert pd.read_parquet(tmp_path / "p.parquet").empty  # written all the same: the checkpoint's output


@pytest.mark.parametrize("on_cut_tail", ["drop", "keep"])
def test_chosen_sides_from_the_cut_tail_are_counted_and_dropped(tiny_model_dir, tmp_path, on_cut_tail):
    """The highlights of a truncated article may state a fact only its cut tail holds: DPO would
    reward it without support in the prompt. Counted, and dropped unless pairs.on_cut_tail: keep."""
    import json

    from faithdpo.io import write_parquet
    from faithdpo.pairs import select_pairs

    tail = " Later the mayor, Helen Moore, said repairs would cost 4,000 pounds."
    head = "Rain fell in Leeds on Monday and flooded the town centre."
    data = pd.DataFrame({"id": ["cut", "whole"], "article": [head + tail, head],
                         "highlights": ["Helen Moore said repairs in Leeds cost 4,000 pounds.", "Rain flooded Leeds."]})
    prompts = pd.DataFrame({"id": ["cut", "whole"], "prompt": ["P1", "P2"], "article": [head, head]})
    scores = pd.DataFrame({"id": ["cut", "whole"], "candidate": 0, "summary": ["Rain in Paris.", "Rain in Paris."],
                           "badness": [1, 1]})
    paths = {}
    for name, frame in (("scores", scores), ("prompts", prompts), ("data", data)):
        paths[name] = str(tmp_path / f"{name}.parquet")
        write_parquet(frame, paths[name])
    pairs = select_pairs(paths["scores"], paths["prompts"], paths["data"], tiny_model_dir,
                         str(tmp_path / "p.parquet"), str(tmp_path / "s.json"), on_cut_tail=on_cut_tail)
    selection = json.loads((tmp_path / "s.json").read_text())
    assert selection["chosen_from_cut_tail"] == {"pairs": 1, "action": on_cut_tail}
    if on_cut_tail == "drop":
        assert list(pairs["id"]) == ["whole"] and selection["dropped"]["chosen_from_cut_tail"] == 1
    else:
        assert list(pairs["id"]) == ["cut", "whole"] and "chosen_from_cut_tail" not in selection["dropped"]


def test_ranked_by_the_checker_chosen_is_best_supported_and_the_support_margin_filters():
    scores, prompts, data = frames()
    # the checker disagrees with badness: x's best supported is x2 (badness 3), y's candidates differ
    scores["support"] = [0.2, 0.1, 0.95, 0.9, 0.3, 0.6, 0.5]
    pairs = build_pairs("best_vs_worst", scores, prompts, data, rank_by="checker")
    assert list(pairs["id"]) == ["z", "x", "y"]
    assert list(pairs["chosen"]) == [" z0 worst", " x2 bad", " y0"]
    assert list(pairs["rejected"]) == [" z1", " x1 bad", " y1"]
    assert list(pairs["chosen_support"]) == [0.6, 0.95, 0.9] and list(pairs["rejected_support"]) == [0.5, 0.1, 0.3]
    kept, dropped = filter_pairs(pairs, min_support_margin=0.5)
    assert list(kept["id"]) == ["x", "y"] and dropped["below_min_support_margin"] == 1
    assert "below_min_margin" not in dropped  # the badness margin plays no part
    # a chosen side the checker calls unsupported never trains, whatever the margin
    kept, dropped = filter_pairs(pairs, min_support_margin=0.05, checker_threshold=0.92)
    assert list(kept["id"]) == ["x"] and dropped["chosen_unsupported"] == 2
    # highlights count as fully supported; the rejected side is the least supported candidate
    hvw = build_pairs("highlights_vs_worst", scores, prompts, data, rank_by="checker")
    assert list(hvw["rejected"]) == [" z1", " x1 bad", " y1"] and list(hvw["chosen_support"]) == [1.0] * 3
    # ranked by badness, the supports are not known
    assert build_pairs("best_vs_worst", *frames())["chosen_support"].isna().all()
    with pytest.raises(ValueError, match="rank_by = 'ner'; allowed: badness, checker"):
        build_pairs("best_vs_worst", scores, prompts, data, rank_by="ner")


def test_minimal_swap_ranked_by_the_checker_edits_a_faithful_candidate(scorer):
    """The checker picks among the badness-0 candidates: never a text regex + NER flag."""
    scores = pd.DataFrame({"id": ["a", "a", "a", "b"], "candidate": [0, 1, 2, 0],
                           "summary": ["Angela Merkel met officials.", "Merkel met Putin.", "Angela Merkel met the press.",
                                       "Apple sold phones."],
                           "badness": [0, 1, 0, 1], "support": [0.6, 0.99, 0.8, 0.99]})
    pairs = build_pairs("minimal_swap", scores, SWAP_PROMPTS, SWAP_DATA, scorer, chosen_from="cleanest",
                        rank_by="checker")
    assert list(pairs["id"]) == ["a"] and list(pairs["chosen_candidate"]) == [2]  # not 1 (badness 1), not 0


def test_select_pairs_reads_the_candidates_checks(tiny_model_dir, tmp_path):
    import json

    from faithdpo.io import write_parquet
    from faithdpo.pairs import select_pairs

    scores, prompts, data = frames()
    checks = scores[["id", "candidate"]].assign(support=[0.2, 0.1, 0.95, 0.9, 0.3, 0.6, 0.5])
    paths = {}
    for name, frame in (("scores", scores), ("prompts", prompts), ("data", data), ("checks", checks)):
        paths[name] = str(tmp_path / f"{name}.parquet")
        write_parquet(frame, paths[name])
    args = [paths["scores"], paths["prompts"], paths["data"], tiny_model_dir, str(tmp_path / "p.parquet"),
            str(tmp_path / "s.json")]
    pairs = select_pairs(*args, strategy="best_vs_worst", rank_by="checker", min_support_margin=0.5,
                         checks=paths["checks"], min_pairs=1)
    assert list(pairs["id"]) == ["x", "y"]
    selection = json.loads((tmp_path / "s.json").read_text())
    assert selection["rank_by"] == "checker" and selection["dropped"]["below_min_support_margin"] == 1
    write_parquet(checks.head(5), paths["checks"])
    with pytest.raises(ValueError, match="does not check every candidate"):
        select_pairs(*args, strategy="best_vs_worst", rank_by="checker", checks=paths["checks"])
