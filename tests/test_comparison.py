"""The comparison table, built from the metrics of two experiments' reports."""

import copy

import pytest

from faithdpo.comparison import build_comparison
from faithdpo.io import read_json, write_json


@pytest.fixture
def two_experiments(report_dir):
    path, metrics = report_dir
    main = read_json(path / "m.json")
    other = copy.deepcopy(main)
    other["pairs_config"] = {"strategy": "minimal_swap"}
    other["pairs"]["pairs"] = 7
    for row in other["comparison"]:
        if row["key"] == "number_rate":
            row["dpo"]["value"], row["verdict"], row["p_value"] = 0.1, "improved", 0.004
            row["delta"] = {"value": -0.233, "low": -0.4, "high": -0.1}
    files = [path / "main.json", path / "swap.json"]
    write_json({**main, "pairs_config": {"strategy": "highlights_vs_worst"}}, files[0])
    write_json(other, files[1])
    return path, [str(f) for f in files]


def test_one_row_for_the_base_and_one_per_experiment(two_experiments):
    path, files = two_experiments
    text = build_comparison(files, ["main", "swap"], str(path / "comparison.md"))
    assert (path / "comparison.md").read_text() == text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| Model | Pair strategy | Pairs |")
    assert rows[1].startswith("| Base model | | | 100.0% [100.0, 100.0] | 33.3% [")
    assert rows[2].startswith("| DPO: `main` | highlights_vs_worst | 10 | 33.3% [")
    assert "-66.7 pp [" in rows[2] and ": improved |" in rows[2]
    assert rows[3].startswith("| DPO: `swap` | minimal_swap | 7 |")
    assert "10.0% [" in rows[3] and "-23.3 pp [-40.0, -10.0], p = 0.004: improved" in rows[3]
    assert "| 5.0 / 9.0 (100.0%) | 100.0% (60.9%) |" in rows[3]  # pair lengths, reward accuracy, loss drop
    assert "2 experiment(s) x 4 metrics = 8 paired tests (see each report), about 0.4 would read" in text
    assert "- `swap`: Length confound" in text


def test_experiments_must_share_the_base_evaluation(two_experiments):
    path, files = two_experiments
    other = read_json(files[1])
    other["base"]["entity_rate"] = 0.5
    write_json(other, files[1])
    with pytest.raises(ValueError, match="'swap' was evaluated against another base run than 'main'"):
        build_comparison(files, ["main", "swap"], str(path / "comparison.md"))
    assert not (path / "comparison.md").exists()
