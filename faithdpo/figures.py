"""Report stage: the report's pictures (matplotlib, PNG): rates with intervals, training curves,
pair lengths."""

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


def _seed_colors(n: int) -> list:
    """One color per training seed, in DPO's orange family, light to dark."""
    import matplotlib

    cmap = matplotlib.colormaps["Oranges"]
    return [cmap(0.45 + 0.45 * i / max(n - 1, 1)) for i in range(n)]


# The panels of the rates figure: each holds the metrics of one kind, on one scale.
RATE_PANELS = (("rate", "share of summaries (%)", 100), ("count", "hallucinated items per summary", 1),
               ("ratio", "share of items (%)", 100), ("score", "mean support (0 to 1)", 1))
PANEL_TITLES = {"rate": "Shares of summaries (lower is better)",
                "count": "Hallucinated items (lower is better)",
                "ratio": "Precision-source, recall-target (higher is better)",
                "score": "Checker support (higher is better)"}


def _panel_grid(fig, panels: list[tuple], rows: list[dict]) -> list:
    """The rates on a wide panel on top, the other kinds side by side below it, each as wide as its
    number of metrics asks (so that a bar is about as wide in every panel)."""
    if len(panels) == 1:
        return [fig.add_subplot()]
    # at least 3: room for the panel's title above a single metric
    below = [max(sum(r["kind"] == kind for r in rows) + 1, 3) for kind, _, _ in panels[1:]]
    grid = fig.add_gridspec(2, len(below), width_ratios=below, height_ratios=(1.1, 1))
    return [fig.add_subplot(grid[0, :])] + [fig.add_subplot(grid[1, i]) for i in range(len(below))]


def rates_figure(rows: list[dict], path: str, level: str) -> None:
    """Bars of every metric, base beside the DPO model of each training seed, with its bootstrap
    interval (at ``level``, e.g. "95%") as error bars; one panel per kind of metric (the rates on
    top, the checker's mean support in a panel of its own where the checker ran). A bar of height
    0 is labelled "0" and a metric without a value "n/a", so that neither reads as a missing bar.
    Sized to be read at about 900 pixels wide (a README, the report rendered on a forge).

    ``rows``: one dict per metric with ``label``, ``kind``, ``base`` (``value``, ``low``,
    ``high``) and, when trained, ``seeds`` (each with ``seed`` and ``dpo`` likewise).
    """
    plt = _pyplot()
    trained = "seeds" in rows[0]
    seeds = [e["seed"] for e in rows[0]["seeds"]] if trained else []
    bars = [("Base", BASE_COLOR, lambda r: r["base"])]
    bars += [(f"Post-DPO, seed {s}", color, lambda r, i=i: r["seeds"][i]["dpo"])
             for i, (s, color) in enumerate(zip(seeds, _seed_colors(len(seeds))))]
    width = 0.8 / len(bars)
    fig = plt.figure(figsize=(10, 7.5), layout="constrained")
    panels = [panel for panel in RATE_PANELS if any(r["kind"] == panel[0] for r in rows)]
    axes = _panel_grid(fig, panels, rows)
    for ax, (kind, ylabel, scale) in zip(axes, panels):
        group = [r for r in rows if r["kind"] == kind]
        top = 1.0
        for j, (name, color, estimate) in enumerate(bars):
            values = [estimate(r) for r in group]
            shown = [v if v["value"] is not None else {"value": 0.0, "low": 0.0, "high": 0.0} for v in values]
            heights = [scale * v["value"] for v in shown]
            err = [[scale * (v["value"] - v["low"]) for v in shown], [scale * (v["high"] - v["value"]) for v in shown]]
            x = [i + (j - (len(bars) - 1) / 2) * width for i in range(len(group))]
            ax.bar(x, heights, width, yerr=err, capsize=3, color=color, label=name)
            for xi, v, s in zip(x, values, shown):
                if v["value"] is None or v["value"] == 0:  # nothing drawn: say what is there
                    ax.annotate("n/a" if v["value"] is None else "0", (xi, 0), xytext=(0, 2),
                                textcoords="offset points", ha="center", va="bottom", fontsize=8, color="0.3",
                                rotation=90 if v["value"] is None else 0)
            top = max([top] + [scale * v["high"] for v in shown])
        wrap = 24 if ax is axes[0] else 13  # the bottom panels share the width
        ax.set_xticks(range(len(group)), [textwrap.fill(r["label"], wrap) for r in group], fontsize=9)
        ax.tick_params(axis="y", labelsize=9)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.set_title(PANEL_TITLES[kind], fontsize=10)
        if ax is axes[0]:  # one legend, on the wide top panel: the colors are the same in every panel
            ax.set_ylim(0, 1.3 * top)  # headroom for the legend, above every bar and interval
            ax.legend(loc="upper center", ncol=len(bars), fontsize=9)
        else:
            ax.set_ylim(0, 1.1 * top)
    paired = "paired " if trained else ""
    fig.suptitle(f"Hallucination on the validation sample ({level} {paired}bootstrap intervals)", fontsize=12)
    _save(fig, path)


def training_figure(curves: dict, path: str, note: str | None = None) -> None:
    """Loss, reward accuracy, reward margin and the chosen/rejected log-probabilities over steps,
    one line per training seed (``curves``: seed -> training_curves frame); ``note`` instead of
    curves when there was no training."""
    plt = _pyplot()
    if note:
        fig, ax = plt.subplots(figsize=(10, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, note, ha="center", va="center", fontsize=12)
        _save(fig, path)
        return
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    panels = [("loss", ["loss"]), ("reward accuracy", ["rewards/accuracies"]), ("reward margin", ["rewards/margins"]),
              ("log-probability (solid: chosen, dashed: rejected)", ["logps/chosen", "logps/rejected"])]
    colors = _seed_colors(len(curves))
    for ax, (title, keys) in zip(axes.flat, panels):
        for (seed, frame), color in zip(curves.items(), colors):
            for key, style in zip(keys, ("-", "--")):
                ax.plot(frame["step"], frame[key], style, marker=".", color=color,
                        label=f"seed {seed}" if key == keys[0] else None)
        ax.set_title(title)
    axes.flat[0].legend(loc="best", fontsize=8)  # where it covers the fewest points
    for ax in axes[1]:
        ax.set_xlabel("optimizer step")
    fig.suptitle("DPO training, one line per seed (separation of the pairs, not faithfulness)")
    _save(fig, path)


def _integer_bins(values, most: int = 40):
    """Histogram edges for integer values: one bin per integer, centered on it (or, past ``most``
    integers, bins of several), so that bars neither leave gaps nor straddle two values."""
    import numpy as np

    values = [v for v in values if v == v]  # NaN: no bin
    low, high = int(min(values)), int(max(values))
    step = max(1, -(-(high - low + 1) // most))
    return np.arange(low, high + step + 1, step) - 0.5


def pair_lengths_figure(pairs: pd.DataFrame, path: str) -> None:
    """Token lengths of chosen vs rejected, and their difference per pair."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    if len(pairs):
        lengths = pd.concat([pairs["chosen_tokens"], pairs["rejected_tokens"]])
        bins = _integer_bins(lengths)
        left.hist(pairs["chosen_tokens"], bins=bins, alpha=0.6, color=BASE_COLOR, label="chosen")
        left.hist(pairs["rejected_tokens"], bins=bins, alpha=0.6, color=DPO_COLOR, label="rejected")
        left.legend(loc="best")
        diff = pairs["chosen_tokens"] - pairs["rejected_tokens"]
        right.hist(diff, bins=_integer_bins(list(diff) + [0]), color="#55A868")
        # behind the bars: a bar at 0 (as long as each other) stays visible
        right.axvline(0, color="black", linewidth=1, linestyle="--", zorder=0)
    else:
        for ax in (left, right):
            ax.text(0.5, 0.5, "no preference pairs", ha="center", va="center", transform=ax.transAxes)
    left.set_xlabel("tokens")
    right.set_xlabel("chosen - rejected tokens (per pair)")
    for ax in (left, right):
        ax.set_ylabel("pairs")
        if len(pairs):  # token counts and pair counts are integers: no 2.5 pairs on an axis
            ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Preference pair lengths: a model could learn these instead of faithfulness")
    _save(fig, path)
