"""Report stage: every experiment beside the base model, from the experiments' metrics.json files.

One row per model. The primary table gives the hallucination rates: for each DPO model the
mean delta over its training seeds, their spread and how many seeds reach each verdict, the
verdicts Holm-adjusted over every seed's test of every experiment shown. Then the quality and
the confounds of the pairs each experiment trained on, with the trainer's reward accuracy,
kept in view because it is not the target metric; and the secondary, unadjusted metrics that
tell "hallucinates less" from "says less". An experiment with too few pairs is listed as not
trained, with the reason.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pandas as pd

from faithdpo.cost import cost_section, read_cost_tables, read_costs
from faithdpo.io import read_json, write_text
from faithdpo.verdicts import (
    adjust, agreement_text, decide_given, fmt_alpha, fmt_delta, fmt_level, fmt_p, fmt_pct, fmt_value, spread_text,
    verdict_text,
)

log = logging.getLogger(__name__)

TERSE = ("entity_precision_source", "entity_recall_target", "number_precision_source", "number_recall_target")


def decided_rows(names: list[str], metrics: list[dict]) -> tuple[dict[str, dict[str, dict]], int]:
    """Each trained experiment's rows by key, with the primary family Holm-adjusted over every
    experiment shown (not each report's own family); the family's size."""
    trained = {name: copy.deepcopy(m["comparison"]) for name, m in zip(names, metrics) if m["trained"]}
    size = adjust(list(trained.values()))
    base = metrics[0]
    for rows in trained.values():
        decide_given(rows, base["alpha"], base["n_validation"], size)
    return {name: {r["key"]: r for r in rows} for name, rows in trained.items()}, size


def _mean_dpo(row: dict) -> float | None:
    values = [e["dpo"]["value"] for e in row["seeds"] if e["dpo"]["value"] is not None]
    return float(np.mean(values)) if values else None


def _rate_cell(row: dict, alpha: float) -> str:
    """A DPO model's primary metric: with several seeds the mean, the spread of the deltas and k
    of N; with one seed its value, delta, Holm p-value and verdict."""
    pct = row["pct"]
    if row["across"]["seeds"] > 1:
        mean = _mean_dpo(row)
        shown = fmt_pct(mean) if pct else f"{mean:.3f}"
        return f"{shown} (mean)<br>delta {spread_text(row['across'], pct)}<br>{agreement_text(row['across'])}"
    entry = row["seeds"][0]
    return (f"{fmt_value(entry['dpo'], pct)}<br>{fmt_delta(entry['delta'], pct)}, Holm p = "
            f"{fmt_p(entry['p_holm'], alpha)}: {verdict_text(row, entry)}")


def _secondary_cell(row: dict, alpha: float) -> str:
    if row["across"]["seeds"] > 1:
        return f"{spread_text(row['across'], row['pct'])}<br>{agreement_text(row['across'])}"
    entry = row["seeds"][0]
    p = entry["p_value"]
    return (f"{fmt_delta(entry['delta'], row['pct'])}" + ("" if p is None else f", p = {fmt_p(p, alpha)}")
            + f": {verdict_text(row, entry)}")


def _not_trained(m: dict) -> str:
    return f"**not trained**: {m['selection']['reason']}"


def render_comparison(names: list[str], metrics: list[dict], reference: str = "article_and_highlights") -> str:
    """The comparison as Markdown (one row for the base model, one per experiment, per table);
    ``reference``: scoring.reference, what supported the summaries' items."""
    base = metrics[0]
    for name, m in zip(names, metrics):
        if m["base"] != base["base"]:
            raise ValueError(f"experiment {name!r} was evaluated against another base run than {names[0]!r}")
    rows, family = decided_rows(names, metrics)
    alpha, level = base["alpha"], fmt_level(base["alpha"])
    first = {r["key"]: r for r in base["comparison"]}
    primary = [r["key"] for r in base["comparison"] if r["primary"]]
    dpo_label = {name: f"DPO: `{name}`" for name in names}
    lines = [
        "# faithdpo: experiments compared",
        "",
        f"{base['n_validation']} validation articles, the same for every model. Each DPO model is trained once per "
        "training seed and compared with the base model on the same articles.",
        "",
        "## Primary: the hallucination rates" + (" and the checker" if len(primary) > 2 else ""),
        "",
        "| Model | Pair strategy | Pairs | Seeds | " + " | ".join(first[k]["label"] for k in primary) + " |",
        "|---|---|---:|---|" + "---|" * len(primary),
        "| Base model | | | | " + " | ".join(fmt_value(first[k]["base"], first[k]["pct"]) for k in primary) + " |",
    ]
    for name, m in zip(names, metrics):
        strategy, pairs = m["pairs_config"].get("strategy", ""), m["pairs"]["pairs"]
        if not m["trained"]:
            lines.append(f"| {dpo_label[name]} | {strategy} | {pairs} | | {_not_trained(m)} |" + " |" * (len(primary) - 1))
            continue
        r = rows[name]
        lines.append(f"| {dpo_label[name]} | {strategy} | {pairs} | {', '.join(map(str, m['seeds']))} | "
                     + " | ".join(_rate_cell(r[k], alpha) for k in primary) + " |")
    tested = (
        "Rates: the share of summaries with at least one hallucinated entity (number). Each seed's test is McNemar's "
        f"test against the base model, **Holm-adjusted over the {family} tests of this table** (every seed of every "
        f"trained experiment, each metric; family-wise alpha {fmt_alpha(alpha)}); a seed's verdict reads its "
        "adjusted p-value." + (" The checker's unsupported share is tested like the rates; its mean support (higher is "
        "better) with a paired randomisation test of the mean and a paired bootstrap interval." if len(primary) > 2
        else "") + " With several seeds a cell gives the DPO rate's mean over the seeds, the mean delta with its "
        "between-seed spread (SD, min to max) and how many seeds reach each verdict: the claim a recipe can make is "
        f"\"k of N seeds\", not one run's p-value. Brackets, not adjusted: {level} bootstrap intervals of a rate, "
        f"{level} Tango score intervals of a delta. Experiments are not tested against one another: compare their "
        "deltas with care. Each experiment's own report gives every seed's interval, p-value and the change its "
        "test had 80% power for, Holm-adjusted over that report's tests alone: a seed's verdict there can differ "
        "from this table's."
    ) if family else f"No experiment was trained: nothing is tested. Brackets: {level} bootstrap intervals."
    lines += [
        "",
        tested,
        "",
        "## Quality and what the pairs could teach",
        "",
        "| Model | ROUGE-L | Degenerate | Pair tokens, chosen / rejected (chosen shorter) | Reward accuracy (loss drop) |",
        "|---|---:|---:|---|---:|",
        f"| Base model | {base['quality']['base']['rougeL']:.3f} | {fmt_pct(base['quality']['base']['degenerate'])} | | |",
    ]
    for name, m in zip(names, metrics):
        p = m["pairs"]
        pair_cell = (f"{p['chosen_tokens_mean']:.1f} / {p['rejected_tokens_mean']:.1f} "
                     f"({fmt_pct(p['share_chosen_shorter'])})" if p["pairs"] else "")
        if not m["trained"]:
            lines.append(f"| {dpo_label[name]} | | | {pair_cell} | |")
            continue
        runs = [t for t in m["training"] if t.get("reward_accuracy") is not None]
        accuracy = (f"{fmt_pct(np.mean([t['reward_accuracy'] for t in runs]))} "
                    f"({np.mean([t['loss_drop_pct'] for t in runs]):.1f}%)" if runs else "")
        dpo_quality = m["quality"]["dpo"]
        lines.append(f"| {dpo_label[name]} | {np.mean([q['rougeL'] for q in dpo_quality]):.3f} | "
                     f"{fmt_pct(np.mean([q['degenerate'] for q in dpo_quality]))} | {pair_cell} | {accuracy} |")
    lines += ["", "DPO rows: means over the training seeds.", "",
              "## Secondary, unadjusted: faithful or terse", "",
              "| Model | " + " | ".join(first[key]["label"] for key in TERSE) + " |", "|---|" + "---|" * len(TERSE),
              "| Base model | " + " | ".join(fmt_value(first[key]["base"], True) for key in TERSE) + " |"]
    for name, m in zip(names, metrics):
        if m["trained"]:
            lines.append(f"| {dpo_label[name]} | " + " | ".join(_secondary_cell(rows[name][key], alpha)
                                                                for key in TERSE) + " |")
    lines += [
        "",
        "Precision-source: of the summaries' entities (numbers), the share "
        + ("the article as given + the highlights support"
           if reference == "article_and_highlights" else "the article as given supports (`scoring.reference: article`)")
        + "; recall-target: of the highlights' entities (numbers), the share the summary keeps (Nan et al. "
        "2021; pooled over items). Each seed tested alone at alpha, unadjusted (a paired randomisation test of the "
        "ratio). A hallucination rate that falls while recall-target falls too may mean the model says less, not "
        "that it is more faithful.",
    ]
    warnings = [(name, w) for name, m in zip(names, metrics) for w in m["pairs"]["warnings"] + m["training_warnings"]]
    warnings += [(name, f"not trained: {m['selection']['reason']}") for name, m in zip(names, metrics)
                 if not m["trained"]]
    if warnings:
        lines += ["", "Warnings from the experiments' reports:", ""]
        lines += [f"- `{name}`: {w}" for name, w in warnings]
    lines += ["", "Each experiment's own report (every seed, figures, examples, training curves): "
              + ", ".join(f"`{name}`" for name in names) + " (`report.md` in its folder).", ""]
    return "\n".join(lines)


def build_comparison(metrics_files: list[str], names: list[str], output: str, costs: list[str] = (),
                     benchmarks: list[str] = (), reference: str = "article_and_highlights") -> str:
    """Read each experiment's metrics.json and write the comparison Markdown, with the Cost of
    the whole run: the reports' per-job tables (``costs``, shared jobs counted once) and the
    reports' own benchmark files (``benchmarks``). ``reference``: scoring.reference."""
    if len(metrics_files) != len(names):
        raise ValueError(f"{len(metrics_files)} metrics files for {len(names)} experiment names")
    metrics = [read_json(f) for f in metrics_files]
    jobs = pd.concat([read_cost_tables(list(costs)), read_costs(list(benchmarks))], ignore_index=True)
    text = render_comparison(names, metrics, reference) + "\n" + "\n".join(
        cost_section(jobs, "What the whole run cost: every job before this comparison."))
    write_text(text, output)
    for name, m in zip(names, metrics):
        if not m["trained"]:
            log.warning("experiment %s was not trained: %s", name, m["selection"]["reason"])
    log.info("comparison of %d experiments written to %s", len(names), output)
    return text
