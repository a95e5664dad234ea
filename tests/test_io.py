import json

import pandas as pd
import pytest

from faithdpo.io import atomic_path, read_jsonl, read_parquet, write_jsonl, write_parquet


def test_atomic_path_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_a_directory(tmp_path):
    target = tmp_path / "adapter"
    target.mkdir()
    (target / "old.bin").write_text("old")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.bin").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.bin"]
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]


def test_read_parquet_names_missing_columns(tmp_path):
    path = tmp_path / "x.parquet"
    write_parquet(pd.DataFrame({"id": ["a"]}), path)
    with pytest.raises(ValueError, match=r"x\.parquet: missing column\(s\) \['summary'\]"):
        read_parquet(path, ["id", "summary"])


def test_jsonl_round_trip_keeps_unicode_and_lists(tmp_path):
    df = pd.DataFrame({"id": ["1"], "summary": ["Zürich — 5%"], "numbers": [["5%"]]})
    write_jsonl(df, tmp_path / "a.jsonl")
    assert json.loads((tmp_path / "a.jsonl").read_text(encoding="utf-8")) == {
        "id": "1", "summary": "Zürich — 5%", "numbers": ["5%"]
    }


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"id": "2"}', r"missing field\(s\) \['summary'\]"),
        ('{"id": "2", "summary": 5}', r"field\(s\) \['summary'\] must be strings"),
    ],
)
def test_read_jsonl_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "1", "summary": "ok"}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"in\.jsonl:3: {message}"):
        read_jsonl(path, ["id", "summary"], strings=["summary"])
