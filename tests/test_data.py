import pandas as pd
import pytest

from faithdpo.data import clean_rows, prepare_split
from faithdpo.io import read_json, write_parquet


def raw_frame():
    return pd.DataFrame({
        "id": ["a", "b", "c", "c", None, "f", "g"],
        "article": ["A one.", "", "C three.", "C again.", "E five.", 7, "G seven."],
        "highlights": ["one", "two", "three", "again", "five", "six", " "],
    })


def test_clean_rows_counts_each_problem():
    clean, counts = clean_rows(raw_frame(), "raw.parquet")
    assert list(clean["id"]) == ["a", "c"]
    assert counts == {
        "empty_or_non_string_article": 2,
        "empty_or_non_string_highlights": 1,
        "missing_id": 1,
        "duplicate_id": 1,
    }


def test_clean_rows_fail_policy_names_the_row():
    with pytest.raises(ValueError, match=r"raw\.parquet: row 1 is invalid \(empty_or_non_string_article\)"):
        clean_rows(raw_frame(), "raw.parquet", on_bad_row="fail")


def test_clean_rows_names_missing_columns():
    with pytest.raises(ValueError, match=r"missing column\(s\) \['highlights'\]"):
        clean_rows(pd.DataFrame({"id": ["a"], "article": ["x"]}), "raw.parquet")


def test_prepare_split_is_seeded_and_keeps_source_order(tmp_path):
    raw = tmp_path / "raw.parquet"
    write_parquet(pd.DataFrame({
        "id": [f"id{i}" for i in range(50)], "article": [f"Article {i}." for i in range(50)], "highlights": "h",
    }), raw)
    prepare_split(str(raw), str(tmp_path / "a.parquet"), str(tmp_path / "a.json"), "train", n=10, seed=7)
    prepare_split(str(raw), str(tmp_path / "b.parquet"), str(tmp_path / "b.json"), "train", n=10, seed=7)
    prepare_split(str(raw), str(tmp_path / "c.parquet"), str(tmp_path / "c.json"), "train", n=10, seed=8)
    a, b, c = (pd.read_parquet(tmp_path / f"{x}.parquet") for x in "abc")
    pd.testing.assert_frame_equal(a, b)
    assert list(a["id"]) != list(c["id"])
    assert list(a["id"]) == sorted(a["id"], key=lambda s: int(s[2:]))
    assert read_json(tmp_path / "a.json")["sampled"] == 10


def test_prepare_split_too_large_a_sample_names_the_key(tmp_path):
    raw = tmp_path / "raw.parquet"
    write_parquet(raw_frame().iloc[:5], raw)  # parquet cannot hold the int article of row 5
    with pytest.raises(ValueError, match=r"data\.n_validation = 5 is larger than the 2 valid rows"):
        prepare_split(str(raw), str(tmp_path / "o.parquet"), str(tmp_path / "o.json"), "validation", n=5, seed=0)
    assert not (tmp_path / "o.parquet").exists()


def test_bad_rows_that_prepare_split_leaves_out_reach_the_report(tmp_path):
    """Each problem's count goes from prepare_split's stats file to the report's data checks."""
    from faithdpo.report import data_checks, data_section

    raw = tmp_path / "raw.parquet"
    write_parquet(raw_frame().drop(index=5), raw)  # parquet cannot hold the int article of row 5
    prepare_split(str(raw), str(tmp_path / "s.parquet"), str(tmp_path / "validation.stats.json"), "validation", n=2,
                  seed=0)
    write_parquet(pd.DataFrame({"id": ["a", "c"], "truncated": False}), tmp_path / "prompts.parquet")
    section = data_section(data_checks([str(tmp_path / "validation.stats.json")], [str(tmp_path / "prompts.parquet")]),
                           "truncate")
    for problem, count in (("empty or non string article", 1), ("empty or non string highlights", 1),
                           ("missing id", 1), ("duplicate id", 1)):
        assert f"| Bad rows left out: {problem} | {count} |" in section
