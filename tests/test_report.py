"""The report built from small fixture score files: numbers, verdicts, warnings, figures, examples."""

import json

import matplotlib.image
import pandas as pd
import pytest

from faithdpo.io import write_json, write_parquet
from faithdpo.report import build_report, mark

N = 30


def scores(ent, num, summaries):
    return pd.DataFrame({
        "id": [f"a{i}" for i in range(N)], "candidate": 0, "summary": summaries,
        "hallucinated_entities": [["Oslo"] * e for e in ent], "hallucinated_numbers": [["99"] * n for n in num],
        "ent_hallucinations": ent, "num_hallucinations": num,
    })


@pytest.fixture
def report_dir(tmp_path):
    # base: every summary invents a place; DPO fixes 20 of them; numbers unchanged
    base = scores([1] * N, [1] * 10 + [0] * 20, ["Rain in Oslo, 99 mm."] * N)
    dpo = scores([0] * 20 + [1] * 10, [1] * 10 + [0] * 20, ["Rain fell, 99 mm."] * 20 + ["Rain in Oslo, 99 mm."] * 10)
    data = pd.DataFrame({"id": base["id"], "article": "Rain fell in Bergen.", "highlights": "Rain in Bergen ."})
    pairs = pd.DataFrame({"id": ["p"] * 10, "chosen_tokens": [5] * 10, "rejected_tokens": [9] * 10,
                          "chosen_badness": 0, "rejected_badness": [2] * 10})
    history = [{"loss": 0.69 - 0.06 * i, "step": i + 1, "rewards/accuracies": 1.0, "rewards/margins": 0.1 * i,
                "logps/chosen": -10.0 - i, "logps/rejected": -11.0 - 2 * i} for i in range(8)]
    for name, frame in [("base", base), ("dpo", dpo), ("data", data), ("pairs", pairs)]:
        write_parquet(frame, tmp_path / f"{name}.parquet")
    write_json(history, tmp_path / "history.json")
    metrics = build_report(*(str(tmp_path / f"{n}.parquet") for n in ("base", "dpo", "data", "pairs")),
                           str(tmp_path / "history.json"), str(tmp_path / "report.md"), str(tmp_path / "m.json"),
                           str(tmp_path / "figures"), config={"model": {"name": "tiny"}}, n_examples=2)
    return tmp_path, metrics


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
