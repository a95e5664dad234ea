"""Any summarization set: a split in Parquet, JSON Lines or CSV, its own column and split names,
ids read as text or derived from the article, and errors that name the file, the key and what
was found (faithdpo.data)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from faithdpo.data import (
    check_columns,
    clean_rows,
    derive_id,
    file_columns,
    prepare_split,
    read_split,
    split_file,
)
from faithdpo.io import read_json

XSUM_COLUMNS = {"id": "bbcid", "article": "document", "highlights": "summary"}
ROWS = [
    {"bbcid": "007", "document": "Storm hits the coast.", "summary": "A storm.", "topic": "weather"},
    {"bbcid": "010", "document": "Café owner wins award.", "summary": "An award.", "topic": "NA"},
    {"bbcid": "12", "document": "Council raises tax by 3%.", "summary": "Tax up.", "topic": ""},
]


def write(path, rows: list[dict], fmt: str):
    """``rows`` as a file of format ``fmt``, every value text (as a newsroom's export would be)."""
    if fmt == "parquet":
        pd.DataFrame(rows).to_parquet(path)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:
        pd.DataFrame(rows).to_csv(path, index=False, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_each_format_is_read_with_the_datasets_own_column_names(tmp_path, fmt):
    path = write(tmp_path / f"train.{fmt}", ROWS, fmt)
    df = read_split(path, XSUM_COLUMNS)
    assert list(df.columns) == ["id", "article", "highlights"]
    assert list(df["id"]) == ["007", "010", "12"]  # text: no file type turns "007" into 7
    assert list(df["article"]) == [r["document"] for r in ROWS]
    assert list(df["highlights"]) == [r["summary"] for r in ROWS]
    assert file_columns(path) == ["bbcid", "document", "summary", "topic"]


def test_numeric_ids_become_text_without_a_decimal_point(tmp_path):
    """JSON numbers and an integer Parquet column with a gap: 7, not 7.0; a missing id stays missing."""
    (tmp_path / "a.jsonl").write_text('{"id": 7, "article": "A.", "highlights": "a"}\n\n'
                                      '{"id": "007", "article": "B.", "highlights": "b"}\n'
                                      '{"article": "C.", "highlights": "c"}\n')
    assert list(read_split(str(tmp_path / "a.jsonl"))["id"]) == ["7", "007", None]
    pq.write_table(pa.table({"id": pa.array([7, None, 3], pa.int64()), "article": ["A.", "B.", "C."],
                             "highlights": ["a", "b", "c"]}), tmp_path / "b.parquet")
    assert list(read_split(str(tmp_path / "b.parquet"))["id"]) == ["7", None, "3"]


def test_a_csv_field_is_missing_only_when_empty(tmp_path):
    """"NA" and "null" are words in an article; an empty field is a missing value (a bad row)."""
    path = write(tmp_path / "t.csv", [{"id": "1", "article": "NA", "highlights": "null"},
                                      {"id": "2", "article": "", "highlights": "x"}], "csv")
    df = read_split(path)
    assert df.loc[0, "article"] == "NA" and df.loc[0, "highlights"] == "null"
    assert pd.isna(df.loc[1, "article"])
    clean, counts = clean_rows(df, path)
    assert list(clean["id"]) == ["1"] and counts["empty_or_non_string_article"] == 1


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_a_column_the_file_lacks_names_the_file_the_key_and_the_columns_found(tmp_path, fmt):
    path = write(tmp_path / f"validation.{fmt}", ROWS, fmt)
    with pytest.raises(ValueError) as err:
        read_split(path, {"id": "id", "article": "document", "highlights": "highlights"})
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert "data.columns.id = 'id' is not one of its columns" in message
    assert "data.columns.highlights = 'highlights' is not one of its columns" in message
    assert "data.columns.article" not in message  # document is there
    assert "Its columns: ['bbcid', 'document', 'summary', 'topic']" in message
    assert "data.columns.id: null derives ids from the article" in message


def test_the_header_alone_is_read_for_the_columns(tmp_path):
    """The config check reads a file's columns without reading the file: a JSON Lines file whose
    second line is broken still gives them; reading it names the line."""
    path = tmp_path / "train.jsonl"
    path.write_text('\n{"id": "1", "article": "A.", "highlights": "a"}\n{"id": "2", "article": \n')
    assert file_columns(str(path)) == ["id", "article", "highlights"]
    with pytest.raises(ValueError, match=re.escape(f"{path}:3: not valid JSON")):
        read_split(str(path))
    check_columns(str(path), file_columns(str(path)), {"id": "id", "article": "article", "highlights": "highlights"})


def test_derived_ids_are_a_fixed_function_of_the_article_text():
    """The first 16 hex digits of the UTF-8 text's sha256: fixed values, so the same on every
    machine and run (and run to run: computed again below)."""
    assert derive_id("Storm hits the coast.") == "faea071f5c750aa3"
    assert derive_id("Café owner wins award.") == "11366a4e757bad50"  # UTF-8, not Latin-1
    assert derive_id("Storm hits the coast. ") != derive_id("Storm hits the coast.")  # the text as stored


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_set_without_ids_gets_them_from_the_article(tmp_path, fmt):
    rows = [{k: v for k, v in r.items() if k != "bbcid"} for r in ROWS]
    path = write(tmp_path / f"train.{fmt}", rows, fmt)
    columns = {**XSUM_COLUMNS, "id": None}
    first, again = read_split(path, columns), read_split(path, columns)
    assert list(first["id"]) == ["faea071f5c750aa3", "11366a4e757bad50", derive_id("Council raises tax by 3%.")]
    pd.testing.assert_frame_equal(first, again)


def test_the_same_article_twice_is_a_duplicate_id(tmp_path):
    """With derived ids a repeated article follows the duplicate-id rule (data.on_bad_row); an
    empty article is counted once, as a bad article, not also as a missing id."""
    rows = [{"article": "Storm hits the coast.", "highlights": "a"},
            {"article": "Council meets.", "highlights": "b"},
            {"article": "Storm hits the coast.", "highlights": "c"},
            {"article": " ", "highlights": "d"}]
    path = write(tmp_path / "train.jsonl", rows, "jsonl")
    prepare_split(path, str(tmp_path / "o.parquet"), str(tmp_path / "o.json"), "train", n=2, seed=0,
                  columns={"id": None, "article": "article", "highlights": "highlights"})
    out, stats = pd.read_parquet(tmp_path / "o.parquet"), read_json(tmp_path / "o.json")
    assert list(out["id"]) == ["faea071f5c750aa3", derive_id("Council meets.")]
    assert list(out["highlights"]) == ["a", "b"]  # the first of the two is kept
    assert stats["skipped"] == {"empty_or_non_string_article": 1, "empty_or_non_string_highlights": 0,
                                "missing_id": 0, "duplicate_id": 1}
    assert stats["ids"] == "derived: sha256 of the article, first 16 hex digits"
    with pytest.raises(ValueError, match=r"row 2 is invalid \(duplicate_id\) \(ids derived from the article text: "
                                         r"a duplicate id is the same article twice\)"):
        prepare_split(path, str(tmp_path / "f.parquet"), str(tmp_path / "f.json"), "train", n=2, seed=0,
                      on_bad_row="fail", columns={"id": None, "article": "article", "highlights": "highlights"})


def test_prepare_split_writes_the_workflows_columns_from_a_csv(tmp_path):
    path = write(tmp_path / "dev.csv", ROWS, "csv")
    prepare_split(path, str(tmp_path / "v.parquet"), str(tmp_path / "v.json"), "validation", n=3, seed=0,
                  columns=XSUM_COLUMNS)
    out = pd.read_parquet(tmp_path / "v.parquet")
    assert list(out.columns) == ["id", "article", "highlights"] and list(out["id"]) == ["007", "010", "12"]
    stats = read_json(tmp_path / "v.json")
    assert stats["split"] == "validation" and stats["source"] == path and "ids" not in stats


def test_the_split_file_is_the_one_there_whatever_its_format(tmp_path):
    write(tmp_path / "test.csv", ROWS, "csv")
    assert split_file(str(tmp_path), "test", "validation") == str(tmp_path / "test.csv")
    with pytest.raises(ValueError, match=re.escape(
            f"data.dir = {str(tmp_path)!r}, the train split (data.splits.train = 'train'): no train.parquet, "
            "train.jsonl or train.csv there")):
        split_file(str(tmp_path), "train", "train")
    write(tmp_path / "test.jsonl", ROWS, "jsonl")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'test.jsonl'} and {tmp_path / 'test.csv'} both "
                                                   "exist; keep one")):
        split_file(str(tmp_path), "test", "validation")
