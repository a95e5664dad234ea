"""scoring.reference: the article with the highlights (the original recipe's) or the article alone
supports a summary's items, in every place that scores, and what the pairs and the report say
follows it."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from faithdpo.pairs import HIGHLIGHTS, build_pairs, filter_pairs, highlights_badness
from faithdpo.scoring import ScoringConfig, Scorer, reference_text

ARTICLE = "The council in Leeds met on Tuesday to discuss the budget."
HIGHLIGHTS_TEXT = "Mayor John Smith said 40 homes will be built in Leeds."
SUMMARY = "John Smith said 40 homes will be built."


@pytest.fixture(scope="module")
def article_scorer():
    return Scorer(ScoringConfig(reference="article"))


def test_the_same_summary_is_flagged_only_when_the_article_alone_supports(scorer, article_scorer):
    """Its name and figure are in the highlights, not the article: supported by article and
    highlights, hallucinated against the article alone. The recall-target columns do not change."""
    frame = pd.DataFrame({"article": [ARTICLE], "highlights": [HIGHLIGHTS_TEXT], "summary": [SUMMARY]})
    both, alone = scorer.score(frame).iloc[0], article_scorer.score(frame).iloc[0]
    assert (both["hallucinated_entities"], both["hallucinated_numbers"], both["badness"]) == ([], [], 0)
    assert (list(alone["hallucinated_entities"]), list(alone["hallucinated_numbers"]), alone["badness"]) == (
        ["John Smith"], ["40"], 2 * 1 + 1 * 1)
    for column in ("target_entities", "kept_entities", "target_numbers", "kept_numbers"):
        assert list(both[column]) == list(alone[column])


def test_the_default_reference_is_the_original_recipes_text():
    assert ScoringConfig().reference == "article_and_highlights"
    assert reference_text("A.", "h") == "A.\nh"  # byte for byte what the scorer always read
    assert reference_text("A.", "h", "article") == "A."
    with pytest.raises(ValueError, match=r"scoring\.reference = 'highlights'; allowed: article_and_highlights, "
                                         r"article"):
        Scorer(ScoringConfig(reference="highlights"))


def pair_frames():
    data = pd.DataFrame({
        "id": ["a1", "a2"],
        "article": ["Police in Leeds arrested a man on Friday.", "Fans in Paris cheered Jones after the match."],
        "highlights": ["Officer Smith arrested a man in Leeds.", "Jones was cheered by fans in Paris."],
    })
    prompts = pd.DataFrame({"id": ["a1", "a2"], "prompt": ["P1", "P2"], "article": data["article"]})
    scores = pd.DataFrame({"id": ["a1", "a2"], "candidate": [0, 0], "summary": ["a1 worst", "a2 worst"],
                           "badness": [1, 2]})
    return scores, prompts, data


def test_highlights_chosen_under_the_article_alone_carry_their_measured_badness(scorer, article_scorer):
    """a1's highlights name an officer the article does not: badness 1, not the 0 the default
    assumes; the margin filter then drops a1 (its worst candidate is no worse)."""
    scores, prompts, data = pair_frames()
    measured = highlights_badness(data, article_scorer)
    assert measured.to_dict() == {"a1": 1, "a2": 0}
    assert highlights_badness(data, scorer).to_dict() == {"a1": 0, "a2": 0}  # part of their own reference
    default = build_pairs("highlights_vs_worst", scores, prompts, data)
    alone = build_pairs("highlights_vs_worst", scores, prompts, data, highlights_badness=measured)
    assert list(default["chosen_badness"]) == [0, 0] and list(alone["chosen_badness"]) == [1, 0]
    assert list(alone["chosen_candidate"]) == [HIGHLIGHTS] * 2
    kept, dropped = filter_pairs(alone)
    assert list(kept["id"]) == ["a2"] and dropped["below_min_margin"] == 1


def test_minimal_swap_under_the_article_alone_swaps_an_item_the_article_supports(scorer, article_scorer):
    """Swapping a1's unsupported officer would add no hallucination: under the article alone
    the supported place is swapped, and the rejected side is one item worse than the chosen."""
    scores, prompts, data = pair_frames()
    alone = build_pairs("minimal_swap", scores, prompts, data, article_scorer, seed=0,
                        highlights_badness=highlights_badness(data, article_scorer)).set_index("id")
    assert alone.loc["a1", "swap"] == "Leeds -> Paris"
    assert list(alone["chosen_badness"]) == [1, 0] and list(alone["rejected_badness"]) == [2, 1]
    default = build_pairs("minimal_swap", scores, prompts, data, scorer, seed=0).set_index("id")
    assert default.loc["a1", "swap"] == "Smith -> Jones"  # the original recipe's draw, unchanged
    assert list(default["chosen_badness"]) == [0, 0]


def test_select_pairs_counts_and_reports_unsupported_chosen_highlights(tiny_model_dir, tmp_path):
    from faithdpo.io import write_parquet
    from faithdpo.pairs import select_pairs
    from faithdpo.report import selection_section

    paths = {}
    for name, frame in zip(("scores", "prompts", "data"), pair_frames()):
        paths[name] = str(tmp_path / f"{name}.parquet")
        write_parquet(frame, paths[name])
    args = [paths["scores"], paths["prompts"], paths["data"], tiny_model_dir, str(tmp_path / "p.parquet"),
            str(tmp_path / "s.json")]
    pairs = select_pairs(*args, strategy="highlights_vs_worst", scoring={"reference": "article"})
    selection = json.loads((tmp_path / "s.json").read_text())
    assert selection["chosen_highlights_unsupported"] == {"built": 1, "kept": 0}
    assert list(pairs["id"]) == ["a2"] and selection["dropped"]["below_min_margin"] == 1
    assert any(line.startswith("| Kept: chosen highlights stating an item the article does not support")
               and line.endswith("| 0 |") for line in selection_section(selection))
    select_pairs(*args, strategy="highlights_vs_worst")  # the default: no such count, as before
    selection = json.loads((tmp_path / "s.json").read_text())
    assert "chosen_highlights_unsupported" not in selection
    assert not any("chosen highlights" in line for line in selection_section(selection))


def test_the_checker_section_says_what_each_judge_reads():
    from faithdpo.report import checker_section

    summary = {"table": {"both": 1, "regex_only": 0, "checker_only": 0, "neither": 1}, "summaries": 2,
               "articles": 1, "threshold": 0.5, "kappa": None, "examples": {"checker_only": [], "regex_only": []}}
    default = " ".join(checker_section(summary, "95%"))
    alone = " ".join(checker_section(summary, "95%", "article"))
    assert "They judge against different evidence: regex + NER accept an entity or number found in the article or " \
           "in the reference highlights; the checker reads the article (as the prompt gave it) alone. Regex + NER " \
           "see invented names" in default
    assert "Both judge against the article as the prompt gave it, alone (`scoring.reference: article`)" in alone
    assert "reference highlights" not in alone


def test_the_rates_section_names_the_reference(report_dir):
    from faithdpo.io import read_json
    from faithdpo.report import rates_section

    path, _ = report_dir
    metrics = read_json(path / "m.json")
    default, alone = "\n".join(rates_section(metrics)), "\n".join(rates_section(metrics, "article"))
    assert ("the reference is the article as the prompt gave it and the highlights (Nan et al.'s source is the "
            "article alone). Recall-target: of the highlights' entities") in default
    assert ("the reference is the article as the prompt gave it, alone (`scoring.reference: article`, as Nan et "
            "al.'s source). Recall-target: of the highlights' entities") in alone


def test_the_comparison_names_the_reference(report_dir, tmp_path):
    from faithdpo.comparison import build_comparison

    path, _ = report_dir
    default = build_comparison([str(path / "m.json")], ["main"], str(tmp_path / "a.md"))
    alone = build_comparison([str(path / "m.json")], ["main"], str(tmp_path / "b.md"), reference="article")
    assert "the share the article as given + the highlights support; recall-target" in default
    assert "the share the article as given supports (`scoring.reference: article`); recall-target" in alone
