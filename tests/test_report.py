"""The report built from small fixture score files: numbers, verdicts, warnings, figures, examples."""

import json

import matplotlib.image
import pandas as pd
import pytest

from conftest import FEWER_NUMBERS, REPORT_N, build_fixture_report, build_untrained_report
from faithdpo.report import mark

def test_bad_rows_and_over_budget_articles_are_counted(report_dir):
    path, metrics = report_dir
    assert metrics["data"]["train"]["bad_rows"] == {"duplicate_id": 2, "empty_or_non_string_article": 1}
    assert metrics["data"]["validation"]["truncated"] == 2
    report = (path / "report.md").read_text()
    assert "| | train | validation |" in report
    assert "| Bad rows left out: duplicate id | 2 | 0 |" in report
    assert "| Bad rows left out: empty or non string article | 1 | 0 |" in report
    assert "| Bad rows left out: empty or non string highlights | 0 | 4 |" in report
    assert "| Articles over the prompt budget, truncated | 0 | 2 |" in report
    assert "| Articles over the prompt budget, left out | 0 | 0 |" in report


def test_articles_left_out_over_the_budget_are_counted(tmp_path):
    """Under prompt.over_budget: skip the prompts file lacks the articles over the budget: the
    data checks count them as the sample (stats) minus the prompts, split by split."""
    from conftest import write_split_checks
    from faithdpo.report import data_checks, data_section

    ids = [f"a{i}" for i in range(REPORT_N)]
    files = [write_split_checks(tmp_path, "train", 90, {}, ids[3:]), write_split_checks(tmp_path, "validation", 90, {}, ids)]
    checks = data_checks([stats for stats, _ in files], [prompts for _, prompts in files])
    assert [c["over_budget_skipped"] for c in checks.values()] == [3, 0]
    section = data_section(checks, "skip")
    assert "| Articles over the prompt budget, left out | 3 | 0 |" in section
    assert "| Articles over the prompt budget, truncated | 0 | 0 |" in section
    assert "Bad rows follow `data.on_bad_row`, over-long articles `prompt.over_budget` (here: skip)." in section


def test_rates_intervals_tests_and_verdicts(report_dir):
    path, metrics = report_dir
    rows = {r["key"]: r for r in metrics["comparison"]}
    ent = rows["entity_rate"]
    assert (ent["base"]["value"], ent["dpo"]["value"]) == (1.0, pytest.approx(1 / 3))
    assert ent["delta"]["high"] < 0 and ent["verdict"] == "improved" and ent["test"] == "McNemar (exact)"
    assert ent["p_value"] == pytest.approx(2 * 0.5 ** 20)  # 20 discordant articles, all one way
    assert rows["number_rate"]["verdict"] == "no significant change" and rows["number_rate"]["p_value"] == 1.0
    report = (path / "report.md").read_text()
    assert "| Entity Hallucination Rate | 100.0% [100.0, 100.0] | 33.3% [" in report
    assert "- **Entity Hallucination Rate**: improved (-66.7 pp [" in report
    assert json.loads((path / "m.json").read_text())["dpo"]["entity_rate"] == pytest.approx(1 / 3)


def fixture_values(path, column):
    """A score column of the fixture's base and DPO files, as the report's tests read them."""
    return [pd.read_parquet(path / f"{side}.parquet")[column].to_numpy(dtype=float) for side in ("base", "dpo")]


def test_p_values_are_those_scipy_computes_for_the_fixture(tmp_path):
    """DPO changes every metric here (numbers too: 7 summaries lose theirs, 1 gains one), so each
    printed p-value must be the exact McNemar (binomial) or Wilcoxon p-value of the fixture."""
    from scipy.stats import binomtest, wilcoxon

    metrics = build_fixture_report(tmp_path, FEWER_NUMBERS)
    rows = {r["key"]: r for r in metrics["comparison"]}
    assert (rows["number_rate"]["base"]["value"], rows["number_rate"]["dpo"]["value"]) == (
        pytest.approx(10 / 30), pytest.approx(4 / 30))
    assert (rows["number_rate"]["test"], rows["numbers_per_summary"]["test"]) == ("McNemar (exact)",
                                                                                  "Wilcoxon signed-rank")
    expected = {"entity_rate": binomtest(0, 20).pvalue, "number_rate": binomtest(1, 8).pvalue,
                "entities_per_summary": wilcoxon(*fixture_values(tmp_path, "ent_hallucinations")[::-1]).pvalue,
                "numbers_per_summary": wilcoxon(*fixture_values(tmp_path, "num_hallucinations")[::-1]).pvalue}
    report = (tmp_path / "report.md").read_text()
    for key, p in expected.items():
        assert rows[key]["p_value"] == pytest.approx(p), key
        assert f"- **{rows[key]['label']}**: " in report and f"p = {p:.3g})" in report, key
        assert f"| {p:.3g} | {rows[key]['verdict']}" in report, key


def test_alpha_sets_the_verdicts_and_the_interval_wording(tmp_path, monkeypatch):
    """The number rows' p-values (0.070, 0.057) lie between 0.05 and 0.1: report.alpha 0.1 turns
    them into improvements and makes every interval, and its wording, a 90% one, trained or not."""
    from faithdpo import figures
    from faithdpo.stats import mcnemar_mde, mean_interval, paired_bootstrap

    titles = []
    save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: titles.append(fig.get_suptitle()) or save(fig, path))
    for alpha, number_verdict, percent in ((0.05, "no significant change", "95%"), (0.1, "improved", "90%")):
        out = tmp_path / f"alpha{alpha}"
        out.mkdir()
        rows = {r["key"]: r for r in build_fixture_report(out, FEWER_NUMBERS, alpha)["comparison"]}
        assert rows["number_rate"]["verdict"] == rows["numbers_per_summary"]["verdict"] == number_verdict
        assert rows["entity_rate"]["mde"] == pytest.approx(mcnemar_mde(REPORT_N, 20, alpha))
        base, dpo = fixture_values(out, "num_hallucinations")
        ci = paired_bootstrap(base > 0, dpo > 0, confidence=1 - alpha, resamples=2000, seed=0)
        assert (rows["number_rate"]["delta"]["low"], rows["number_rate"]["delta"]["high"]) == (
            pytest.approx(ci["delta"].low), pytest.approx(ci["delta"].high))
        report = (out / "report.md").read_text()
        assert f"| Verdict (alpha {alpha:g}) |" in report
        assert f"Brackets: {percent} paired bootstrap intervals" in report
        assert f"- **Number Hallucination Rate**: {number_verdict}" in report
        assert f"Hallucination on the validation sample ({percent} paired bootstrap intervals)" in titles
        untrained_out, untrained = build_untrained_report(out, alpha)
        base_rate = {r["key"]: r for r in untrained["comparison"]}["number_rate"]["base"]
        base_ci = mean_interval(base > 0, 1 - alpha, 2000, 0)
        assert (base_rate["low"], base_rate["high"]) == (pytest.approx(base_ci.low), pytest.approx(base_ci.high))
        assert f"Brackets: {percent} bootstrap intervals" in (untrained_out / "report.md").read_text()
        assert f"Hallucination on the validation sample ({percent} bootstrap intervals)" in titles
    assert rows["number_rate"]["p_value"] == pytest.approx(0.0703125)  # between the two alphas


def test_quality_confounds_and_training_warnings(report_dir):
    path, metrics = report_dir
    assert metrics["quality"]["dpo"]["words"] == pytest.approx((20 * 4 + 10 * 5) / 30)
    assert metrics["quality"]["base"]["rouge1"] > 0
    report = (path / "report.md").read_text()
    assert "**Warning:** Length confound: the chosen text is shorter than the rejected one in 100% of pairs" in report
    assert "**Warning:** Reward accuracy reached 1.0 by logged step 1 of 8" in report
    assert "**Warning:** Chosen log-probabilities fell" in report
    assert "| DPO training loss (final) | 0.2700 |" in report


def test_figures_are_real_pictures_linked_from_the_report(report_dir):
    path, _ = report_dir
    report = (path / "report.md").read_text()
    for name in ("rates", "training", "pair_lengths"):
        assert f"(figures/{name}.png)" in report
        image = matplotlib.image.imread(path / "figures" / f"{name}.png")
        assert image.shape[0] > 300 and image.shape[1] > 600  # rendered, not an empty canvas
        assert image[..., :3].std() > 0.05


def test_examples_mark_the_hallucinated_spans(report_dir):
    path, _ = report_dir
    report = (path / "report.md").read_text()
    assert "### DPO removed a hallucination" in report
    assert "(removed: Oslo)" in report and "- Base: Rain in **Oslo**, **99** mm." in report
    assert "### DPO introduced a hallucination\n\nNone in this sample." in report


def test_mark_bolds_whole_spans_only():
    assert mark("In 2015 and 15 days", ["15"]) == "In 2015 and **15** days"
    assert mark("Paris and Paris", ["Paris"]) == "**Paris** and **Paris**"


def test_mismatched_evaluations_are_refused(tmp_path):
    from faithdpo.report import paired_scores

    with pytest.raises(ValueError, match="same validation articles"):
        paired_scores(pd.DataFrame({"id": ["a", "b"]}), pd.DataFrame({"id": ["a", "c"]}))


def test_no_significant_change_says_what_the_test_could_have_seen(report_dir):
    """The number rate did not move: the verdict names the change it could not have missed, or
    says that no summary changed; the entity rate's 20 discordant articles give a real bound."""
    path, metrics = report_dir
    rows = {r["key"]: r for r in metrics["comparison"]}
    assert rows["number_rate"]["discordant"] == 0 and rows["number_rate"]["mde"] is None
    assert rows["entity_rate"]["discordant"] == 20
    assert 0 < rows["entity_rate"]["mde"] <= 20 / 30
    report = (path / "report.md").read_text()
    assert "| 1 | no significant change: no summary changed |" in report
    assert "smallest change in the rate that McNemar's test would detect with 80% power" in report


def test_an_experiment_without_enough_pairs_reports_why_and_the_base_alone(untrained_report_dir):
    out, metrics = untrained_report_dir
    assert metrics["trained"] is False and metrics["dpo"] is None
    assert metrics["comparison"][0]["base"]["value"] == 1.0 and "dpo" not in metrics["comparison"][0]
    report = (out / "report.md").read_text()
    assert "**Not trained**: 3 pair(s), fewer than pairs.min_pairs = 8" in report
    assert "| No pair: no badness-0 candidate | 25 |" in report
    assert "| Dropped: below min margin | 1 |" in report
    assert "| Pairs kept (`pairs.min_pairs` = 8) | 3 |" in report
    assert "| Entity Hallucination Rate | 100.0% [100.0, 100.0] |" in report
    assert "## DPO training" not in report and "## Examples" not in report and "Post-DPO" not in report
    for name in ("rates", "training", "pair_lengths"):
        assert matplotlib.image.imread(out / "figures" / f"{name}.png")[..., :3].std() > 0.01


def test_failed_summaries_count_as_failures_never_as_clean():
    """DPO that answers 20 of 30 articles with "", "..." or a loop hallucinates less, and fails:
    its own row shows the failures, and the combined row does not count them as clean."""
    from faithdpo.report import compare, paired_scores, rates_section

    from conftest import REPORT_N, fixture_scores

    base = fixture_scores([1] * REPORT_N, [0] * REPORT_N, ["Rain in Oslo."] * REPORT_N)
    dpo = fixture_scores([0] * 20 + [1] * 10, [0] * REPORT_N,
                         [""] * 10 + ["..."] * 5 + ["rain rain rain rain rain"] * 5 + ["Rain in Oslo."] * 10)
    rows = {r["key"]: r for r in compare(paired_scores(base, dpo), resamples=200)}
    assert rows["entity_rate"]["verdict"] == "improved"
    assert (rows["failure_rate"]["base"]["value"], rows["failure_rate"]["dpo"]["value"]) == (0.0, pytest.approx(2 / 3))
    assert rows["failure_rate"]["verdict"] == "worse"
    both = rows["hallucination_or_failure_rate"]
    assert (both["base"]["value"], both["dpo"]["value"]) == (1.0, 1.0)
    table = "\n".join(rates_section({"alpha": 0.05, "trained": True, "resamples": 200, "comparison": list(rows.values())}))
    assert "| Failed summaries (empty, punctuation only, a loop) | 0.0% [0.0, 0.0] | 66.7% [" in table


def test_the_report_counts_chosen_sides_from_the_cut_tail():
    from faithdpo.pairs import selection_summary
    from faithdpo.report import selection_section

    sel = selection_summary("highlights_vs_worst", 10, 10, {}, {"chosen_from_cut_tail": 3}, 7, 2)
    assert "| Dropped: chosen from cut tail | 3 |" in selection_section(sel)
    sel = {**selection_summary("highlights_vs_worst", 10, 10, {}, {}, 10, 2),
           "chosen_from_cut_tail": {"pairs": 3, "action": "keep"}}
    assert any(line.startswith("| Kept (`pairs.on_cut_tail: keep`)") and line.endswith("| 3 |")
               for line in selection_section(sel))
