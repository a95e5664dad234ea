"""The comparison table, built from the metrics of several experiments' reports."""

import copy
import math

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
            entry = row["seeds"][0]
            entry["dpo"]["value"], entry["p_value"], entry["discordant"] = 0.1, 0.03, 12
            entry["delta"] = {"value": -0.233, "low": -0.4, "high": -0.1}
    files = [path / "main.json", path / "swap.json", untrained_report_dir[0] / "m.json"]
    write_json({**main, "pairs_config": {"strategy": "highlights_vs_worst"}}, files[0])
    write_json(other, files[1])
    return path, [str(f) for f in files]


def table_rows(text, heading):
    """The rows of the table under ``heading``."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ")]


def test_one_row_for_the_base_and_one_per_experiment(experiments):
    path, files = experiments
    text = build_comparison(files, ["main", "swap", "bvw"], str(path / "comparison.md"))
    assert (path / "comparison.md").read_text() == text
    rows = table_rows(text, "## Primary: the hallucination rates")
    assert rows[0].startswith("| Model | Pair strategy | Pairs | Seeds |")
    assert rows[1].startswith("| Base model | | | | 100.0% [100.0, 100.0] | 33.3% [")
    assert rows[2].startswith("| DPO: `main` | highlights_vs_worst | 10 | 0 | 33.3% [")
    # 4 tests shown (2 trained experiments x 2 rates): 20 discordant articles, all one way, p = 2 * 0.5**20
    assert f"-66.7 pp [-80.8, -47.7], Holm p = {4 * 2 * 0.5 ** 20:.2g}: **improved**" in rows[2]  # Tango: 20 of 30 changed
    assert "+0.0 pp [-11.4, +11.4], Holm p = 1: no significant change; the data are consistent with a change from " \
           "-11.4 to +11.4 pp; no summary changed" in rows[2]
    assert rows[3].startswith("| DPO: `swap` | minimal_swap | 7 | 0 |")
    quality = table_rows(text, "## Quality and what the pairs could teach")
    assert quality[3].startswith("| DPO: `swap` |") and quality[3].endswith("| 5.0 / 9.0 (100.0%) | 100.0% (60.9%) |")
    assert "**Holm-adjusted over the 4 tests of this table**" in text
    assert "- `swap`: Length confound" in text
    terse = table_rows(text, "## Secondary, unadjusted: faithful or terse")
    assert terse[0] == ("| Model | Entity precision-source | Entity recall-target | Number precision-source | "
                        "Number recall-target |")
    assert terse[2].startswith("| DPO: `main` | +25.0 pp [")


def test_verdicts_are_holm_adjusted_and_say_what_they_could_see(experiments):
    """swap's raw p = 0.03 reads "improved" in its own report; among 4 tests, Holm makes it 0.06."""
    path, files = experiments
    text = build_comparison(files, ["main", "swap", "bvw"], str(path / "comparison.md"))
    swap = next(line for line in text.splitlines() if line.startswith("| DPO: `swap`"))
    power = mcnemar_mde(30, 12, 0.05 / 4)
    assert power is not None
    printed = math.ceil(1000 * power) / 10  # rounded up: the printed change has at least 80% power
    assert (f"-23.3 pp [-40.0, -10.0], Holm p = 0.06: no significant change; the data are consistent with a change "
            f"from -40.0 to -10.0 pp; 80% power (at alpha 0.0125) only for changes of {printed:.1f} pp or more (the "
            "interval excludes 0 but the test does not reject: they disagree)") in swap
    assert "no change larger than" not in text and "four metrics" not in text
    # with alpha 0.2 the same p-values pass: the verdict follows report.alpha, not a fixed 0.05
    for f in files:
        m = read_json(f)
        write_json({**m, "alpha": 0.2}, f)
    text = build_comparison(files, ["main", "swap", "bvw"], str(path / "comparison.md"))
    swap = next(line for line in text.splitlines() if line.startswith("| DPO: `swap`"))
    assert "Holm p = 0.06: **improved**" in swap and "family-wise alpha 0.2" in text
    assert "Brackets, not adjusted: 80% bootstrap intervals of a rate, 80% Tango score intervals of a delta" in text


def test_replicated_experiments_show_the_mean_spread_and_k_of_n(tmp_path):
    """An experiment trained with 3 seeds: its cell gives the mean rate, the mean delta with its
    spread and how many seeds reach each verdict, Holm-adjusted with every other test shown."""
    from conftest import build_fixture_report, fixture_scores

    weaker = fixture_scores([0] * 12 + [1] * 18, [1] * 10 + [0] * 20, ["Rain fell."] * 12 + ["Rain in Oslo."] * 18)
    none = fixture_scores([0] * 3 + [1] * 27, [1] * 10 + [0] * 20, ["Rain fell."] * 3 + ["Rain in Oslo."] * 27)
    build_fixture_report(tmp_path, extra_seeds=[(4, weaker), (7, none)])
    text = build_comparison([str(tmp_path / "m.json")], ["main"], str(tmp_path / "comparison.md"))
    main = next(line for line in text.splitlines() if line.startswith("| DPO: `main`"))
    assert main.startswith("| DPO: `main` |  | 10 | 0, 4, 7 | ")  # the fixture names no strategy
    assert "61.1% (mean)<br>delta mean -38.9 pp (SD 28.3; -66.7 to -10.0)<br>improved in 2 of 3 seeds, " \
           "no significant change in 1" in main
    assert "**Holm-adjusted over the 6 tests of this table**" in text


def test_the_comparison_leaves_the_reports_metrics_as_they_were(experiments):
    """Re-deciding the verdicts over the comparison's family works on copies."""
    from faithdpo.comparison import decided_rows

    _, files = experiments
    metrics = [read_json(f) for f in files]
    before = copy.deepcopy(metrics)
    rows, family = decided_rows(["main", "swap", "bvw"], metrics)
    assert family == 4 and rows["swap"]["number_rate"]["seeds"][0]["p_holm"] == pytest.approx(0.06)
    assert metrics == before


def test_nothing_trained_nothing_tested(untrained_report_dir):
    out, _ = untrained_report_dir
    text = build_comparison([str(out / "m.json")], ["bvw"], str(out / "comparison.md"))
    assert "No experiment was trained: nothing is tested." in text and "Holm" not in text


def test_an_experiment_without_enough_pairs_is_listed_as_not_trained(experiments):
    path, files = experiments
    text = build_comparison(files, ["main", "swap", "bvw"], str(path / "comparison.md"))
    bvw = next(line for line in text.splitlines() if line.startswith("| DPO: `bvw`"))
    assert bvw.startswith("| DPO: `bvw` | best_vs_worst | 3 | | **not trained**: 3 pair(s), fewer than "
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
