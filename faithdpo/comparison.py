"""Every experiment beside the base model, from the experiments' metrics.json files.

One row per model: the hallucination rates with their intervals and, for each DPO model,
the paired delta against the base and its verdict; ROUGE-L; the confounds of the pairs the
experiment trained on; and the trainer's reward accuracy, kept in view because it is not
the target metric.
"""

from __future__ import annotations

import logging

from faithdpo.io import read_json, write_text
from faithdpo.report import fmt_delta, fmt_pct, fmt_value

log = logging.getLogger(__name__)

RATES = ("entity_rate", "number_rate")


def _rate_cell(row: dict, side: str) -> str:
    cell = fmt_value(row[side], True)
    if side == "dpo":
        cell += f"<br>{fmt_delta(row['delta'], True)}, p = {row['p_value']:.3g}: {row['verdict']}"
    return cell


def render_comparison(names: list[str], metrics: list[dict]) -> str:
    """The comparison as Markdown (one row for the base model, one per experiment)."""
    base = metrics[0]
    for name, m in zip(names, metrics):
        if m["base"] != base["base"]:
            raise ValueError(f"experiment {name!r} was evaluated against another base run than {names[0]!r}")
    rates = {m_name: {r["key"]: r for r in m["comparison"]} for m_name, m in zip(names, metrics)}
    first = rates[names[0]]
    alpha = base["alpha"]
    lines = [
        "# faithdpo: experiments compared",
        "",
        f"{base['n_validation']} validation articles, the same for every model. Rates are shares of summaries "
        f"with at least one hallucinated entity (number), with {100 * (1 - alpha):.0f}% paired bootstrap "
        f"intervals; each DPO row gives its paired delta against the base model, the p-value of McNemar's test, "
        f"and the verdict at alpha {alpha:g}. Experiments are not tested against one another here: compare "
        "their deltas, and their intervals, with care. No correction for multiple testing is applied: with "
        f"{len(names)} experiment(s) x {len(base['comparison'])} metrics = {len(names) * len(base['comparison'])} "
        f"paired tests (see each report), about {alpha * len(names) * len(base['comparison']):.1f} would read "
        "improved or worse by chance alone.",
        "",
        "| Model | Pair strategy | Pairs | Entity hallucination rate | Number hallucination rate | ROUGE-L | "
        "Pair tokens, chosen / rejected (chosen shorter) | Reward accuracy (loss drop) |",
        "|---|---|---:|---|---|---:|---|---:|",
        f"| Base model | | | {_rate_cell(first['entity_rate'], 'base')} | {_rate_cell(first['number_rate'], 'base')} "
        f"| {base['quality']['base']['rougeL']:.3f} | | |",
    ]
    for name, m in zip(names, metrics):
        p, t = m["pairs"], m["training"]
        pair_cell = (f"{p['chosen_tokens_mean']:.1f} / {p['rejected_tokens_mean']:.1f} "
                     f"({fmt_pct(p['share_chosen_shorter'])})" if p["pairs"] else "")
        accuracy = (f"{fmt_pct(t['reward_accuracy'])} ({t['loss_drop_pct']:.1f}%)"
                    if t.get("reward_accuracy") is not None else "")
        lines.append(
            f"| DPO: `{name}` | {m['pairs_config'].get('strategy', '')} | {p['pairs']} | "
            f"{_rate_cell(rates[name]['entity_rate'], 'dpo')} | {_rate_cell(rates[name]['number_rate'], 'dpo')} | "
            f"{m['quality']['dpo']['rougeL']:.3f} | {pair_cell} | {accuracy} |"
        )
    warnings = [(name, w) for name, m in zip(names, metrics) for w in m["pairs"]["warnings"] + m["training_warnings"]]
    if warnings:
        lines += ["", "Warnings from the experiments' reports:", ""]
        lines += [f"- `{name}`: {w}" for name, w in warnings]
    lines += ["", "Each experiment's own report (figures, examples, training curves): "
              + ", ".join(f"`{name}`" for name in names) + " (`report.md` in its folder).", ""]
    return "\n".join(lines)


def build_comparison(metrics_files: list[str], names: list[str], output: str) -> str:
    """Read each experiment's metrics.json and write the comparison Markdown."""
    if len(metrics_files) != len(names):
        raise ValueError(f"{len(metrics_files)} metrics files for {len(names)} experiment names")
    text = render_comparison(names, [read_json(f) for f in metrics_files])
    write_text(text, output)
    log.info("comparison of %d experiments written to %s", len(names), output)
    return text
