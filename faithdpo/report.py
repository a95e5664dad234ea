"""The experiment's report: hallucination rates of base vs DPO, and how training went.

Loss and reward accuracy are shown beside the target metric on purpose: the seed's run
reached 100% reward accuracy while faithfulness did not move.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import yaml

from faithdpo.io import read_json, read_parquet, write_json, write_text
from faithdpo.scoring import hallucination_rates

log = logging.getLogger(__name__)

RATE_ROWS = [
    ("Entity Hallucination Rate", "entity_rate", True),
    ("Number Hallucination Rate", "number_rate", True),
    ("Hallucinated entities per summary", "entities_per_summary", False),
    ("Hallucinated numbers per summary", "numbers_per_summary", False),
]


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


def _fmt(value: float, pct: bool) -> str:
    return f"{100 * value:.1f}%" if pct else f"{value:.3f}"


def _delta(value: float, pct: bool) -> str:
    return f"{100 * value:+.1f} pp" if pct else f"{value:+.3f}"


def render(metrics: dict, config: dict, links: dict[str, str]) -> str:
    base, dpo, train = metrics["base"], metrics["dpo"], metrics["training"]
    lines = [
        "# faithdpo report",
        "",
        f"Base model `{config.get('model', {}).get('name', '?')}`, DPO on {metrics['pairs']} preference pairs, "
        f"evaluated on {base['n']} validation summaries per model (greedy decoding).",
        "",
        "## Hallucination on the validation sample",
        "",
        "| Metric | Base | Post-DPO | Delta |",
        "|---|---:|---:|---:|",
    ]
    for label, key, pct in RATE_ROWS:
        lines.append(f"| {label} | {_fmt(base[key], pct)} | {_fmt(dpo[key], pct)} | {_delta(dpo[key] - base[key], pct)} |")
    lines += [
        "",
        "Rates are the share of summaries with at least one hallucinated entity (number); the per-summary "
        "rows count distinct hallucinated items.",
        "",
        "## DPO training",
        "",
        "| Quantity | Value |",
        "|---|---:|",
        f"| Preference pairs | {metrics['pairs']} |",
    ]
    if train.get("steps"):
        lines += [
            f"| Optimizer steps | {train['steps']} |",
            f"| DPO training loss (final) | {train['final_loss']:.4f} |",
            f"| Loss drop from first logged step | {train['loss_drop_pct']:.1f}% |",
            f"| Reward accuracy (final) | {100 * (train['reward_accuracy'] or 0):.1f}% |",
            f"| Reward margin (final) | {train['reward_margin'] or 0:.4f} |",
        ]
    lines += [
        "",
        "Loss and reward accuracy measure how well the policy separates chosen from rejected, not "
        "faithfulness: judge the run by the hallucination table above.",
        "",
        "## Files",
        "",
    ]
    lines += [f"- {name}: [{target}]({target})" for name, target in links.items()]
    lines += ["", "## Config", "", "```yaml", yaml.safe_dump(config, sort_keys=True).rstrip(), "```", ""]
    return "\n".join(lines)


def build_report(
    scores_base: str, scores_dpo: str, pairs: str, log_history: str, output: str, metrics_out: str, config: dict
) -> dict:
    """Compute the report's numbers from the score files and write report.md + metrics.json."""
    metrics = {
        "base": hallucination_rates(read_parquet(scores_base)),
        "dpo": hallucination_rates(read_parquet(scores_dpo)),
        "pairs": len(read_parquet(pairs, ["id"])),
        "training": training_summary(read_json(log_history)),
    }
    here = Path(output).parent
    links = {
        name: os.path.relpath(path, here)
        for name, path in [("Base model scores", scores_base), ("DPO model scores", scores_dpo),
                           ("Preference pairs", pairs), ("Training log history", log_history),
                           ("Metrics (JSON)", metrics_out)]
    }
    write_json(metrics, metrics_out)
    write_text(render(metrics, config, links), output)
    log.info("report written to %s", output)
    return metrics
