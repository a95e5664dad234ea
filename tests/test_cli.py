import json
import subprocess
import sys
from pathlib import Path

from faithdpo.cli import main

ROWS = [
    {"id": "a", "article": "Anna King won in Canada with 43%.", "highlights": "King wins .",
     "summary": "Anna King won in Canada with 43%."},
    {"id": "b", "article": "Anna King won in Canada with 43%.", "highlights": "King wins .",
     "summary": "Alice Martin won in Italy with 63%.", "extra": 1},
]


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_score_writes_rows_and_prints_rates(tmp_path, capsys):
    write_rows(tmp_path / "in.jsonl", ROWS)
    assert main(["score", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl")]) == 0
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in out] == ["a", "b"]
    assert out[0]["badness"] == 0 and out[0]["entities"] == ["Anna King", "Canada"]
    assert sorted(out[1]["hallucinated_entities"]) == ["Alice Martin", "Italy"]
    assert out[1]["hallucinated_numbers"] == ["63%"]
    assert (out[1]["ent_hallucinations"], out[1]["num_hallucinations"], out[1]["badness"]) == (2, 1, 4)
    assert out[1]["extra"] == 1  # input fields are kept
    assert "2 summaries: entity hallucination rate 50.0%, number hallucination rate 50.0%" in capsys.readouterr().out


def test_malformed_line_names_file_and_line_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "in.jsonl").write_text(json.dumps(ROWS[0]) + "\n{oops\n", encoding="utf-8")
    assert main(["score", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl")]) == 2
    assert f"{tmp_path / 'in.jsonl'}:2: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


def test_console_script_is_installed(tmp_path):
    exe = Path(sys.executable).with_name("faithdpo")  # installed beside the interpreter by pip install
    write_rows(tmp_path / "in.jsonl", ROWS[:1])
    done = subprocess.run([exe, "score", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o.jsonl")],
                          capture_output=True, text=True, check=True)
    assert "1 summaries: entity hallucination rate 0.0%" in done.stdout
    assert (tmp_path / "o.jsonl").exists()
