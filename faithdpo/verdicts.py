"""Report stage: what DPO changed, per training seed and across seeds, and the words that say it.

Every metric is a statistic of the validation articles, both models scored on the same ones:
a share of summaries (a rate), a mean count per summary, an item-pooled ratio
(precision-source, recall-target), or the checker's mean support (a score). For each training seed the report gives the paired delta,
its bootstrap interval and a paired test of that same quantity: McNemar's test for rates, a
paired randomisation test of the mean or ratio otherwise, so that direction, interval and
p-value never speak of different things. The **primary family**, the entity and number rates
of every seed (and, where the checker ran, its unsupported share and mean support), is
Holm-adjusted; every other row is secondary and unadjusted. One training run
is one draw: across seeds the report gives the mean delta, its spread and how many seeds reach
each verdict ("k of N seeds"), the claim a recipe can make.

Used by the per-experiment report and by the comparison, which re-adjusts the primary family
over every experiment it shows.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from faithdpo.quality import is_failed
from faithdpo.stats import (
    holm, mcnemar, mcnemar_mde, mean_interval, paired_bootstrap, paired_rate_interval, paired_swap_test, verdict,
)

# The power the detectable-change statements are computed for.
POWER = 0.8
# Fewer articles whose count or ratio differs between the models, and a bootstrap of the articles
# cannot bound the change (it resamples only the few differences there are): no range is stated.
MIN_DIFFERING = 10
NO_SIGNIFICANT_CHANGE = "no significant change"


def _count(column: str) -> Callable[[pd.DataFrame], np.ndarray]:
    return lambda s: s[column].map(len).to_numpy(dtype=float)


@dataclass(frozen=True)
class Metric:
    """One row of the report: how each summary contributes (``num`` over ``den``, or the mean
    of ``num``), and whether a fall is good news."""

    label: str
    key: str
    kind: str  # rate (share of summaries) | count (mean per summary) | ratio (pooled over items) | score (mean, 0-1)
    num: Callable[[pd.DataFrame], np.ndarray]
    den: Callable[[pd.DataFrame], np.ndarray] | None = None
    lower_is_better: bool = True
    primary: bool = False

    @property
    def pct(self) -> bool:
        """Shown in percent (rates and ratios), deltas in percentage points."""
        return self.kind in ("rate", "ratio")

    def values(self, scores: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        return self.num(scores).astype(float), None if self.den is None else self.den(scores).astype(float)


def _failed(s: pd.DataFrame) -> np.ndarray:
    return s["summary"].map(is_failed).to_numpy()


def _supported(items: str, hallucinated: str) -> Callable[[pd.DataFrame], np.ndarray]:
    return lambda s: _count(items)(s) - _count(hallucinated)(s)


METRICS = [
    Metric("Entity Hallucination Rate", "entity_rate", "rate",
           lambda s: (s["ent_hallucinations"] > 0).to_numpy(), primary=True),
    Metric("Number Hallucination Rate", "number_rate", "rate",
           lambda s: (s["num_hallucinations"] > 0).to_numpy(), primary=True),
    # An empty, punctuation-only or looping summary states nothing and so hallucinates nothing:
    # it is counted as a failure, on its own and with the hallucinations, never as clean.
    Metric("Failed summaries (empty, punctuation only, a loop)", "failure_rate", "rate", _failed),
    Metric("Hallucinating or failed summaries", "hallucination_or_failure_rate", "rate",
           lambda s: ((s["ent_hallucinations"] > 0) | (s["num_hallucinations"] > 0)).to_numpy() | _failed(s)),
    Metric("Hallucinated entities per summary", "entities_per_summary", "count",
           lambda s: s["ent_hallucinations"].to_numpy()),
    Metric("Hallucinated numbers per summary", "numbers_per_summary", "count",
           lambda s: s["num_hallucinations"].to_numpy()),
    # Nan et al. (2021), pooled over items: a summary with no items adds nothing to a precision;
    # one that keeps none of the highlights' items adds its misses to the recall.
    Metric("Entity precision-source", "entity_precision_source", "ratio",
           _supported("entities", "hallucinated_entities"), _count("entities"), lower_is_better=False),
    Metric("Entity recall-target", "entity_recall_target", "ratio",
           _count("kept_entities"), _count("target_entities"), lower_is_better=False),
    Metric("Number precision-source", "number_precision_source", "ratio",
           _supported("numbers", "hallucinated_numbers"), _count("numbers"), lower_is_better=False),
    Metric("Number recall-target", "number_recall_target", "ratio",
           _count("kept_numbers"), _count("target_numbers"), lower_is_better=False),
]


def checker_metrics(threshold: float) -> list[Metric]:
    """The checker's rows (scores joined with the checker's ``support``), both in the primary
    family: the share of unsupported summaries (support at most ``threshold``, MiniCheck's rule
    that a claim is supported above 0.5) and the mean support."""
    return [
        Metric("Checker: unsupported summaries", "checker_unsupported_rate", "rate",
               lambda s: (s["support"] <= threshold).to_numpy(), primary=True),
        Metric("Checker: mean support", "checker_support", "score", lambda s: s["support"].to_numpy(),
               lower_is_better=False, primary=True),
    ]


def metrics_for(checker_threshold: float | None) -> list[Metric]:
    """The report's metrics: regex + NER's, and the checker's where it ran."""
    return METRICS + ([] if checker_threshold is None else checker_metrics(checker_threshold))


# The rate a recall-target row guards: a rate that falls with its recall "says less".
RECALL_OF = {"entity_rate": "entity_recall_target", "number_rate": "number_recall_target"}


def paired_scores(base: pd.DataFrame, dpo: pd.DataFrame) -> pd.DataFrame:
    """Base and DPO scores of the same articles side by side (suffixes _base, _dpo), in the
    base file's order, so that every seed's frame lines up article by article."""
    if set(base["id"]) != set(dpo["id"]) or len(base) != len(dpo):
        raise ValueError("base and DPO evaluations must cover the same validation articles, once each")
    return base.merge(dpo, on="id", suffixes=("_base", "_dpo"), validate="one_to_one")


def side(paired: pd.DataFrame, name: str) -> pd.DataFrame:
    """One model's columns of a :func:`paired_scores` frame, without the suffix."""
    cols = [c for c in paired.columns if c.endswith(f"_{name}")]
    return paired[cols].rename(columns=lambda c: c[: -len(name) - 1])


def _ratio(num: np.ndarray, den: np.ndarray | None) -> float | None:
    if den is None:
        return float(num.mean())
    return float(num.sum() / den.sum()) if den.sum() > 0 else None


def _estimate(value: float | None, interval) -> dict:
    return {"value": value, "low": float(interval.low), "high": float(interval.high)}


def base_estimates(base: pd.DataFrame, confidence: float, resamples: int, seed: int,
                   metrics: list[Metric] = METRICS) -> dict[str, dict]:
    """Each metric of the base model alone with its bootstrap interval (value None: no items)."""
    out = {}
    for metric in metrics:
        num, den = metric.values(base)
        out[metric.key] = _estimate(_ratio(num, den), mean_interval(num, confidence, resamples, seed, den=den))
    return out


def seed_result(metric: Metric, base: pd.DataFrame, dpo: pd.DataFrame, alpha: float, resamples: int,
                seed: int) -> dict:
    """One seed's paired comparison of ``metric``: the DPO value, the delta with its interval,
    the test of that delta and its unadjusted p-value (the verdict comes with the family).
    A rate's delta interval is Tango's score interval, which matches McNemar's test and holds
    when few articles changed; the other intervals are paired bootstraps of the articles."""
    (b, b_den), (d, d_den) = metric.values(base), metric.values(dpo)
    ci = paired_bootstrap(b, d, 1 - alpha, resamples, seed, base_den=b_den, dpo_den=d_den)
    base_value, dpo_value = _ratio(b, b_den), _ratio(d, d_den)
    delta = None if base_value is None or dpo_value is None else dpo_value - base_value
    result = {"dpo": _estimate(dpo_value, ci["dpo"]), "delta": _estimate(delta, ci["delta"])}
    if metric.kind == "rate":
        test = mcnemar(b.astype(bool), d.astype(bool))
        result.update(test="McNemar (exact)" if test["exact"] else "McNemar (corrected chi-square)",
                      p_value=test["p_value"], discordant=test["b"] + test["c"],
                      delta=_estimate(delta, paired_rate_interval(test["b"], test["c"], len(b), 1 - alpha)))
    elif delta is None:
        result.update(test=None, p_value=None)
    else:
        differing = (b != d) if b_den is None else (b != d) | (b_den != d_den)
        result.update(test="paired randomisation test of the " + ("ratio" if metric.kind == "ratio" else "mean"),
                      p_value=paired_swap_test(b, d, resamples, seed, base_den=b_den, dpo_den=d_den),
                      differing=int(differing.sum()))
    return result


def compare(base: pd.DataFrame, dpo: dict[int, pd.DataFrame], alpha: float = 0.05, resamples: int = 2000,
            seed: int = 0, metrics: list[Metric] = METRICS) -> list[dict]:
    """Every metric, base vs the DPO model of each training seed (``dpo``: seed -> scores),
    with the verdicts of :func:`decide` and the across-seed summary."""
    paired = {s: paired_scores(base, frame) for s, frame in dpo.items()}
    base_side = side(next(iter(paired.values())), "base")
    estimates = base_estimates(base_side, 1 - alpha, resamples, seed, metrics)
    rows = []
    for metric in metrics:
        seeds = [{"seed": s, **seed_result(metric, base_side, side(p, "dpo"), alpha, resamples, seed)}
                 for s, p in paired.items()]
        pooled = (pooled_delta(metric, base_side, [side(p, "dpo") for p in paired.values()], alpha, resamples,
                               seed) if metric.primary else None)
        rows.append({"label": metric.label, "key": metric.key, "kind": metric.kind, "pct": metric.pct,
                     "primary": metric.primary, "lower_is_better": metric.lower_is_better,
                     "base": estimates[metric.key], "seeds": seeds, "pooled": pooled})
    decide(rows, alpha, len(base_side))
    return rows


def pooled_delta(metric: Metric, base: pd.DataFrame, dpos: list[pd.DataFrame], alpha: float, resamples: int,
                 seed: int) -> dict | None:
    """The delta with each article's DPO outcome averaged over the seeds, articles resampled:
    it conditions on these seeds (see POOLED_CAVEAT). None with one seed."""
    if len(dpos) < 2:
        return None
    b, b_den = metric.values(base)
    nums, dens = zip(*(metric.values(d) for d in dpos))
    d, d_den = np.mean(nums, axis=0), None if b_den is None else np.mean(dens, axis=0)
    base_value, dpo_value = _ratio(b, b_den), _ratio(d, d_den)
    if base_value is None or dpo_value is None:
        return None
    ci = paired_bootstrap(b, d, 1 - alpha, resamples, seed, base_den=b_den, dpo_den=d_den)["delta"]
    return _estimate(dpo_value - base_value, ci)


def decide(rows: list[dict], alpha: float, n: int) -> None:
    """Holm-adjust the primary family of one experiment's rows, then :func:`decide_given`."""
    adjust([rows])
    decide_given(rows, alpha, n, sum(len(row["seeds"]) for row in rows if row["primary"]))


def adjust(experiments: list[list[dict]]) -> int:
    """Set ``p_holm`` on every primary test of the experiments' rows, Holm-adjusted as one
    family, in place; the family's size."""
    primary = [entry for rows in experiments for row in rows if row["primary"] for entry in row["seeds"]]
    for entry, p_holm in zip(primary, holm([e["p_value"] for e in primary])):
        entry["p_holm"] = p_holm
    return len(primary)


def decide_given(rows: list[dict], alpha: float, n: int, m: int) -> None:
    """Give each seed of each row its verdict, in place, and each row its across-seed summary.
    Primary rows use their ``p_holm`` (a family of ``m`` tests; the detectable change is at
    alpha / m, the level Holm asks of the smallest p-value); secondary rows are unadjusted."""
    for row in rows:
        level = alpha / m if row["primary"] else alpha
        for entry in row["seeds"]:
            p = entry["p_holm"] if row["primary"] else entry["p_value"]
            delta = entry["delta"]["value"]
            entry["verdict"] = ("not measured: no items" if p is None or delta is None
                                else verdict(delta, p < alpha, row["lower_is_better"]))
            entry["interval_agrees"] = interval_agrees(entry)
            if row["kind"] == "rate":
                entry["power_change"] = mcnemar_mde(n, entry["discordant"], level, POWER)
                entry["power_alpha"] = level
        row["across"] = across_seeds(row["seeds"])


def interval_agrees(entry: dict) -> bool:
    """Whether the interval excludes 0 exactly when the verdict is a change."""
    delta = entry["delta"]
    if delta["value"] is None:
        return True
    excludes_zero = delta["low"] > 0 or delta["high"] < 0
    return excludes_zero == (entry["verdict"] != NO_SIGNIFICANT_CHANGE)


def across_seeds(entries: list[dict]) -> dict:
    """Mean delta, between-seed spread (SD with N - 1 degrees of freedom, min-max) and how many
    seeds reached each verdict."""
    deltas = np.array([e["delta"]["value"] for e in entries if e["delta"]["value"] is not None])
    return {
        "seeds": len(entries),
        "mean": float(deltas.mean()) if len(deltas) else None,
        "sd": float(deltas.std(ddof=1)) if len(deltas) > 1 else None,
        "min": float(deltas.min()) if len(deltas) else None,
        "max": float(deltas.max()) if len(deltas) else None,
        "verdicts": dict(Counter(e["verdict"] for e in entries).most_common()),
    }


# The words. Intervals are always at 1 - alpha and unadjusted; where they sit beside a
# Holm-adjusted verdict they are labelled so, and a row whose interval and verdict disagree says it.

def fmt_alpha(alpha: float) -> str:
    """Alpha as given (0.05, 0.0125), never rounded to fewer digits than it has."""
    return f"{alpha:.10g}"


def seeds_text(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def fmt_level(alpha: float) -> str:
    """The confidence level of the intervals, exact at any alpha: 95%, 97.5%, 99.9%."""
    return f"{100 * (1 - alpha):.10g}%"


def fmt_p(p: float, alpha: float) -> str:
    """A p-value with as many digits as it takes never to round across alpha (0.04996 is not "0.05")."""
    for digits in range(2, 17):
        text = f"{p:.{digits}g}"
        if (float(text) < alpha) == (p < alpha):
            return text
    return repr(p)


def fmt_pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def fmt_change(v: float, pct: bool) -> str:
    return f"{100 * v:+.1f} pp" if pct else f"{v:+.3f}"


def _estimate_text(v: dict, pct: bool, sign: str) -> str:
    """A value with its interval: "48.5% [41.5, 55.5]", "-7.5 pp [-11.5, -4.0]", "0.333 [...]"."""
    if v["value"] is None:
        return "no items"
    scale, spec = (100, f"{sign}.1f") if pct else (1, f"{sign}.3f")
    unit = ("% " if not sign else " pp ") if pct else " "
    return f"{scale * v['value']:{spec}}{unit}[{scale * v['low']:{spec}}, {scale * v['high']:{spec}}]"


def fmt_value(v: dict, pct: bool) -> str:
    return _estimate_text(v, pct, "")


def fmt_delta(v: dict, pct: bool) -> str:
    return _estimate_text(v, pct, "+")


def power_text(entry: dict) -> str:
    """What a rate's test could see: the change it detects with 80% power at its level (rounded
    up, so that the printed change has at least that power)."""
    change = entry.get("power_change")
    if change is not None:
        return (f"{100 * POWER:.0f}% power (at alpha {fmt_alpha(entry['power_alpha'])}) only for changes of "
                f"{math.ceil(1000 * change - 1e-9) / 10:.1f} pp or more")
    if not entry["discordant"]:
        return "no summary changed"
    return f"too few changed summaries for {100 * POWER:.0f}% power at any change"


def verdict_text(row: dict, entry: dict) -> str:
    """A seed's verdict in words that are true: a change, or what the interval still allows and
    what the test could have seen; and a disagreement of interval and test, where there is one."""
    word, pct = entry["verdict"], row["pct"]
    delta = entry["delta"]
    if word == NO_SIGNIFICANT_CHANGE:
        low, high = (fmt_change(delta[end], pct) for end in ("low", "high"))
        text = f"{word}; the data are consistent with a change from {low.removesuffix(' pp')} to {high}"
        if entry.get("differing", MIN_DIFFERING) < MIN_DIFFERING:
            n = entry["differing"]
            text = (f"{word}; {n} article{' differs' if n == 1 else 's differ'}: too few for the bootstrap interval "
                    "to bound the change")
        if row["kind"] == "rate":
            text += f"; {power_text(entry)}"
        if not entry["interval_agrees"]:
            text += " (the interval excludes 0 but the test does not reject: they disagree)"
        return text
    if word.startswith("not measured"):
        return word
    text = f"**{word}**"
    if not entry["interval_agrees"]:
        text += " (the test rejects but the interval includes 0: they disagree)"
    return text


def agreement_text(across: dict) -> str:
    """How many seeds reached each verdict: "improved in 2 of 3 seeds, no significant change in 1"."""
    (first, k), *rest = across["verdicts"].items()
    text = f"{first} in {k} of {seeds_text(across['seeds'])}"
    return text + "".join(f", {word} in {count}" for word, count in rest)


def spread_text(across: dict, pct: bool) -> str:
    """The mean delta over seeds with its spread: "mean -6.0 pp (SD 2.5; -9.5 to -3.5)"."""
    if across["mean"] is None:
        return "no items"
    scale, unit = (100, " pp") if pct else (1, "")
    digits = 1 if pct else 3
    if across["sd"] is None:
        return fmt_change(across["mean"], pct)
    return (f"mean {scale * across['mean']:+.{digits}f}{unit} (SD {scale * across['sd']:.{digits}f}; "
            f"{scale * across['min']:+.{digits}f} to {scale * across['max']:+.{digits}f})")


POOLED_CAVEAT = ("articles resampled, each article's outcome averaged over these seeds: the interval conditions "
                 "on these seeds and says nothing of a new one")
