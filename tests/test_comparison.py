"""The comparison table, built from the metrics of several experiments' reports."""

import copy

import pytest

from faithdpo.comparison import build_comparison
from faithdpo.io import read_json, write_json
from faithdpo.stats import mcnemar_mde


@pytest.fixture
def experiments(report_dir, untrained_report_dir):
    """main (the fixture report), swap (a number-rate change with raw p = 0.03) and bvw (not trained)."""
    path, metrics = report_dir
    main = read_json(path / "m.json")
    other = copy.deepcopy(main)
    other["pairs_config"] = {"strategy": "minimal_swap"}
    other["pairs"]["pairs"] = 7
    for row in other["comparison"]:
        if row["key"] == "number_rate":
            row["dpo"]["value"], row["verdict"], row["p_value"], row["discordant"] = 0.1, "improved", 0.03, 12
            row["delta"] = {"value": -0.233, "low": -0.4, "high": -0.1}
    files = [path / "main.json", path / "swap.json", untrained_report_dir[0] / "m.json"]
    write_json({**main, "pairs_config": {"strategy": "highlights_vs_worst"}}, files[0])
    write_json(other, files[1])
    return path, [str(f) for f in files]


def test_one_row_for_the_base_and_one_per_experiment(experiments):
    path, files = experiments
    text = build_comparison(files, ["main", "swap", "bvw"], str(path / "comparison.md"))
    assert (path / "comparison.md").read_text() == text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| Model | Pair strategy | Pairs |")
    assert rows[1].startswith("| Base model | | | 100.0% [100.0, 100.0] | 33.3% [")
    assert rows[2].startswith("| DPO: `main` | highlights_vs_worst | 10 | 33.3% [")
    # 4 tests shown (2 trained experiments x 2 rates): 20 discordant articles, all one way, p = 2 * 0.5**20
    assert f"-66.7 pp [-83.3, -50.0], Holm p = {4 * 2 * 0.5 ** 20:.3g}: **improved**" in rows[2]
    assert "+0.0 pp [+0.0, +0.0], Holm p = 1: no summary changed" in rows[2]
    assert rows[3].startswith("| DPO: `swap` | minimal_swap | 7 |")
    assert "| 5.0 / 9.0 (100.0%) | 100.0% (60.9%) |" in rows[3]  # pair lengths, reward accuracy, loss drop
    assert "**Holm-adjusted over the 4 tests in this table**" in text
    assert "- `swap`: Length confound" in text


def test_verdicts_are_holm_adjusted_and_say_what_they_could_see(experiments):
    """swap's raw p = 0.03 reads "improved" in its own report; among 4 tests, Holm makes it 0.06."""
    path, files = experiments
    text = build_comparison(files, ["main", "swap", "bvw"], str(path / "comparison.md"))
    swap = next(line for line in text.splitlines() if line.startswith("| DPO: `swap`"))
    mde = mcnemar_mde(30, 12, 0.05 / 4)
    assert mde is not None
    assert f"-23.3 pp [-40.0, -10.0], Holm p = 0.06: no change larger than {100 * mde:.1f} pp" in swap
    # with alpha 0.2 the same p-values pass: the verdict follows report.alpha, not a fixed 0.05
    for f in files:
        m = read_json(f)
        write_json({**m, "alpha": 0.2}, f)
    text = build_comparison(files, ["main", "swap", "bvw"], str(path / "comparison.md"))
    swap = next(line for line in text.splitlines() if line.startswith("| DPO: `swap`"))
    assert "Holm p = 0.06: **improved**" in swap and "family-wise alpha 0.2" in text


def test_an_experiment_without_enough_pairs_is_listed_as_not_trained(experiments):
    path, files = experiments
    text = build_comparison(files, ["main", "swap", "bvw"], str(path / "comparison.md"))
    bvw = next(line for line in text.splitlines() if line.startswith("| DPO: `bvw`"))
    assert bvw.startswith("| DPO: `bvw` | best_vs_worst | 3 | **not trained**: 3 pair(s), fewer than "
                          "pairs.min_pairs = 8; from 30 train articles, strategy best_vs_worst made 4 pair(s) "
                          "(25 article(s): no badness-0 candidate; 1 article(s): no candidate with a hallucination; "
                          "1 pair(s) dropped: below min margin)")
    assert "- `bvw`: not trained: 3 pair(s)" in text


def test_experiments_must_share_the_base_evaluation(experiments):
    path, files = experiments
    other = read_json(files[1])
    other["base"]["entity_rate"] = 0.5
    write_json(other, files[1])
    with pytest.raises(ValueError, match="'swap' was evaluated against another base run than 'main'"):
        build_comparison(files, ["main", "swap", "bvw"], str(path / "comparison.md"))
    assert not (path / "comparison.md").exists()
