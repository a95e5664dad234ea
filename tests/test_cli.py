import json
import subprocess
import sys
from pathlib import Path

import yaml

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


LABELLED = [
    {"article": "Anna King won in Canada with 43%.", "summary": "Alice Martin won in Italy with 63%.",
     "hallucinated_entities": ["Alice Martin"], "hallucinated_numbers": ["sixty-three"]},
    {"article": "Five people died.", "highlights": "Five die .", "summary": "5 people died in Oslo.",
     "hallucinated_entities": ["Oslo"], "hallucinated_numbers": ["5"]},
]


def test_labels_print_precision_and_recall_of_each_kind_of_flag(tmp_path, capsys):
    write_rows(tmp_path / "labelled.jsonl", LABELLED)
    assert main(["score", "--labels", str(tmp_path / "labelled.jsonl"), "--output", str(tmp_path / "out.jsonl")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"2 labelled summaries in {tmp_path / 'labelled.jsonl'}"
    # entities: flagged Alice Martin, Italy, Oslo; labelled Alice Martin, Oslo
    assert lines[2].split() == ["entities", "2", "3", "2", "0.667", "1.000"]
    # numbers: flagged 63% ("sixty-three" is the same value); labelled also "5", which "Five" supports
    assert lines[3].split() == ["numbers", "2", "1", "1", "1.000", "0.500"]
    assert lines[4] == "row 1 entities: flagged ['Alice Martin', 'Italy'], labelled ['Alice Martin']: " \
                       "'Alice Martin won in Italy with 63%.'"
    assert lines[5] == "row 2 numbers: flagged [], labelled ['5']: '5 people died in Oslo.'"
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert out[1]["labelled_numbers"] == ["5"] and out[1]["hallucinated_numbers"] == []


def test_labels_accept_the_golden_yaml_and_it_agrees_fully(capsys):
    golden = Path(__file__).parent / "data" / "scoring_golden.yaml"
    assert main(["score", "--labels", str(golden)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{len(yaml.safe_load(golden.read_text(encoding='utf-8')))} labelled summaries")
    assert [line.split()[-2:] for line in lines[2:]] == [["1.000", "1.000"]] * 2  # no disagreement lines


def test_malformed_labels_name_the_file_and_the_row(tmp_path, capsys):
    write_rows(tmp_path / "l.jsonl", [LABELLED[0], {**LABELLED[1], "hallucinated_numbers": "5"}])
    assert main(["score", "--labels", str(tmp_path / "l.jsonl")]) == 2
    assert f"{tmp_path / 'l.jsonl'}:2: field(s) ['hallucinated_numbers'] must be lists of strings" in capsys.readouterr().err
    (tmp_path / "l.yaml").write_text("- article: a\n  summary: b\n  hallucinated_entities: []\n", encoding="utf-8")
    assert main(["score", "--labels", str(tmp_path / "l.yaml")]) == 2
    assert f"{tmp_path / 'l.yaml'}: item 1: missing field(s) ['hallucinated_numbers']" in capsys.readouterr().err
