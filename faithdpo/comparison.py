"""Every experiment beside the base model, from the experiments' metrics.json files.

One row per model: the hallucination rates with their intervals and, for each DPO model,
the paired delta against the base and its verdict; ROUGE-L and the degenerate share; the
confounds of the pairs the experiment trained on; and the trainer's reward accuracy, kept
in view because it is not the target metric. An experiment with too few pairs is listed as
not trained, with the reason. Verdicts are Holm-adjusted over every test the table shows.
"""

from __future__ import annotations

import logging

import pandas as pd

from faithdpo.cost import cost_section, read_cost_tables, read_costs
from faithdpo.io import read_json, write_text
from faithdpo.report import fmt_delta, fmt_pct, fmt_value, mde_text
from faithdpo.stats import holm, mcnemar_mde, verdict

log = logging.getLogger(__name__)

RATES = ("entity_rate", "number_rate")


def adjusted_tests(names: list[str], metrics: list[dict]) -> dict[tuple[str, str], dict]:
    """Holm-adjusted p-value, verdict and detectable change of each (experiment, rate) test shown.

    The detectable change is computed at alpha / m, the level the smallest p-value must pass
    under Holm, with m the number of tests: the comparison's verdicts could see no less.
    """
    tests = [(name, r) for name, m in zip(names, metrics) if m["trained"]
             for r in m["comparison"] if r["key"] in RATES]
    if not tests:
        return {}
    alpha = metrics[0]["alpha"]
    adjusted = holm([r["p_value"] for _, r in tests])
    out = {}
    for (name, r), p_adj in zip(tests, adjusted):
        mde = mcnemar_mde(metrics[0]["n_validation"], r["discordant"], alpha / len(tests))
        out[(name, r["key"])] = {"p_holm": p_adj, "verdict": verdict(r["delta"]["value"], p_adj < alpha), "mde": mde,
                                 "discordant": r["discordant"]}
    return out


def _dpo_cell(row: dict, test: dict) -> str:
    cell = fmt_value(row["dpo"], True) + f"<br>{fmt_delta(row['delta'], True)}, Holm p = {test['p_holm']:.3g}: "
    if test["verdict"] != "no significant change":
        return cell + f"**{test['verdict']}**"
    return cell + mde_text(test["mde"], test["discordant"])


def render_comparison(names: list[str], metrics: list[dict]) -> str:
    """The comparison as Markdown (one row for the base model, one per experiment)."""
    base = metrics[0]
    for name, m in zip(names, metrics):
        if m["base"] != base["base"]:
            raise ValueError(f"experiment {name!r} was evaluated against another base run than {names[0]!r}")
    rows = {name: {r["key"]: r for r in m["comparison"]} for name, m in zip(names, metrics)}
    tests = adjusted_tests(names, metrics)
    alpha = base["alpha"]
    first = rows[names[0]]
    lines = [
        "# faithdpo: experiments compared",
        "",
        f"{base['n_validation']} validation articles, the same for every model. Rates are shares of summaries "
        f"with at least one hallucinated entity (number), with {100 * (1 - alpha):.0f}% paired bootstrap "
        "intervals; each DPO row gives its paired delta against the base model and McNemar's p-value, "
        f"**Holm-adjusted over the {len(tests)} tests in this table** (family-wise alpha {alpha:g}), and the verdict "
        "from the adjusted p-value. \"No change larger than X pp\": the smallest change McNemar's test would detect "
        f"with 80% power at alpha / {max(len(tests), 1)} (the level Holm asks of the smallest p-value), given how "
        "many articles changed outcome. Experiments are not tested against one another: compare their deltas, and "
        "their intervals, with care. Each experiment's own report tests its four metrics unadjusted.",
        "",
        "| Model | Pair strategy | Pairs | Entity hallucination rate | Number hallucination rate | ROUGE-L | "
        "Degenerate | Pair tokens, chosen / rejected (chosen shorter) | Reward accuracy (loss drop) |",
        "|---|---|---:|---|---|---:|---:|---|---:|",
        f"| Base model | | | {fmt_value(first['entity_rate']['base'], True)} | "
        f"{fmt_value(first['number_rate']['base'], True)} | {base['quality']['base']['rougeL']:.3f} | "
        f"{fmt_pct(base['quality']['base']['degenerate'])} | | |",
    ]
    for name, m in zip(names, metrics):
        p, t = m["pairs"], m["training"]
        strategy = m["pairs_config"].get("strategy", "")
        pair_cell = (f"{p['chosen_tokens_mean']:.1f} / {p['rejected_tokens_mean']:.1f} "
                     f"({fmt_pct(p['share_chosen_shorter'])})" if p["pairs"] else "")
        if not m["trained"]:
            lines.append(f"| DPO: `{name}` | {strategy} | {p['pairs']} | **not trained**: {m['selection']['reason']} "
                         f"| | | | {pair_cell} | |")
            continue
        accuracy = (f"{fmt_pct(t['reward_accuracy'])} ({t['loss_drop_pct']:.1f}%)"
                    if t.get("reward_accuracy") is not None else "")
        lines.append(
            f"| DPO: `{name}` | {strategy} | {p['pairs']} | "
            f"{_dpo_cell(rows[name]['entity_rate'], tests[(name, 'entity_rate')])} | "
            f"{_dpo_cell(rows[name]['number_rate'], tests[(name, 'number_rate')])} | "
            f"{m['quality']['dpo']['rougeL']:.3f} | {fmt_pct(m['quality']['dpo']['degenerate'])} | {pair_cell} | "
            f"{accuracy} |"
        )
    warnings = [(name, w) for name, m in zip(names, metrics) for w in m["pairs"]["warnings"] + m["training_warnings"]]
    warnings += [(name, f"not trained: {m['selection']['reason']}") for name, m in zip(names, metrics)
                 if not m["trained"]]
    if warnings:
        lines += ["", "Warnings from the experiments' reports:", ""]
        lines += [f"- `{name}`: {w}" for name, w in warnings]
    lines += ["", "Each experiment's own report (figures, examples, training curves): "
              + ", ".join(f"`{name}`" for name in names) + " (`report.md` in its folder).", ""]
    return "\n".join(lines)


def build_comparison(metrics_files: list[str], names: list[str], output: str, costs: list[str] = (),
                     benchmarks: list[str] = ()) -> str:
    """Read each experiment's metrics.json and write the comparison Markdown, with the Cost of
    the whole run: the reports' per-job tables (``costs``, shared jobs counted once) and the
    reports' own benchmark files (``benchmarks``)."""
    if len(metrics_files) != len(names):
        raise ValueError(f"{len(metrics_files)} metrics files for {len(names)} experiment names")
    metrics = [read_json(f) for f in metrics_files]
    jobs = pd.concat([read_cost_tables(list(costs)), read_costs(list(benchmarks))], ignore_index=True)
    text = render_comparison(names, metrics) + "\n" + "\n".join(
        cost_section(jobs, "What the whole run cost: every job before this comparison."))
    write_text(text, output)
    for name, m in zip(names, metrics):
        if not m["trained"]:
            log.warning("experiment %s was not trained: %s", name, m["selection"]["reason"])
    log.info("comparison of %d experiments written to %s", len(names), output)
    return text
