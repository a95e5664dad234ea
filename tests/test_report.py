"""The report built from small fixture score files: numbers, verdicts, warnings, figures, examples."""

import json
import re
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from conftest import FEWER_NUMBERS, REPORT_N, build_fixture_report, build_untrained_report, fixture_scores
from faithdpo.report import mark, terse_lines
from faithdpo.verdicts import fmt_level, fmt_p, verdict_text


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
    (seed0,) = ent["seeds"]
    assert (ent["base"]["value"], seed0["dpo"]["value"]) == (1.0, pytest.approx(1 / 3))
    assert seed0["delta"]["high"] < 0 and seed0["verdict"] == "improved" and seed0["test"] == "McNemar (exact)"
    assert seed0["p_value"] == pytest.approx(2 * 0.5 ** 20)  # 20 discordant articles, all one way
    assert seed0["p_holm"] == pytest.approx(2 * 2 * 0.5 ** 20)  # Holm over the 2 primary tests
    number = rows["number_rate"]["seeds"][0]
    assert number["verdict"] == "no significant change" and number["p_value"] == 1.0
    report = (path / "report.md").read_text()
    assert "| Entity Hallucination Rate | 0 | 100.0% [100.0, 100.0] | 33.3% [" in report
    assert "- **Entity Hallucination Rate**: **improved** (-66.7 pp [" in report
    assert "- One training seed: one draw of training, not a replicated result" in report
    assert json.loads((path / "m.json").read_text())["comparison"][0]["seeds"][0]["dpo"]["value"] == pytest.approx(1 / 3)


def fixture_values(path, column):
    """A score column of the fixture's base and DPO files, as the report's tests read them."""
    return [pd.read_parquet(path / f"{side}.parquet")[column].to_numpy(dtype=float) for side in ("base", "dpo0")]


def test_p_values_are_those_of_independent_implementations(tmp_path):
    """DPO changes every metric here (numbers too: 7 summaries lose theirs, 1 gains one), so each
    printed p-value must be the exact McNemar (binomial) p-value of the fixture, or, for the counts,
    the exact randomisation p-value of the mean difference (scipy enumerates every swap)."""
    from scipy.stats import binomtest, permutation_test

    metrics = build_fixture_report(tmp_path, FEWER_NUMBERS)
    rows = {r["key"]: r for r in metrics["comparison"]}
    number = rows["number_rate"]["seeds"][0]
    assert (rows["number_rate"]["base"]["value"], number["dpo"]["value"]) == (pytest.approx(10 / 30),
                                                                               pytest.approx(4 / 30))
    assert number["test"] == "McNemar (exact)"
    assert rows["numbers_per_summary"]["seeds"][0]["test"] == "paired randomisation test of the mean"

    def exact_swap_p(column):
        base, dpo = fixture_values(tmp_path, column)
        differ = base != dpo  # articles that do not differ add nothing to any swap
        return permutation_test((dpo[differ], base[differ]), lambda x, y, axis: x.mean(axis) - y.mean(axis),
                                permutation_type="samples", n_resamples=np.inf, vectorized=True).pvalue

    # 20 articles each lose their one hallucinated entity: only "no swap" and "all swapped" are as
    # extreme, so the exact p is 2 / 2**20 (a randomisation test with 2000 swaps reports 1 / 2001)
    base_entities, dpo_entities = fixture_values(tmp_path, "ent_hallucinations")
    assert (base_entities - dpo_entities).tolist() == [1] * 20 + [0] * 10

    report = (tmp_path / "report.md").read_text()
    for key, p, tolerance in [("entity_rate", binomtest(0, 20).pvalue, 1e-9),
                              ("number_rate", binomtest(1, 8).pvalue, 1e-9),
                              ("entities_per_summary", 2 / 2**20, 1 / 2001),
                              ("numbers_per_summary", exact_swap_p("num_hallucinations"), 0.03)]:
        entry = rows[key]["seeds"][0]
        assert entry["p_value"] == pytest.approx(p, abs=tolerance), key
    secondary = rows["numbers_per_summary"]["seeds"][0]
    assert f"| {fmt_p(secondary['p_value'], 0.05)} | {verdict_text(rows['numbers_per_summary'], secondary)} |" in report


def test_alpha_sets_the_verdicts_and_the_interval_wording(tmp_path, monkeypatch):
    """report.alpha sets every verdict and makes every interval, and its label, one at 1 - alpha,
    trained or not; the label is exact at any alpha (97.5%, 99.9%)."""
    from faithdpo import figures
    from faithdpo.stats import mcnemar_mde, mean_interval, paired_rate_interval

    titles = []
    save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: titles.append(fig.get_suptitle()) or save(fig, path))
    for alpha, percent in ((0.05, "95%"), (0.1, "90%"), (0.025, "97.5%")):
        out = tmp_path / f"alpha{alpha}"
        out.mkdir()
        rows = {r["key"]: r for r in build_fixture_report(out, FEWER_NUMBERS, alpha)["comparison"]}
        entity = rows["entity_rate"]["seeds"][0]
        # the power statement of a primary rate is at alpha / 2: Holm's first step over 2 tests
        assert entity["power_change"] == pytest.approx(mcnemar_mde(REPORT_N, 20, alpha / 2))
        base, dpo = fixture_values(out, "num_hallucinations")
        # 7 articles lose their hallucinated number, 1 gains one
        assert (np.sum((base > 0) & (dpo == 0)), np.sum((base == 0) & (dpo > 0))) == (7, 1)
        ci = paired_rate_interval(7, 1, REPORT_N, confidence=1 - alpha)
        number = rows["number_rate"]["seeds"][0]
        assert (number["delta"]["low"], number["delta"]["high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
        report = (out / "report.md").read_text()
        assert f"| Verdict (alpha {alpha:g}) |" in report
        assert f"Brackets, not adjusted: of a model's rate, {percent} bootstrap intervals" in report
        assert f"of a delta, {percent} Tango score intervals" in report
        assert f"Delta [{percent}, unadjusted]" in report and f"| Delta [{percent}] |" in report
        assert f"Hallucination on the validation sample ({percent} paired bootstrap intervals)" in titles
        untrained_out, untrained = build_untrained_report(out, alpha)
        base_rate = {r["key"]: r for r in untrained["comparison"]}["number_rate"]["base"]
        base_ci = mean_interval(base > 0, 1 - alpha, 2000, 0)
        assert (base_rate["low"], base_rate["high"]) == (pytest.approx(base_ci.low), pytest.approx(base_ci.high))
        assert f"Brackets: {percent} bootstrap intervals" in (untrained_out / "report.md").read_text()
        assert f"Hallucination on the validation sample ({percent} bootstrap intervals)" in titles
        # the number rate's p (0.0703) is Holm's second step (x 1): improved at alpha 0.1 only
        number_verdict = "improved" if alpha == 0.1 else "no significant change"
        assert number["p_holm"] == pytest.approx(0.0703125) and number["verdict"] == number_verdict


def test_quality_confounds_and_training_warnings(report_dir):
    path, metrics = report_dir
    assert metrics["quality"]["dpo"][0]["words"] == pytest.approx((20 * 4 + 10 * 5) / 30)
    assert metrics["quality"]["base"]["rouge1"] > 0
    report = (path / "report.md").read_text()
    assert "**Warning:** Length confound: the chosen text is shorter than the rejected one in 100% of pairs" in report
    assert "**Warning:** seed 0: Reward accuracy reached 1.0 by logged step 1 of 8" in report
    assert "**Warning:** seed 0: Chosen log-probabilities fell" in report
    assert "| 0 | 8 | 0.2700 | 60.9% | 100.0% | 0.7000 |" in report


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
    from faithdpo.verdicts import paired_scores

    with pytest.raises(ValueError, match="same validation articles"):
        paired_scores(pd.DataFrame({"id": ["a", "b"]}), pd.DataFrame({"id": ["a", "c"]}))


def test_no_significant_change_says_what_the_data_allow_and_what_the_test_could_see(report_dir):
    """A null names the interval ("consistent with a change from A to B") and, apart, the power;
    it never rules a change out ("no change larger than X")."""
    path, metrics = report_dir
    rows = {r["key"]: r for r in metrics["comparison"]}
    number = rows["number_rate"]["seeds"][0]
    assert number["discordant"] == 0 and number["power_change"] is None
    report = (path / "report.md").read_text()
    assert "no change larger than" not in report
    # a count that no article changed: the bootstrap cannot bound it, and no range is claimed
    numbers = rows["numbers_per_summary"]["seeds"][0]
    assert numbers["differing"] == 0 and (numbers["delta"]["low"], numbers["delta"]["high"]) == (0.0, 0.0)
    assert ("| Hallucinated numbers per summary | 0 | 0.333 [0.167, 0.500] | 0.333 [0.167, 0.500] | +0.000 [+0.000, "
            "+0.000] | 1 | no significant change; 0 articles differ: too few for the bootstrap interval to bound the "
            "change |") in report
    # no article changed, yet 30 articles cannot rule out changes of +-11.4 pp (Tango's interval)
    assert ("| +0.0 pp [-11.4, +11.4] | 1 | no significant change; the data are consistent with a change from -11.4 "
            "to +11.4 pp; no summary changed |") in report


def test_the_printed_detectable_change_has_80_percent_power(tmp_path):
    """The report's "80% power only for changes of X pp" is checked by simulation, with an
    independent McNemar (statsmodels): at X the Holm-level test rejects about 80% of the time, at
    0.8 X clearly less. DPO here fixes 10 of 30 hallucinations and breaks 4: no significant change."""
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    fewer = ([1] * 14 + [0] * 16, [0] * 10 + [1] * 4 + [1] * 4 + [0] * 12)
    metrics = build_fixture_report(tmp_path, fewer)
    row = {r["key"]: r for r in metrics["comparison"]}["number_rate"]
    entry = row["seeds"][0]
    assert entry["verdict"] == "no significant change" and entry["discordant"] == 14
    report = (tmp_path / "report.md").read_text()
    printed = float(re.search(r"Number Hallucination Rate \| 0 \|.*?80% power \(at alpha 0.025\) only for changes of "
                              r"([\d.]+) pp", report).group(1)) / 100
    psi, alpha = 14 / REPORT_N, 0.05 / 2
    rng = np.random.default_rng(3)

    def simulated_power(delta):
        cells = rng.multinomial(REPORT_N, [(psi + delta) / 2, (psi - delta) / 2, 1 - psi], size=20000)[:, :2]
        pairs, counts = np.unique(cells, axis=0, return_counts=True)
        p = [sm_mcnemar([[0, b], [c, 0]], exact=b + c < 25, correction=True).pvalue if b + c else 1.0
             for b, c in pairs]
        return float(np.sum(counts * (np.array(p) < alpha)) / counts.sum())

    assert simulated_power(printed) == pytest.approx(0.8, abs=0.03)
    assert simulated_power(0.8 * printed) < 0.74


def test_interval_and_test_that_disagree_say_so():
    """A paired bootstrap interval can exclude 0 where the exact test does not reject: the row says it."""
    from faithdpo.verdicts import compare

    # 6 of 30 articles lose their hallucinated entity, none gains one: exact p = 0.031 but Holm
    # over 2 tests makes it 0.0625, while the 95% interval of the delta stays below 0
    base = fixture_scores([1] * REPORT_N, [0] * REPORT_N, ["Rain in Oslo."] * REPORT_N)
    dpo = fixture_scores([0] * 6 + [1] * 24, [0] * REPORT_N, ["Rain fell."] * 6 + ["Rain in Oslo."] * 24)
    row = {r["key"]: r for r in compare(base, {0: dpo}, resamples=500)}["entity_rate"]
    entry = row["seeds"][0]
    assert entry["verdict"] == "no significant change" and entry["delta"]["high"] < 0
    assert entry["interval_agrees"] is False
    assert verdict_text(row, entry).endswith("(the interval excludes 0 but the test does not reject: they disagree)")


def test_count_rows_never_read_worse_beside_a_test_that_found_fewer_items():
    """30 articles each lose one hallucinated entity, 5 gain ten: the mean rises (+0.1) while a rank
    test (Wilcoxon, p = 0.008) finds fewer items. The row tests the mean it reports: no verdict of
    a change in either direction."""
    from scipy.stats import wilcoxon

    from faithdpo.verdicts import compare

    n = 200
    ids = [f"a{i}" for i in range(n)]
    base_ent, dpo_ent = [1] * 30 + [0] * (n - 30), [0] * 30 + [10] * 5 + [0] * (n - 35)
    assert wilcoxon(dpo_ent, base_ent).pvalue < 0.01

    def frame(ent):
        return pd.DataFrame({"id": ids, "summary": "Rain.", "entities": [["Oslo"] * e for e in ent],
                             "hallucinated_entities": [["Oslo"] * e for e in ent], "numbers": [[]] * n,
                             "hallucinated_numbers": [[]] * n, "ent_hallucinations": ent, "num_hallucinations": 0,
                             "target_entities": [[]] * n, "kept_entities": [[]] * n, "target_numbers": [[]] * n,
                             "kept_numbers": [[]] * n})

    row = {r["key"]: r for r in compare(frame(base_ent), {0: frame(dpo_ent)})}["entities_per_summary"]
    entry = row["seeds"][0]
    assert entry["delta"]["value"] == pytest.approx(0.1)
    assert entry["p_value"] > 0.2 and entry["verdict"] == "no significant change"


def test_each_seeds_summaries_are_read_by_article_not_by_row(tmp_path):
    """A seed's evaluation file in another row order gives the same numbers, quality included: each
    article's highlights here are its DPO summary, so ROUGE is 1.0 only where they are paired by id."""
    (tmp_path / "reversed").mkdir()
    highlights = ["Rain fell, 99 mm."] * 20 + ["Rain in Oslo, 99 mm."] * 10  # the fixture's DPO summaries
    metrics = build_fixture_report(tmp_path, FEWER_NUMBERS, highlights=highlights)
    again = build_fixture_report(tmp_path / "reversed", FEWER_NUMBERS, reverse_dpo=True, highlights=highlights)
    assert pd.read_parquet(tmp_path / "reversed" / "dpo0.parquet")["id"].iloc[0] == f"a{REPORT_N - 1}"
    assert again["comparison"] == metrics["comparison"]
    assert again["quality"]["dpo"][0]["rouge1"] == metrics["quality"]["dpo"][0]["rouge1"] == pytest.approx(1.0)


def test_p_values_never_round_across_alpha():
    assert fmt_p(0.04996, 0.05) == "0.04996" and float(fmt_p(0.04996, 0.05)) < 0.05
    assert fmt_p(0.050004, 0.05) == "0.05"  # not below alpha, and "0.05" is not either
    assert fmt_p(0.0123, 0.05) == "0.012" and fmt_p(1.0, 0.05) == "1"
    assert fmt_level(0.025) == "97.5%" and fmt_level(0.001) == "99.9%" and fmt_level(0.05) == "95%"


def test_replicates_give_each_seed_and_what_they_agree_on(tmp_path, monkeypatch):
    """Three training seeds: a row per seed, the mean delta with its spread, k of N, the pooled
    delta with its assumptions, a Holm family of 2 rates x 3 seeds, and every seed in the figures."""
    from faithdpo import figures
    from faithdpo.stats import holm, paired_bootstrap

    shown, save = {}, figures._save

    def legends(fig, path):
        shown[Path(path).stem] = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
        save(fig, path)

    monkeypatch.setattr(figures, "_save", legends)
    weaker = fixture_scores([0] * 12 + [1] * 18, [1] * 10 + [0] * 20, ["Rain fell, 99 mm."] * 12 + ["Rain in Oslo, 99 mm."] * 18)
    none = fixture_scores([0] * 3 + [1] * 27, [1] * 10 + [0] * 20, ["Rain fell, 99 mm."] * 3 + ["Rain in Oslo, 99 mm."] * 27)
    metrics = build_fixture_report(tmp_path, extra_seeds=[(4, weaker), (7, none)])
    assert metrics["seeds"] == [0, 4, 7]
    rows = {r["key"]: r for r in metrics["comparison"]}
    entity = rows["entity_rate"]
    deltas = [e["delta"]["value"] for e in entity["seeds"]]
    assert deltas == pytest.approx([-20 / 30, -12 / 30, -3 / 30])
    assert entity["across"]["mean"] == pytest.approx(np.mean(deltas))
    assert entity["across"]["sd"] == pytest.approx(np.std(deltas, ddof=1))
    assert entity["across"]["verdicts"] == {"improved": 2, "no significant change": 1}
    primary = [e for key in ("entity_rate", "number_rate") for e in rows[key]["seeds"]]
    assert [e["p_holm"] for e in primary] == pytest.approx(holm([e["p_value"] for e in primary]))
    assert all("p_holm" not in e for r in metrics["comparison"] if not r["primary"] for e in r["seeds"])
    report = (tmp_path / "report.md").read_text()
    assert "### Primary: the hallucination rates, Holm-adjusted over 6 tests" in report
    assert "| Entity Hallucination Rate | 4 | 100.0% [100.0, 100.0] | 60.0% [" in report
    assert "- **Entity Hallucination Rate**: improved in 2 of 3 seeds, no significant change in 1 (Holm over 6 tests)" in report
    assert (f"| Entity Hallucination Rate | all 3 | | | mean {100 * np.mean(deltas):+.1f} pp (SD "
            f"{100 * np.std(deltas, ddof=1):.1f}; -66.7 to -10.0) | | improved in 2 of 3 seeds") in report
    pooled = paired_bootstrap(np.ones(REPORT_N), np.mean([d["ent_hallucinations"] > 0 for d in (
        pd.read_parquet(tmp_path / f"dpo{s}.parquet") for s in (0, 4, 7))], axis=0), resamples=2000, seed=0)["delta"]
    assert f"- Pooled over the 3 seeds, Entity Hallucination Rate: -38.9 pp [{100 * pooled.low:+.1f}, " \
           f"{100 * pooled.high:+.1f}]" in report
    assert "says nothing of a new one. With 3 seeds the between-seed spread has 2 degrees of freedom" in report
    assert "| | Base | Post-DPO, seed 0 | Post-DPO, seed 4 | Post-DPO, seed 7 |" in report
    for figure in ("rates", "training"):
        assert {"seed 0", "seed 4", "seed 7"} <= {t.split(", ")[-1] for t in shown[figure]}, figure


def test_a_rate_that_falls_with_recall_target_says_less(tmp_path):
    """DPO drops the supported "Bergen" along with the invented "Oslo": fewer hallucinations, and
    fewer of the highlights' entities kept. The report says the model may be saying less; a small
    fall of recall-target is said without the flag, and a recall-target that holds is said too."""
    from faithdpo.verdicts import compare

    kept_base = [True] * REPORT_N
    base = fixture_scores([1] * REPORT_N, [0] * REPORT_N, ["Rain in Oslo and Bergen."] * REPORT_N, kept=kept_base)
    terse = fixture_scores([0] * 20 + [1] * 10, [0] * REPORT_N, ["Rain fell."] * 20 + ["Rain in Oslo and Bergen."] * 10,
                           kept=[False] * 20 + [True] * 10)
    faithful = fixture_scores([0] * 20 + [1] * 10, [0] * REPORT_N, ["Rain in Bergen."] * 20 + ["Rain in Oslo and Bergen."] * 10,
                              kept=kept_base)
    slightly = fixture_scores([0] * 20 + [1] * 10, [0] * REPORT_N, ["Rain in Bergen."] * 20 + ["Rain in Oslo and Bergen."] * 10,
                              kept=[False] + [True] * 29)
    fell = "The entity hallucination rate fell (improved in 1 of 1 seed; -66.7 pp)"
    for dpo, said in ((slightly, f"{fell}; entity recall-target fell on average, not clearly (-3.3 pp; significantly "
                                 "lower, unadjusted, in 0 of 1 seed)."),
                      (terse, f"**Says less?** {fell} and entity recall-target fell too (-66.7 pp; significantly "
                              "lower, unadjusted, in 1 of 1 seed)"),
                      (faithful, f"{fell}; entity recall-target did not fall on average (+0.0 pp; significantly lower, "
                                 "unadjusted, in 0 of 1 seed): the fall is not explained by keeping fewer of the "
                                 "highlights' entities.")):
        rows = compare(base, {0: dpo}, resamples=500)
        recall = {r["key"]: r for r in rows}["entity_recall_target"]["seeds"][0]
        assert recall["dpo"]["value"] == pytest.approx({id(terse): 1 / 3, id(slightly): 29 / 30}.get(id(dpo), 1.0))
        assert any(line.startswith(said) for line in terse_lines(rows))
    # a fall that is no significant change in any seed is not announced as one
    two_fewer = fixture_scores([0] * 2 + [1] * 28, [0] * REPORT_N,
                               ["Rain in Bergen."] * 2 + ["Rain in Oslo and Bergen."] * 28, kept=kept_base)
    rows = compare(base, {0: two_fewer}, resamples=500)
    assert {r["key"]: r for r in rows}["entity_rate"]["seeds"][0]["verdict"] == "no significant change"
    assert terse_lines(rows) == []


def test_an_experiment_without_enough_pairs_reports_why_and_the_base_alone(untrained_report_dir):
    out, metrics = untrained_report_dir
    assert metrics["trained"] is False and metrics["seeds"] == []
    assert metrics["comparison"][0]["base"]["value"] == 1.0 and "seeds" not in metrics["comparison"][0]
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
    from faithdpo.report import rates_section
    from faithdpo.verdicts import compare

    base = fixture_scores([1] * REPORT_N, [0] * REPORT_N, ["Rain in Oslo."] * REPORT_N)
    dpo = fixture_scores([0] * 20 + [1] * 10, [0] * REPORT_N,
                         [""] * 10 + ["..."] * 5 + ["rain rain rain rain rain"] * 5 + ["Rain in Oslo."] * 10)
    rows = {r["key"]: r for r in compare(base, {0: dpo}, resamples=200)}
    assert rows["entity_rate"]["seeds"][0]["verdict"] == "improved"
    failures = rows["failure_rate"]
    assert (failures["base"]["value"], failures["seeds"][0]["dpo"]["value"]) == (0.0, pytest.approx(2 / 3))
    assert failures["seeds"][0]["verdict"] == "worse"
    both = rows["hallucination_or_failure_rate"]
    assert (both["base"]["value"], both["seeds"][0]["dpo"]["value"]) == (1.0, 1.0)
    table = "\n".join(rates_section({"alpha": 0.05, "trained": True, "resamples": 200, "seeds": [0],
                                     "comparison": list(rows.values())}))
    assert "| Failed summaries (empty, punctuation only, a loop) | 0 | 0.0% [0.0, 0.0] | 66.7% [" in table


def test_the_report_counts_chosen_sides_from_the_cut_tail():
    from faithdpo.pairs import selection_summary
    from faithdpo.report import selection_section

    sel = selection_summary("highlights_vs_worst", 10, 10, {}, {"chosen_from_cut_tail": 3}, 7, 2)
    assert "| Dropped: chosen from cut tail | 3 |" in selection_section(sel)
    sel = {**selection_summary("highlights_vs_worst", 10, 10, {}, {}, 10, 2),
           "chosen_from_cut_tail": {"pairs": 3, "action": "keep"}}
    assert any(line.startswith("| Kept (`pairs.on_cut_tail: keep`)") and line.endswith("| 3 |")
               for line in selection_section(sel))


def test_the_checker_joins_the_primary_family_and_meets_regex_ner_in_a_table(tmp_path):
    from conftest import REPORT_N, build_fixture_report

    # base: every summary invents "Oslo" (regex + NER flag all 30); the checker calls 25 of them
    # unsupported. DPO fixes 20 (regex + NER), and the checker agrees on those 20 but flags 3
    # clean ones, as a role swap would be.
    base_support = [0.1] * 25 + [0.9] * 5
    dpo_support = [0.9] * 17 + [0.2] * 3 + [0.1] * 10
    metrics = build_fixture_report(tmp_path, supports=[base_support, dpo_support], threshold=0.5)
    rows = {r["key"]: r for r in metrics["comparison"]}
    assert rows["checker_unsupported_rate"]["primary"] and rows["checker_support"]["primary"]
    # Holm over 4 tests: two rates, the checker's share and its mean support
    assert all(len(r["seeds"]) == 1 for r in rows.values())
    base_rate = rows["checker_unsupported_rate"]["base"]["value"]
    assert base_rate == pytest.approx(25 / REPORT_N)
    seed = rows["checker_unsupported_rate"]["seeds"][0]
    assert seed["dpo"]["value"] == pytest.approx(13 / REPORT_N) and seed["discordant"] == 17 + 5
    support = rows["checker_support"]
    assert support["base"]["value"] == pytest.approx(sum(base_support) / REPORT_N)
    assert support["seeds"][0]["delta"]["value"] == pytest.approx((sum(dpo_support) - sum(base_support)) / REPORT_N)
    assert support["seeds"][0]["verdict"] == "improved"  # higher support is better
    table = metrics["checker"]["table"]
    # 60 summaries. Base: 25 both, 5 regex + NER only. DPO: the 10 still with Oslo both; the first 10
    # keep a hallucinated number (the fixture's SAME_NUMBERS), regex + NER only; 3 checker only; 7 neither
    assert table == {"both": 35, "regex_only": 15, "checker_only": 3, "neither": 7}
    assert metrics["checker"]["kappa_low"] <= metrics["checker"]["kappa"] <= metrics["checker"]["kappa_high"]
    report = (tmp_path / "report.md").read_text()
    assert "### Primary: the hallucination rates and the checker, Holm-adjusted over 4 tests" in report
    assert "| Regex + NER: flagged | 35 | 15 |" in report and "| Regex + NER: clean | 3 | 7 |" in report
    assert "or in the reference highlights" in report.split("## Second opinion")[1].split("###")[0]
    examples = metrics["checker"]["examples"]
    assert [e["support"] for e in examples["checker_only"]] == [0.2, 0.2]  # lowest support first, n_examples 2
    assert examples["regex_only"][0]["support"] == 0.9 and examples["regex_only"][0]["items"]
