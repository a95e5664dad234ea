"""The report's pictures (matplotlib, PNG): rates with intervals, training curves, pair lengths."""

from __future__ import annotations

import textwrap

import pandas as pd

from faithdpo.io import atomic_path

BASE_COLOR, DPO_COLOR = "#4C72B0", "#DD8452"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on cluster nodes
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)


def rates_figure(rows: list[dict], path: str, confidence: float) -> None:
    """Grouped bars, base vs DPO, with the bootstrap interval (at ``confidence``) of each rate as error bars.

    ``rows``: one dict per metric with ``label``, ``pct`` and ``base``/``dpo`` sub-dicts
    holding ``value``, ``low``, ``high`` (no ``dpo`` when the experiment was not trained).
    """
    plt = _pyplot()
    groups = [[r for r in rows if r["pct"]], [r for r in rows if not r["pct"]]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, group, ylabel in zip(axes, groups, ["share of summaries (%)", "hallucinated items per summary"]):
        scale = 100 if group and group[0]["pct"] else 1
        sides = [(-0.2, "base", BASE_COLOR), (0.2, "dpo", DPO_COLOR)] if "dpo" in rows[0] else [(0, "base", BASE_COLOR)]
        for offset, side, color in sides:
            values = [scale * r[side]["value"] for r in group]
            err = [[scale * (r[side]["value"] - r[side]["low"]) for r in group],
                   [scale * (r[side]["high"] - r[side]["value"]) for r in group]]
            ax.bar([i + offset for i in range(len(group))], values, 0.4, yerr=err, capsize=4, color=color,
                   label="Base" if side == "base" else "Post-DPO")
        ax.set_xticks(range(len(group)), [textwrap.fill(r["label"], 20) for r in group], fontsize=8)
        ax.set_ylabel(ylabel)
        top = max([scale * r[side]["high"] for r in group for _, side, _ in sides], default=1)
        ax.set_ylim(0, 1.25 * top or 1)  # headroom for the legend
        ax.legend(loc="upper center", ncol=2)
    paired = "paired " if "dpo" in rows[0] else ""
    fig.suptitle(f"Hallucination on the validation sample ({100 * confidence:.0f}% {paired}bootstrap intervals)")
    _save(fig, path)


def training_figure(curves: pd.DataFrame, path: str, note: str | None = None) -> None:
    """Loss, reward accuracy, reward margin and the chosen/rejected log-probabilities over steps;
    ``note`` instead of curves when there was no training."""
    plt = _pyplot()
    if note:
        fig, ax = plt.subplots(figsize=(10, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, note, ha="center", va="center", fontsize=12)
        _save(fig, path)
        return
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    panels = [("loss", ["loss"]), ("reward accuracy", ["rewards/accuracies"]), ("reward margin", ["rewards/margins"]),
              ("log-probability", ["logps/chosen", "logps/rejected"])]
    for ax, (title, keys) in zip(axes.flat, panels):
        for key in keys:
            ax.plot(curves["step"], curves[key], marker=".", label=key)
        ax.set_title(title)
        if len(keys) > 1:
            ax.legend()
    for ax in axes[1]:
        ax.set_xlabel("optimizer step")
    fig.suptitle("DPO training (separation of the pairs, not faithfulness)")
    _save(fig, path)


def pair_lengths_figure(pairs: pd.DataFrame, path: str) -> None:
    """Token lengths of chosen vs rejected, and their difference per pair."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    upper = max(int(pairs[["chosen_tokens", "rejected_tokens"]].max().max()) if len(pairs) else 1, 1)
    bins = range(0, upper + 2, max(1, upper // 30))
    left.hist(pairs["chosen_tokens"], bins=bins, alpha=0.6, color=BASE_COLOR, label="chosen")
    left.hist(pairs["rejected_tokens"], bins=bins, alpha=0.6, color=DPO_COLOR, label="rejected")
    left.set_xlabel("tokens")
    left.set_ylabel("pairs")
    left.legend()
    right.hist(pairs["chosen_tokens"] - pairs["rejected_tokens"], bins=30, color="#55A868")
    right.axvline(0, color="black", linewidth=1)
    right.set_xlabel("chosen - rejected tokens")
    fig.suptitle("Preference pair lengths: a model could learn these instead of faithfulness")
    _save(fig, path)
