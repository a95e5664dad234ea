"""Report stage: the experiment's report (does DPO change hallucination, at what cost, and why).

Loss and reward accuracy are shown beside the target metric on purpose: the original recipe's run
reached 100% reward accuracy and an 80% drop in loss while faithfulness did not move.
Every change carries a paired interval and a paired test, per training seed, and
the verdict about the recipe is how many seeds agree (faithdpo.verdicts); precision-source
and recall-target tell "hallucinates less" from "says less"; quality, pair confounds and
training curves show what else the model may have learned.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pandas as pd
import yaml

from faithdpo.agreement import agreement, disagreements
from faithdpo.cost import cost_section, read_costs, write_costs
from faithdpo.diagnostics import pair_confounds, training_curves, training_warnings
from faithdpo.figures import pair_lengths_figure, rates_figure, training_figure
from faithdpo.io import read_json, read_parquet, write_json, write_text
from faithdpo.quality import quality_table, words
from faithdpo.verdicts import (
    MIN_DIFFERING, POOLED_CAVEAT, RECALL_OF, agreement_text, base_estimates, compare, fmt_alpha, fmt_delta, fmt_level,
    fmt_p, fmt_pct, fmt_value, metrics_for, paired_scores, seeds_text, spread_text, verdict_text,
)

log = logging.getLogger(__name__)

FIGURES = {"rates": "rates.png", "training": "training.png", "pair_lengths": "pair_lengths.png"}


def base_only(scores: pd.DataFrame, alpha: float = 0.05, resamples: int = 2000, seed: int = 0,
              checker_threshold: float | None = None) -> list[dict]:
    """Each metric of the base model alone, with its interval: the report of an experiment not trained."""
    metrics = metrics_for(checker_threshold)
    estimates = base_estimates(scores, 1 - alpha, resamples, seed, metrics)
    return [{"label": m.label, "key": m.key, "kind": m.kind, "pct": m.pct, "primary": m.primary,
             "base": estimates[m.key]} for m in metrics]


def with_checks(scores: pd.DataFrame, checks: str) -> pd.DataFrame:
    """A model's scores with the checker's columns of the same summaries (faithdpo.checker's
    ``support``, ``sentences``, ``weakest_sentence``), joined on ``id``."""
    frame = read_parquet(checks).drop(columns="candidate", errors="ignore")
    if len(frame) != len(scores) or set(frame["id"]) != set(scores["id"]):
        raise ValueError(f"{checks} does not check the same {len(scores)} summaries as its score file")
    return scores.merge(frame, on="id", how="left", validate="one_to_one")


def _quality(summaries: pd.Series, highlights: pd.Series) -> dict:
    table = quality_table(summaries.reset_index(drop=True), highlights.reset_index(drop=True))
    return {**{k: float(table[k].mean()) for k in ("rouge1", "rouge2", "rougeL", "words")},
            "empty": float(table["empty"].mean()), "degenerate": float(table["degenerate"].mean())}


def quality(base: pd.Series, dpo: list[tuple[int, pd.Series]], highlights: pd.Series) -> dict:
    """Mean ROUGE-1/2/L against the highlights, mean words, and the empty/degenerate shares of the
    base model and of each seed's DPO model, every series in the base file's article order."""
    return {"base": _quality(base, highlights), "dpo": [{"seed": s, **_quality(texts, highlights)} for s, texts in dpo],
            "highlights_words": float(highlights.fillna("").map(lambda text: len(words(text))).mean())}


def training_summary(history: list[dict]) -> dict:
    """First/final loss, its drop in %, the final reward accuracy and margin, and the layers LoRA
    adapted (the entry train_dpo writes before the trainer's; None in an older log)."""
    steps = [h for h in history if "loss" in h]
    targets = next((h["lora_target_modules"] for h in history if "lora_target_modules" in h), None)
    if not steps:
        return {"steps": 0, "lora_target_modules": targets}
    first, final = steps[0]["loss"], steps[-1]["loss"]
    return {
        "lora_target_modules": targets,
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


def _one_line(text: str) -> str:
    return text.replace("\n", " ").strip() or "(empty)"


def _quote(text: str) -> str:
    return "> " + _one_line(text)


def selection_section(sel: dict) -> list[str]:
    """From train articles to pairs: what the strategy could not pair and what each filter dropped."""
    lines = ["| Step | Articles or pairs |", "|---|---:|", f"| Train articles with candidates | {sel['articles']} |"]
    lines += [f"| No pair: {why} | {count} |" for why, count in sel["without_pair"].items()]
    ranked = {"checker": " (candidates ranked by the checker's support)",
              "badness": " (candidates ranked by badness)"}.get(sel.get("rank_by"), "")
    lines += [f"| Pairs made by `{sel['strategy']}`{ranked} | {sel['built']} |"]
    lines += [f"| Dropped: {name.replace('_', ' ')} | {count} |" for name, count in sel["dropped"].items()]
    unsupported = sel.get("chosen_highlights_unsupported")
    if unsupported:
        lines += [f"| Kept: chosen highlights stating an item the article does not support (`scoring.reference: "
                  f"article`; their measured badness counts in the margin) | {unsupported['kept']} |"]
    tail = sel.get("chosen_from_cut_tail", {})
    if tail.get("action") == "keep":
        lines += [f"| Kept (`pairs.on_cut_tail: keep`): chosen side states facts only in the article's cut tail "
                  f"| {tail['pairs']} |"]
    lines += [f"| Pairs kept (`pairs.min_pairs` = {sel['min_pairs']}) | {sel['pairs']} |", ""]
    return lines


def _seed_rows(row: dict, p_key: str, alpha: float) -> list[str]:
    """One table row per training seed, and with several seeds the across-seed summary row."""
    pct = row["pct"]
    lines = []
    for entry in row["seeds"]:
        p = entry[p_key]
        lines.append(f"| {row['label']} | {entry['seed']} | {fmt_value(row['base'], pct)} | "
                     f"{fmt_value(entry['dpo'], pct)} | {fmt_delta(entry['delta'], pct)} | "
                     f"{'' if p is None else fmt_p(p, alpha)} | {verdict_text(row, entry)} |")
    across = row["across"]
    if across["seeds"] > 1:
        lines.append(f"| {row['label']} | all {across['seeds']} | | | {spread_text(across, pct)} | | "
                     f"{agreement_text(across)} |")
    return lines


def rates_section(metrics: dict, reference: str = "article_and_highlights") -> list[str]:
    """The primary table (Holm family), the secondary one (unadjusted), the pooled deltas and the
    faithful-or-terse check; or the base model alone. ``reference``: scoring.reference."""
    alpha, level, rows = metrics["alpha"], fmt_level(metrics["alpha"]), metrics["comparison"]
    if not metrics["trained"]:
        lines = ["| Metric | Base |", "|---|---:|"]
        lines += [f"| {r['label']} | {fmt_value(r['base'], r['pct'])} |" for r in rows]
        return lines + ["", f"Brackets: {level} bootstrap intervals ({metrics['resamples']} resamples of the "
                        "validation articles). No DPO model: nothing to compare.", ""]
    primary, secondary = [r for r in rows if r["primary"]], [r for r in rows if not r["primary"]]
    m = sum(len(r["seeds"]) for r in primary)
    seeds = len(metrics["seeds"])
    header = "| Metric | Seed | Base | Post-DPO | Delta [{}] | {} | Verdict (alpha {}) |"
    checker = any(r["key"].startswith("checker_") for r in primary)
    title = "the hallucination rates and the checker" if checker else "the hallucination rates"
    lines = [f"### Primary: {title}, Holm-adjusted over {m} tests", "",
             header.format(f"{level}, unadjusted", "Holm p", fmt_alpha(alpha)), "|---|---|---:|---:|---:|---:|---|"]
    for row in primary:
        lines += _seed_rows(row, "p_holm", alpha)
    lines += [
        "",
        "Rates: the share of summaries with at least one hallucinated entity (number). Each seed's DPO model is "
        "compared with the base model on the same articles by McNemar's test (exact when fewer than 25 articles "
        "differ, else chi-square with continuity correction); the p-values are Holm-adjusted over the "
        f"{m} tests of this table (each rate, each seed) and the verdict reads the adjusted p-value at alpha "
        f"{fmt_alpha(alpha)}. Brackets, not adjusted: of a model's rate, {level} bootstrap intervals "
        f"({metrics['resamples']} resamples of the validation articles); of a delta, {level} Tango score "
        "intervals for paired rates (the interval that matches McNemar's test, and does not shrink to a point "
        "when few articles changed). A row whose interval and verdict disagree says so. \"80% power (at alpha "
        "a) only for changes of X pp or more\": the exact power of that test at the level Holm asks of the "
        f"smallest p-value (alpha / {m}), given the share of articles whose outcome differs between the two models. "
        "A smaller true change can go unseen: no significant change is not evidence of no change.",
        "",
    ]
    if checker:
        lines += [
            "Checker rows: a summary's support is the checker's probability that its least supported sentence "
            "is supported by the article (each sentence's best chunk; see the checker section below). "
            "Unsupported summaries are a rate, tested and bounded like the rates above; the mean support is "
            "tested with the paired randomisation test of the mean and bounded by a paired bootstrap interval "
            "(as the secondary counts below).",
            "",
        ]
    lines += pooled_lines(primary, level)
    lines += ["### Secondary: unadjusted", "", header.format(level, "p", fmt_alpha(alpha)),
              "|---|---|---:|---:|---:|---:|---|"]
    for row in secondary:
        lines += _seed_rows(row, "p_value", alpha)
    lines += [
        "",
        f"Each test on its own at alpha {fmt_alpha(alpha)}, with no correction for the {len(secondary) * seeds} tests "
        f"({len(secondary)} rows x {seeds_text(seeds)}): read them as context for the primary verdicts. Failed "
        "summaries are rates (McNemar's test and Tango intervals, as above; power at alpha itself). Per-summary rows: "
        "the mean count of distinct hallucinated items. Precision-source (Nan et al. 2021): of the summaries' "
        "entities (numbers), the share the reference supports; as for the rates, the reference is the article as "
        + ("the prompt gave it and the highlights (Nan et al.'s source is the article alone). "
           if reference == "article_and_highlights" else
           "the prompt gave it, alone (`scoring.reference: article`, as Nan et al.'s source). ")
        + "Recall-target: of the "
        "highlights' entities (numbers), the share the summary keeps, by the same matching rules with the summary "
        "as the reference. Both are pooled over items: a summary with no items adds nothing to a precision, and "
        "one that keeps none of the highlights' items adds its misses to the recall. Counts and ratios are tested "
        "with a paired randomisation test of the mean (ratio) itself, base and DPO swapped at random within "
        f"articles {metrics['resamples']} times (so its smallest p-value is 1/{metrics['resamples'] + 1}), and "
        "their brackets are paired bootstrap intervals: the p-value, the delta and the interval speak of one "
        "quantity. Where few articles differ, a bootstrap interval is narrower than what the data allow: with fewer "
        f"than {MIN_DIFFERING} differing articles a null states no range.",
        "",
    ]
    return lines + terse_lines(rows)


def pooled_lines(primary: list[dict], level: str) -> list[str]:
    """The delta pooled over seeds, with what it assumes; nothing with one seed."""
    pooled = [r for r in primary if r.get("pooled")]
    if not pooled:
        return []
    seeds = pooled[0]["across"]["seeds"]
    lines = [f"- Pooled over the {seeds} seeds, {r['label']}: {fmt_delta(r['pooled'], r['pct'])}" for r in pooled]
    return lines + ["", f"Pooled intervals ({level}): {POOLED_CAVEAT}. With {seeds} seeds the between-seed "
                    f"spread has {seeds - 1} degree{'s' if seeds > 2 else ''} of freedom: the claim about the recipe "
                    "is how many seeds agree, with the spread above, not this interval.", ""]


def terse_lines(rows: list[dict]) -> list[str]:
    """Faithful or terse: where a rate fell (improved in a majority of seeds), what recall-target
    did; "says less?" is flagged when it is significantly lower (unadjusted) in a majority too."""
    by_key = {r["key"]: r for r in rows}
    lines = []
    for rate_key, recall_key in RECALL_OF.items():
        rate, recall = by_key[rate_key]["across"], by_key[recall_key]["across"]
        if recall["mean"] is None or rate["verdicts"].get("improved", 0) <= rate["seeds"] / 2:
            continue
        kind, kinds = {"entity_rate": ("entity", "entities"), "number_rate": ("number", "numbers")}[rate_key]
        fell = (f"The {kind} hallucination rate fell (improved in {rate['verdicts']['improved']} of "
                f"{seeds_text(rate['seeds'])}; {spread_text(rate, True)})")
        lower = recall["verdicts"].get("worse", 0)
        recall_change = f"{spread_text(recall, True)}; significantly lower, unadjusted, in {lower} of " \
                        f"{seeds_text(recall['seeds'])}"
        if lower > recall["seeds"] / 2:
            lines.append(f"**Says less?** {fell} and {kind} recall-target fell too ({recall_change}): the DPO model "
                         f"may hallucinate fewer {kinds} by keeping fewer of the highlights' {kinds}.")
        elif recall["mean"] < 0:
            lines.append(f"{fell}; {kind} recall-target fell on average, not clearly ({recall_change}).")
        else:
            lines.append(f"{fell}; {kind} recall-target did not fall on average ({recall_change}): the fall is not "
                         f"explained by keeping fewer of the highlights' {kinds}.")
    return lines + ([""] if lines else [])


def training_section(metrics: dict, figures: dict[str, str]) -> list[str]:
    p, runs = metrics["pairs"], metrics["training"]
    lines = ["## DPO training", "", f"{p['pairs']} preference pairs; one training run per seed.", ""]
    targets = {", ".join(run["lora_target_modules"]) for run in runs if run.get("lora_target_modules")}
    if targets:  # the same for every seed: one model, one config
        lines += [f"LoRA target modules: {'; '.join(sorted(targets))}.", ""]
    lines += ["| Seed | Optimizer steps | Loss (final) | Loss drop | Reward accuracy (final) | Reward margin (final) |",
              "|---|---:|---:|---:|---:|---:|"]
    for run in runs:
        if run.get("steps"):
            lines.append(f"| {run['seed']} | {run['steps']} | {run['final_loss']:.4f} | {run['loss_drop_pct']:.1f}% | "
                         f"{100 * (run['reward_accuracy'] or 0):.1f}% | {run['reward_margin'] or 0:.4f} |")
        else:
            lines.append(f"| {run['seed']} | 0 | | | | |")
    lines += [""] + [f"**Warning:** {w}" for w in metrics["training_warnings"]]
    return lines + [
        "",
        "Loss and reward accuracy measure how well the policy separates chosen from rejected, not "
        "faithfulness: judge the run by the hallucination tables above.",
        "",
        f"![Training curves]({figures['training']})",
        "",
    ]


def examples_section(shown: dict, seed: int) -> list[str]:
    lines = ["## Examples", "", f"The DPO model of seed {seed}; hallucinated spans in **bold**.", ""]
    for kind, title in (("removed", "DPO removed a hallucination"), ("introduced", "DPO introduced a hallucination")):
        lines += [f"### {title}", ""]
        if not shown[kind]:
            lines += ["None in this sample.", ""]
        for e in shown[kind]:
            lines += [f"Article `{e['id']}` ({kind}: {', '.join(e['items'])}):", "",
                      _quote(e["article"][:400] + ("..." if len(e["article"]) > 400 else "")), "",
                      "- Base: " + e["base"].replace("\n", " "), "- Post-DPO: " + e["dpo"].replace("\n", " "), ""]
    return lines


def headline(metrics: dict) -> list[str]:
    """The primary verdicts in one line each: k of N seeds with the mean and spread, or one seed's result."""
    lines = []
    for row in (r for r in metrics["comparison"] if r["primary"]):
        across = row["across"]
        m = sum(len(r["seeds"]) for r in metrics["comparison"] if r["primary"])
        if across["seeds"] > 1:
            lines.append(f"- **{row['label']}**: {agreement_text(across)} (Holm over {m} tests); "
                         f"{spread_text(across, row['pct'])} across seeds")
        else:
            entry = row["seeds"][0]
            lines.append(f"- **{row['label']}**: {verdict_text(row, entry)} ({fmt_delta(entry['delta'], row['pct'])}, "
                         f"Holm p = {fmt_p(entry['p_holm'], metrics['alpha'])} over {m} tests)")
    if len(metrics["seeds"]) == 1:
        lines.append("- One training seed: one draw of training, not a replicated result (`training.seeds` "
                     "trains more).")
    return lines


def render(metrics: dict, config: dict, links: dict[str, str], figures: dict[str, str], shown: dict) -> str:
    n, trained, sel = metrics["n_validation"], metrics["trained"], metrics["selection"]
    strategy = config.get("pairs", {}).get("strategy", "highlights_vs_worst")
    lines = ["# faithdpo report", ""]
    if trained:
        seeds = metrics["seeds"]
        lines += [
            f"Experiment `{config.get('experiment', 'main')}`: base model `{config.get('model', {}).get('name', '?')}`, "
            f"DPO on {metrics['pairs']['pairs']} preference pairs (strategy `{strategy}`), trained with "
            f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''} ({', '.join(map(str, seeds))}); each model evaluated "
            f"on the same {n} validation articles (greedy decoding).",
            "",
        ]
        lines += headline(metrics)
    else:
        lines += [
            f"Experiment `{config.get('experiment', 'main')}`: base model `{config.get('model', {}).get('name', '?')}`, "
            f"strategy `{strategy}`. **Not trained**: {sel['reason']}. The base model's {n} validation summaries "
            "are shown alone; lower `pairs.min_pairs`, loosen the filters or change the strategy to train it.",
        ]
    reference = config.get("scoring", {}).get("reference", "article_and_highlights")
    lines += ["", "## Hallucination on the validation sample", ""] + rates_section(metrics, reference)
    lines += [
        f"![Hallucination rates]({figures['rates']})",
        "",
        "## Summary quality",
        "",
    ]
    q = metrics["quality"]
    models = [("Base", q["base"])] + [(f"Post-DPO, seed {d['seed']}", d) for d in q["dpo"]]
    lines += ["| | " + " | ".join(name for name, _ in models) + " |", "|---|" + "---:|" * len(models)]
    for label, key, fmt in [("ROUGE-1 F1", "rouge1", "{:.3f}"), ("ROUGE-2 F1", "rouge2", "{:.3f}"),
                            ("ROUGE-L F1", "rougeL", "{:.3f}"), ("Mean length (words)", "words", "{:.1f}"),
                            ("Empty summaries", "empty", None),
                            ("Degenerate summaries (a word trigram 3+ times)", "degenerate", None)]:
        cells = [fmt.format(values[key]) if fmt else fmt_pct(values[key]) for _, values in models]
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
    if sel.get("rank_by") == "checker":
        lines += ["The candidates were ranked by the checker's support (`pairs.rank_by: checker`): the badness margin "
                  "above did not select the pairs; each pair's `chosen_support` and `rejected_support` are in the pairs "
                  "file.", ""]
    lines += [f"**Warning:** {w}" for w in p["warnings"]] + ([""] if p["warnings"] else [])
    lines += [f"![Pair lengths]({figures['pair_lengths']})", ""]
    if metrics.get("checker"):
        lines += checker_section(metrics["checker"], fmt_level(metrics["alpha"]), reference)
    if trained:
        lines += training_section(metrics, figures)
    lines += data_section(metrics["data"], config.get("prompt", {}).get("over_budget", "truncate"))
    if trained:
        lines += examples_section(shown, metrics["seeds"][0])
    lines += ["## Files", ""]
    lines += [f"- {name}: " + ", ".join(f"[{target}]({target})" for target in targets)
              for name, targets in links.items()]
    lines += ["", "## Config", "", "```yaml", yaml.safe_dump(config, sort_keys=True).rstrip(), "```", ""]
    return "\n".join(lines)


def checker_summary(base: pd.DataFrame, dpo: dict[int, pd.DataFrame], threshold: float, alpha: float,
                    resamples: int, seed: int, n_examples: int) -> dict:
    """The checker's agreement with regex + NER over every evaluation summary of this report (the
    base model's and each seed's), and examples of each disagreement."""
    frames = [base.assign(model="base")] + [frame.assign(model=f"seed {s}") for s, frame in dpo.items()]
    pooled = pd.concat(frames, ignore_index=True)
    return {**agreement(frames, threshold, 1 - alpha, resamples, seed),
            "examples": disagreements(pooled, threshold, n_examples)}


def checker_section(summary: dict, level: str, reference: str = "article_and_highlights") -> list[str]:
    """The 2 x 2 agreement table, kappa, and the disagreements. ``reference``: scoring.reference."""
    t, n = summary["table"], summary["summaries"]
    kappa = ("undefined (one of them flags every summary or none)" if summary["kappa"] is None else
             f"{summary['kappa']:.2f} [{summary['kappa_low']:.2f}, {summary['kappa_high']:.2f}]")
    lines = [
        "## Second opinion: the checker and regex + NER", "",
        f"Every evaluation summary of this report ({n}: the base model's and each seed's, {summary['articles']} "
        f"articles), flagged by regex + NER (a hallucinated entity or number) and by the checker (support at most "
        f"{summary['threshold']:g}):", "",
        "| | Checker: unsupported | Checker: supported |", "|---|---:|---:|",
        f"| Regex + NER: flagged | {t['both']} | {t['regex_only']} |",
        f"| Regex + NER: clean | {t['checker_only']} | {t['neither']} |", "",
        f"Cohen's kappa {kappa} ({level} bootstrap interval, articles resampled with all their summaries). "
        + ("They judge against different evidence: regex + NER accept an entity or number found in the article or "
           "in the reference highlights; the checker reads the article (as the prompt gave it) alone. "
           if reference == "article_and_highlights" else
           "Both judge against the article as the prompt gave it, alone (`scoring.reference: article`): regex + NER "
           "accept an entity or number found there, and the checker reads it. ")
        + "Regex + NER see "
        "invented names and figures; the checker also sees claims that misuse the article's own names and figures "
        "(roles swapped, a negation), and can miss what its training did not cover. An empty summary claims "
        "nothing: neither flags it (support 1.0); punctuation-only and looping summaries are judged as written.", "",
    ]
    titles = {"checker_only": "Unsupported by the checker, clean for regex + NER (lowest support first)",
              "regex_only": "Flagged by regex + NER, supported by the checker (highest support first)"}
    for kind, title in titles.items():
        lines += [f"### {title}", ""]
        shown = summary["examples"][kind]
        if not shown:
            lines += ["None in this sample.", ""]
        for e in shown:
            items = f"; regex + NER: {', '.join(e['items'])}" if e["items"] else ""
            weakest = f" (weakest sentence: \"{e['weakest_sentence']}\")" if e["sentences"] > 1 else ""
            lines += [f"- {e['model']}, article `{e['id'][:12]}`, support {e['support']:.3f}{items}: "
                      + _one_line(e["summary"]) + weakest]
        lines.append("")
    return lines


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
    scores_base: str, scores_dpo: list[str], data: str, pairs: str, log_history: list[str], output: str,
    metrics_out: str, figures_dir: str, config: dict, data_stats: list[str], prompts: list[str], selection: str,
    benchmarks: list[str] = (), cost_out: str | None = None, alpha: float = 0.05, resamples: int = 2000,
    n_examples: int = 3, seed: int = 0, seeds: list[int] = (0,), checks_base: list[str] = (),
    checks_dpo: list[str] = (), checker_threshold: float | None = None,
) -> dict:
    """Compute every number of the report from the artifacts; write report.md, metrics.json and the figures.

    ``scores_dpo`` and ``log_history``: one file per training seed of ``seeds``, in that order;
    empty when the experiment had too few pairs to train (``selection`` says so and why): the
    report then shows the base model alone. ``seed`` seeds the resampling. ``benchmarks``: the
    Snakemake benchmark files of the steps behind it (its Cost section), written per job to
    ``cost_out`` for the comparison. ``checks_base`` and ``checks_dpo`` (with ``checker_threshold``):
    the checker's scores of the same summaries, when scoring.checker is enabled.
    """
    sel = read_json(selection)
    trained, seeds = sel["trained"], list(seeds)
    expected = len(seeds) if trained else 0
    if len(scores_dpo) != expected or len(log_history) != expected:
        raise ValueError(f"{selection} says trained={trained} with training seeds {seeds}, but "
                         f"{len(scores_dpo)} DPO score file(s) and {len(log_history)} training log(s) were given")
    base_df = read_parquet(scores_base)
    data_df = read_parquet(data, ["id", "article", "highlights"])
    pairs_df = read_parquet(pairs, ["id", "chosen_tokens", "rejected_tokens", "chosen_badness", "rejected_badness"])
    dpo = {s: read_parquet(path) for s, path in zip(seeds, scores_dpo)}
    checked = checker_threshold is not None
    if checked:
        if len(checks_base) != 1 or len(checks_dpo) != len(scores_dpo):
            raise ValueError(f"the checker is enabled: one check file per score file is needed, got "
                             f"{len(checks_base)} for the base model and {len(checks_dpo)} for {len(scores_dpo)} DPO")
        base_df = with_checks(base_df, checks_base[0])
        dpo = {s: with_checks(frame, path) for (s, frame), path in zip(dpo.items(), checks_dpo)}
    histories = {s: read_json(path) for s, path in zip(seeds, log_history)}
    if trained:
        comparison = compare(base_df, dpo, alpha, resamples, seed, metrics_for(checker_threshold))
        paired = paired_scores(base_df, dpo[seeds[0]])
    else:
        comparison = base_only(base_df, alpha, resamples, seed, checker_threshold)
        paired = base_df.rename(columns={"summary": "summary_base"})
    highlights = base_df[["id"]].merge(data_df, on="id", how="left")["highlights"]
    curves = {s: training_curves(h) for s, h in histories.items()}
    metrics = {
        "experiment": config.get("experiment", "main"),
        "pairs_config": config.get("pairs", {}),
        "trained": trained,
        "seeds": seeds if trained else [],
        "selection": sel,
        "alpha": alpha,
        "resamples": resamples,
        "n_validation": len(base_df),
        "comparison": comparison,
        # the base model's values, the same for every experiment of a run (the comparison checks)
        "base": {r["key"]: r["base"]["value"] for r in comparison},
        "quality": quality(base_df["summary"], [(s, frame.set_index("id").loc[base_df["id"], "summary"])
                                                for s, frame in dpo.items()], highlights),
        "pairs": pair_confounds(pairs_df),
        "training": [{"seed": s, **training_summary(h)} for s, h in histories.items()],
        "training_warnings": [f"seed {s}: {w}" for s, c in curves.items() for w in training_warnings(c)],
        "data": data_checks(data_stats, prompts),
        "checker": checker_summary(base_df, dpo, checker_threshold, alpha, resamples, seed, n_examples)
        if checked else None,
    }
    here = Path(output).parent
    figures = {k: os.path.relpath(Path(figures_dir) / name, here) for k, name in FIGURES.items()}
    rates_figure(comparison, str(Path(figures_dir) / FIGURES["rates"]), fmt_level(alpha))
    training_figure(curves, str(Path(figures_dir) / FIGURES["training"]),
                    note=None if trained else f"Not trained: {sel['pairs']} pair(s) < pairs.min_pairs")
    pair_lengths_figure(pairs_df, str(Path(figures_dir) / FIGURES["pair_lengths"]))
    files = [("Base model scores", [scores_base]), ("DPO model scores, one per seed", scores_dpo),
             ("Checker scores, base then one per seed", list(checks_base) + list(checks_dpo)),
             ("Preference pairs", [pairs]), ("Pair selection", [selection]),
             ("Training log history, one per seed", log_history), ("Metrics (JSON)", [metrics_out])]
    links = {name: [os.path.relpath(path, here) for path in paths] for name, paths in files if paths}
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
