"""The experiment's report: does DPO change hallucination, at what cost, and why.

Loss and reward accuracy are shown beside the target metric on purpose: the seed's run
reached 100% reward accuracy and an 80% drop in loss while faithfulness did not move.
Every rate carries a paired bootstrap interval and a paired test, so that a reader sees
at a glance whether a difference is real; quality, pair confounds and training curves
show what else the model may have learned.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from faithdpo.cost import cost_section, read_costs, write_costs
from faithdpo.diagnostics import pair_confounds, training_curves, training_warnings
from faithdpo.figures import pair_lengths_figure, rates_figure, training_figure
from faithdpo.io import read_json, read_parquet, write_json, write_text
from faithdpo.quality import is_failed, quality_table, words
from faithdpo.stats import mcnemar, mcnemar_mde, mean_interval, paired_bootstrap, verdict

log = logging.getLogger(__name__)

# label, metrics key, per-summary value, shown as a percentage (share of summaries)
METRICS = [
    ("Entity Hallucination Rate", "entity_rate", lambda s: s["ent_hallucinations"] > 0, True),
    ("Number Hallucination Rate", "number_rate", lambda s: s["num_hallucinations"] > 0, True),
    # An empty, punctuation-only or looping summary states nothing and so hallucinates nothing:
    # it is counted as a failure, on its own and with the hallucinations, never as clean.
    ("Failed summaries (empty, punctuation only, a loop)", "failure_rate", lambda s: s["summary"].map(is_failed),
     True),
    ("Hallucinating or failed summaries", "hallucination_or_failure_rate",
     lambda s: (s["ent_hallucinations"] > 0) | (s["num_hallucinations"] > 0) | s["summary"].map(is_failed), True),
    ("Hallucinated entities per summary", "entities_per_summary", lambda s: s["ent_hallucinations"], False),
    ("Hallucinated numbers per summary", "numbers_per_summary", lambda s: s["num_hallucinations"], False),
]
FIGURES = {"rates": "rates.png", "training": "training.png", "pair_lengths": "pair_lengths.png"}


def paired_scores(base: pd.DataFrame, dpo: pd.DataFrame) -> pd.DataFrame:
    """Base and DPO scores of the same articles side by side (suffixes _base, _dpo)."""
    if set(base["id"]) != set(dpo["id"]) or len(base) != len(dpo):
        raise ValueError("base and DPO evaluations must cover the same validation articles, once each")
    return base.merge(dpo, on="id", suffixes=("_base", "_dpo"), validate="one_to_one")


def _side(paired: pd.DataFrame, side: str) -> pd.DataFrame:
    cols = [c for c in paired.columns if c.endswith(f"_{side}")]
    return paired[cols].rename(columns=lambda c: c[: -len(side) - 1])


def compare(paired: pd.DataFrame, alpha: float = 0.05, resamples: int = 2000, seed: int = 0) -> list[dict]:
    """Each metric: both values with intervals, the delta with its interval, a paired test, a verdict.

    Shares of summaries use McNemar's test; per-summary counts use the Wilcoxon
    signed-rank test. The verdict is "no significant change" unless p < alpha.
    """
    from scipy.stats import wilcoxon

    base_side, dpo_side = _side(paired, "base"), _side(paired, "dpo")
    rows = []
    for label, key, value_of, pct in METRICS:
        base, dpo = value_of(base_side).to_numpy(dtype=float), value_of(dpo_side).to_numpy(dtype=float)
        ci = paired_bootstrap(base, dpo, confidence=1 - alpha, resamples=resamples, seed=seed)
        extra = {}
        if pct:
            test = mcnemar(base.astype(bool), dpo.astype(bool))
            name = "McNemar (exact)" if test["exact"] else "McNemar (chi-square)"
            p_value = test["p_value"]
            discordant = test["b"] + test["c"]
            extra = {"discordant": discordant, "mde": mcnemar_mde(len(base), discordant, alpha)}
        else:
            name = "Wilcoxon signed-rank"
            p_value = float(wilcoxon(dpo, base).pvalue) if np.any(dpo != base) else 1.0
        delta = float(dpo.mean() - base.mean())
        rows.append({
            "label": label, "key": key, "pct": pct, "test": name, "p_value": p_value, **extra,
            "base": {"value": float(base.mean()), "low": ci["base"].low, "high": ci["base"].high},
            "dpo": {"value": float(dpo.mean()), "low": ci["dpo"].low, "high": ci["dpo"].high},
            "delta": {"value": delta, "low": ci["delta"].low, "high": ci["delta"].high},
            "verdict": verdict(delta, p_value < alpha),
        })
    return rows


def base_only(scores: pd.DataFrame, alpha: float = 0.05, resamples: int = 2000, seed: int = 0) -> list[dict]:
    """Each metric of the base model alone, with its interval: the report of an experiment not trained."""
    rows = []
    for label, key, value_of, pct in METRICS:
        values = value_of(scores).to_numpy(dtype=float)
        ci = mean_interval(values, 1 - alpha, resamples, seed)
        rows.append({"label": label, "key": key, "pct": pct,
                     "base": {"value": float(values.mean()), "low": ci.low, "high": ci.high}})
    return rows


def mde_text(mde: float | None, discordant: int) -> str:
    """What a paired rate test could have seen: "no change larger than X pp" (80% power)."""
    if mde is None:
        return "no summary changed" if not discordant else "too few changed summaries to see a change"
    return f"no change larger than {100 * mde:.1f} pp"


def verdict_text(row: dict) -> str:
    if row["verdict"] == "no significant change" and row["pct"]:
        return f"no significant change: {mde_text(row['mde'], row['discordant'])}"
    return row["verdict"]


def quality(summaries: dict[str, pd.Series], highlights: pd.Series) -> dict:
    """Mean ROUGE-1/2/L against the highlights, mean words, and the empty/degenerate shares per model."""
    out = {}
    for side, texts in summaries.items():
        table = quality_table(texts, highlights)
        out[side] = {**{k: float(table[k].mean()) for k in ("rouge1", "rouge2", "rougeL", "words")},
                     "empty": float(table["empty"].mean()), "degenerate": float(table["degenerate"].mean())}
    out["highlights_words"] = float(highlights.fillna("").map(lambda text: len(words(text))).mean())
    return out


def training_summary(history: list[dict]) -> dict:
    """First/final loss, its drop in %, and the final reward accuracy and margin."""
    steps = [h for h in history if "loss" in h]
    if not steps:
        return {"steps": 0}
    first, final = steps[0]["loss"], steps[-1]["loss"]
    return {
        "steps": steps[-1].get("step", len(steps)),
        "first_loss": first,
        "final_loss": final,
        "loss_drop_pct": 100.0 * (first - final) / first if first else 0.0,
        "reward_accuracy": steps[-1].get("rewards/accuracies"),
        "reward_margin": steps[-1].get("rewards/margins"),
    }


def mark(text: str, spans) -> str:
    """Bold every occurrence of each hallucinated span, for the examples."""
    for span in sorted(set(spans), key=len, reverse=True):
        text = re.sub(rf"(?<![\w*]){re.escape(span)}(?![\w*])", f"**{span}**", text)
    return text


def examples(paired: pd.DataFrame, data: pd.DataFrame, n: int) -> dict[str, list[dict]]:
    """Up to ``n`` articles where DPO has fewer hallucinated items than the base model, and ``n`` with more.

    The largest changes come first; ``items`` lists what DPO removed (or introduced).
    """
    def items(row, side):
        return set(row[f"hallucinated_entities_{side}"]) | set(row[f"hallucinated_numbers_{side}"])

    articles = data.set_index("id")["article"]
    found = {"removed": [], "introduced": []}
    for _, row in paired.iterrows():
        base, dpo = items(row, "base"), items(row, "dpo")
        if len(base) == len(dpo):
            continue
        kind, diff = ("removed", base - dpo) if len(dpo) < len(base) else ("introduced", dpo - base)
        found[kind].append({
            "id": row["id"], "items": sorted(diff), "change": abs(len(base) - len(dpo)),
            "article": articles[row["id"]],
            "base": mark(row["summary_base"], base), "dpo": mark(row["summary_dpo"], dpo),
        })
    return {k: sorted(v, key=lambda e: (-e["change"], e["id"]))[:n] for k, v in found.items()}


def fmt_pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def fmt_value(v: dict, pct: bool) -> str:
    if pct:
        return f"{100 * v['value']:.1f}% [{100 * v['low']:.1f}, {100 * v['high']:.1f}]"
    return f"{v['value']:.3f} [{v['low']:.3f}, {v['high']:.3f}]"


def fmt_delta(v: dict, pct: bool) -> str:
    if pct:
        return f"{100 * v['value']:+.1f} pp [{100 * v['low']:+.1f}, {100 * v['high']:+.1f}]"
    return f"{v['value']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}]"


def _quote(text: str) -> str:
    return "> " + (text.replace("\n", " ").strip() or "(empty)")


def selection_section(sel: dict) -> list[str]:
    """From train articles to pairs: what the strategy could not pair and what each filter dropped."""
    lines = ["| Step | Articles or pairs |", "|---|---:|", f"| Train articles with candidates | {sel['articles']} |"]
    lines += [f"| No pair: {why} | {count} |" for why, count in sel["without_pair"].items()]
    lines += [f"| Pairs made by `{sel['strategy']}` | {sel['built']} |"]
    lines += [f"| Dropped: {name.replace('_', ' ')} | {count} |" for name, count in sel["dropped"].items()]
    tail = sel.get("chosen_from_cut_tail", {})
    if tail.get("action") == "keep":
        lines += [f"| Kept (`pairs.on_cut_tail: keep`): chosen side states facts only in the article's cut tail "
                  f"| {tail['pairs']} |"]
    lines += [f"| Pairs kept (`pairs.min_pairs` = {sel['min_pairs']}) | {sel['pairs']} |", ""]
    return lines


def rates_section(metrics: dict) -> list[str]:
    """The hallucination table: base vs DPO with deltas, tests and verdicts, or the base model alone."""
    alpha = metrics["alpha"]
    if not metrics["trained"]:
        lines = ["| Metric | Base |", "|---|---:|"]
        lines += [f"| {r['label']} | {fmt_value(r['base'], r['pct'])} |" for r in metrics["comparison"]]
        return lines + ["", f"Brackets: {100 * (1 - alpha):.0f}% bootstrap intervals ({metrics['resamples']} "
                        "resamples of the validation articles). No DPO model: nothing to compare.", ""]
    lines = [f"| Metric | Base | Post-DPO | Delta | p | Verdict (alpha {alpha:g}) |", "|---|---:|---:|---:|---:|---|"]
    for r in metrics["comparison"]:
        lines.append(f"| {r['label']} | {fmt_value(r['base'], r['pct'])} | {fmt_value(r['dpo'], r['pct'])} | "
                     f"{fmt_delta(r['delta'], r['pct'])} | {r['p_value']:.3g} | {verdict_text(r)} |")
    return lines + [
        "",
        f"Brackets: {100 * (1 - alpha):.0f}% paired bootstrap intervals ({metrics['resamples']} resamples of the "
        "validation articles, both models resampled together). Rates are the share of summaries with at least one "
        "hallucinated entity (number), tested with McNemar's test (exact when fewer than 25 articles differ); the "
        "per-summary rows count distinct hallucinated items, tested with the Wilcoxon signed-rank test. \"no change "
        "larger than X pp\": the smallest change in the rate that McNemar's test would detect with 80% power at this "
        "alpha and sample size, given the share of articles whose outcome differs between the two models (Connor's "
        "normal approximation).",
        "",
    ]


def training_section(metrics: dict, figures: dict[str, str]) -> list[str]:
    p, t = metrics["pairs"], metrics["training"]
    lines = ["## DPO training", "", "| Quantity | Value |", "|---|---:|", f"| Preference pairs | {p['pairs']} |"]
    if t.get("steps"):
        lines += [
            f"| Optimizer steps | {t['steps']} |",
            f"| DPO training loss (final) | {t['final_loss']:.4f} |",
            f"| Loss drop from first logged step | {t['loss_drop_pct']:.1f}% |",
            f"| Reward accuracy (final) | {100 * (t['reward_accuracy'] or 0):.1f}% |",
            f"| Reward margin (final) | {t['reward_margin'] or 0:.4f} |",
        ]
    lines += [""] + [f"**Warning:** {w}" for w in metrics["training_warnings"]]
    return lines + [
        "",
        "Loss and reward accuracy measure how well the policy separates chosen from rejected, not "
        "faithfulness: judge the run by the hallucination table above.",
        "",
        f"![Training curves]({figures['training']})",
        "",
    ]


def examples_section(shown: dict) -> list[str]:
    lines = ["## Examples", "", "Hallucinated spans in **bold**.", ""]
    for kind, title in (("removed", "DPO removed a hallucination"), ("introduced", "DPO introduced a hallucination")):
        lines += [f"### {title}", ""]
        if not shown[kind]:
            lines += ["None in this sample.", ""]
        for e in shown[kind]:
            lines += [f"Article `{e['id']}` ({kind}: {', '.join(e['items'])}):", "",
                      _quote(e["article"][:400] + ("..." if len(e["article"]) > 400 else "")), "",
                      "- Base: " + e["base"].replace("\n", " "), "- Post-DPO: " + e["dpo"].replace("\n", " "), ""]
    return lines


def render(metrics: dict, config: dict, links: dict[str, str], figures: dict[str, str], shown: dict) -> str:
    n, trained, sel = metrics["n_validation"], metrics["trained"], metrics["selection"]
    strategy = config.get("pairs", {}).get("strategy", "highlights_vs_worst")
    lines = ["# faithdpo report", ""]
    if trained:
        lines += [
            f"Experiment `{config.get('experiment', 'main')}`: base model `{config.get('model', {}).get('name', '?')}`, "
            f"DPO on {metrics['pairs']['pairs']} preference pairs (strategy `{strategy}`), evaluated on {n} "
            "validation summaries per model (greedy decoding).",
            "",
        ]
        lines += [f"- **{r['label']}**: {verdict_text(r)} ({fmt_delta(r['delta'], r['pct'])}, p = {r['p_value']:.3g})"
                  for r in metrics["comparison"]]
    else:
        lines += [
            f"Experiment `{config.get('experiment', 'main')}`: base model `{config.get('model', {}).get('name', '?')}`, "
            f"strategy `{strategy}`. **Not trained**: {sel['reason']}. The base model's {n} validation summaries "
            "are shown alone; lower `pairs.min_pairs`, loosen the filters or change the strategy to train it.",
        ]
    lines += ["", "## Hallucination on the validation sample", ""] + rates_section(metrics)
    lines += [
        f"![Hallucination rates]({figures['rates']})",
        "",
        "## Summary quality",
        "",
    ]
    q = metrics["quality"]
    sides = [side for side in ("base", "dpo") if side in q]
    lines += ["| | " + " | ".join({"base": "Base", "dpo": "Post-DPO"}[s] for s in sides) + " |",
              "|---|" + "---:|" * len(sides)]
    for label, key, fmt in [("ROUGE-1 F1", "rouge1", "{:.3f}"), ("ROUGE-2 F1", "rouge2", "{:.3f}"),
                            ("ROUGE-L F1", "rougeL", "{:.3f}"), ("Mean length (words)", "words", "{:.1f}"),
                            ("Empty summaries", "empty", None),
                            ("Degenerate summaries (a word trigram 3+ times)", "degenerate", None)]:
        cells = [fmt.format(q[side][key]) if fmt else fmt_pct(q[side][key]) for side in sides]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"ROUGE against the reference highlights (mean length {q['highlights_words']:.1f} words). Fewer "
        "hallucinations count only if quality holds.",
        "",
        "## Preference pairs",
        "",
    ]
    lines += selection_section(sel)
    p = metrics["pairs"]
    if p["pairs"]:
        lines += [
            "| Quantity | Value |",
            "|---|---:|",
            f"| Pairs | {p['pairs']} |",
            f"| Chosen length, mean (median) tokens | {p['chosen_tokens_mean']:.1f} ({p['chosen_tokens_median']:.0f}) |",
            f"| Rejected length, mean (median) tokens | {p['rejected_tokens_mean']:.1f} "
            f"({p['rejected_tokens_median']:.0f}) |",
            f"| Pairs where chosen is shorter | {fmt_pct(p['share_chosen_shorter'])} |",
            f"| Pairs where chosen is longer | {fmt_pct(p['share_chosen_longer'])} |",
            f"| Badness margin, mean (median; min-max) | {p['badness_margin_mean']:.2f} "
            f"({p['badness_margin_median']:.0f}; {p['badness_margin_min']:.0f}-{p['badness_margin_max']:.0f}) |",
            "",
        ]
    lines += [f"**Warning:** {w}" for w in p["warnings"]] + ([""] if p["warnings"] else [])
    lines += [f"![Pair lengths]({figures['pair_lengths']})", ""]
    if trained:
        lines += training_section(metrics, figures)
    lines += data_section(metrics["data"], config.get("prompt", {}).get("over_budget", "truncate"))
    if trained:
        lines += examples_section(shown)
    lines += ["## Files", ""]
    lines += [f"- {name}: [{target}]({target})" for name, target in links.items()]
    lines += ["", "## Config", "", "```yaml", yaml.safe_dump(config, sort_keys=True).rstrip(), "```", ""]
    return "\n".join(lines)


def data_checks(stats_files: list[str], prompt_files: list[str]) -> dict:
    """Per split: valid rows, rows left out by data.on_bad_row (per problem), and articles
    over the prompt's token budget (truncated, or left out)."""
    out = {}
    for stats_file, prompt_file in zip(stats_files, prompt_files):
        stats = read_json(stats_file)
        prompts = read_parquet(prompt_file, ["id", "truncated"])
        out[stats["split"]] = {
            "valid_rows": stats["valid_rows"],
            "sampled": stats["sampled"],
            "bad_rows": stats["skipped"],
            "prompts": len(prompts),
            "truncated": int(prompts["truncated"].sum()),
            "over_budget_skipped": stats["sampled"] - len(prompts),
        }
    return out


def data_section(checks: dict, over_budget: str) -> list[str]:
    problems = sorted({p for c in checks.values() for p in c["bad_rows"]})
    lines = ["## Data checks", "", "| | " + " | ".join(checks) + " |", "|---|" + "---:|" * len(checks)]
    rows = [("Valid rows in the source", "valid_rows"), ("Sampled", "sampled")]
    lines += [f"| {label} | " + " | ".join(str(c[key]) for c in checks.values()) + " |" for label, key in rows]
    lines += [f"| Bad rows left out: {p.replace('_', ' ')} | " + " | ".join(str(c["bad_rows"].get(p, 0))
                                                                            for c in checks.values()) + " |"
              for p in problems]
    lines += [
        "| Articles over the prompt budget, truncated | " + " | ".join(str(c["truncated"]) for c in checks.values())
        + " |",
        "| Articles over the prompt budget, left out | "
        + " | ".join(str(c["over_budget_skipped"]) for c in checks.values()) + " |",
        "",
        f"Bad rows follow `data.on_bad_row`, over-long articles `prompt.over_budget` (here: {over_budget}).",
        "",
    ]
    return lines


COST_SCOPE = ("What this experiment's results cost: the steps every experiment shares (data, models, candidates "
              "and their scores, the base model's evaluation; they ran once) and this experiment's own. This "
              "report's own step is not counted; `comparison.md` counts the whole run.")


def build_report(
    scores_base: str, scores_dpo: str | None, data: str, pairs: str, log_history: str | None, output: str,
    metrics_out: str, figures_dir: str, config: dict, data_stats: list[str], prompts: list[str], selection: str,
    benchmarks: list[str] = (), cost_out: str | None = None, alpha: float = 0.05, resamples: int = 2000,
    n_examples: int = 3, seed: int = 0,
) -> dict:
    """Compute every number of the report from the artifacts; write report.md, metrics.json and the figures.

    ``scores_dpo`` and ``log_history`` are None when the experiment had too few pairs to
    train (``selection`` says so and why): the report then shows the base model alone.
    ``benchmarks``: the Snakemake benchmark files of the steps behind it (its Cost section),
    written per job to ``cost_out`` for the comparison.
    """
    sel = read_json(selection)
    trained = sel["trained"]
    if trained != (scores_dpo is not None and log_history is not None):
        raise ValueError(f"{selection} says trained={trained}, but the DPO scores and training log are "
                         f"{'missing' if trained else 'given'}")
    base_df = read_parquet(scores_base)
    data_df = read_parquet(data, ["id", "article", "highlights"])
    pairs_df = read_parquet(pairs, ["id", "chosen_tokens", "rejected_tokens", "chosen_badness", "rejected_badness"])
    if trained:
        paired = paired_scores(base_df, read_parquet(scores_dpo))
        summaries = {"base": paired["summary_base"], "dpo": paired["summary_dpo"]}
        history = read_json(log_history)
        comparison = compare(paired, alpha, resamples, seed)
    else:
        paired, history = base_df.rename(columns={"summary": "summary_base"}), []
        summaries = {"base": paired["summary_base"]}
        comparison = base_only(base_df, alpha, resamples, seed)
    highlights = paired[["id"]].merge(data_df, on="id", how="left")["highlights"]
    curves = training_curves(history)
    metrics = {
        "experiment": config.get("experiment", "main"),
        "pairs_config": config.get("pairs", {}),
        "trained": trained,
        "selection": sel,
        "alpha": alpha,
        "resamples": resamples,
        "n_validation": len(paired),
        "comparison": comparison,
        # the seed's flat rates, kept for scripts that read metrics.json
        "base": {r["key"]: r["base"]["value"] for r in comparison},
        "dpo": {r["key"]: r["dpo"]["value"] for r in comparison} if trained else None,
        "quality": quality(summaries, highlights),
        "pairs": pair_confounds(pairs_df),
        "training": training_summary(history),
        "training_warnings": training_warnings(curves) if trained else [],
        "data": data_checks(data_stats, prompts),
    }
    here = Path(output).parent
    figures = {k: os.path.relpath(Path(figures_dir) / name, here) for k, name in FIGURES.items()}
    rates_figure(comparison, str(Path(figures_dir) / FIGURES["rates"]), 1 - alpha)
    training_figure(curves, str(Path(figures_dir) / FIGURES["training"]),
                    note=None if trained else f"Not trained: {sel['pairs']} pair(s) < pairs.min_pairs")
    pair_lengths_figure(pairs_df, str(Path(figures_dir) / FIGURES["pair_lengths"]))
    files = [("Base model scores", scores_base), ("DPO model scores", scores_dpo), ("Preference pairs", pairs),
             ("Pair selection", selection), ("Training log history", log_history), ("Metrics (JSON)", metrics_out)]
    links = {name: os.path.relpath(path, here) for name, path in files if path is not None}
    write_json(metrics, metrics_out)
    shown = examples(paired, data_df, n_examples) if trained else {}
    jobs = read_costs(list(benchmarks))
    if cost_out:
        write_costs(jobs, cost_out)
    cost = cost_section(jobs, COST_SCOPE)
    write_text(render(metrics, config, links, figures, shown) + "\n" + "\n".join(cost), output)
    if not trained:
        log.warning("experiment %s not trained: %s", metrics["experiment"], sel["reason"])
    log.info("report written to %s", output)
    return metrics
