"""Report stage: what the preference pairs and the training run could have taught instead of
faithfulness.

Synthetic rejections differ from the highlights in more than hallucinations (length,
style), and DPO happily learns whatever separates the pairs. Reward accuracy and loss
measure that separation, not faithfulness. These checks make both visible.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# A feature that picks the chosen side in more than this share of pairs could separate
# them alone, and the policy may learn it instead of faithfulness.
CONFOUND_SHARE = 0.9
TRAINING_KEYS = ("loss", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected")


def pair_confounds(pairs: pd.DataFrame, threshold: float = CONFOUND_SHARE) -> dict:
    """Length and badness-margin statistics of the pairs, with warnings for strong confounds."""
    if pairs.empty:
        return {"pairs": 0, "warnings": []}
    chosen, rejected = pairs["chosen_tokens"].astype(float), pairs["rejected_tokens"].astype(float)
    margin = (pairs["rejected_badness"] - pairs["chosen_badness"]).astype(float)
    shorter, longer = float((chosen < rejected).mean()), float((chosen > rejected).mean())
    stats = {
        "pairs": len(pairs),
        "chosen_tokens_mean": float(chosen.mean()),
        "rejected_tokens_mean": float(rejected.mean()),
        "chosen_tokens_median": float(chosen.median()),
        "rejected_tokens_median": float(rejected.median()),
        "share_chosen_shorter": shorter,
        "share_chosen_longer": longer,
        "badness_margin_mean": float(margin.mean()),
        "badness_margin_median": float(margin.median()),
        "badness_margin_min": float(margin.min()),
        "badness_margin_max": float(margin.max()),
    }
    warnings = []
    for share, side in ((shorter, "shorter"), (longer, "longer")):
        if share > threshold:
            warnings.append(
                f"Length confound: the chosen text is {side} than the rejected one in {100 * share:.0f}% of pairs, "
                f"so length alone separates the pairs; DPO may learn length instead of faithfulness."
            )
    stats["warnings"] = warnings
    return stats


def training_curves(history: list[dict]) -> pd.DataFrame:
    """One row per logged training step with the DPO quantities the report plots."""
    rows = [{"step": h.get("step"), **{k: h.get(k) for k in TRAINING_KEYS}} for h in history if "loss" in h]
    return pd.DataFrame(rows, columns=["step", *TRAINING_KEYS])


def training_warnings(curves: pd.DataFrame, early: float = 0.5) -> list[str]:
    """Known DPO failure signs: reward accuracy pinned at 1.0 early, chosen log-probabilities falling."""
    warnings = []
    acc = curves["rewards/accuracies"].dropna().to_numpy()
    if len(acc) >= 2 and acc[-1] >= 1.0:
        below = np.flatnonzero(acc < 1.0)
        first_saturated = int(below[-1]) + 1 if len(below) else 0  # from here on it stays at 1.0
        if first_saturated <= early * (len(acc) - 1):
            warnings.append(
                f"Reward accuracy reached 1.0 by logged step {first_saturated + 1} of {len(acc)} and stayed there: "
                "the pairs are trivially separable, so accuracy says nothing about faithfulness."
            )
    chosen = curves["logps/chosen"].dropna().to_numpy()
    if len(chosen) >= 4:
        quarter = max(1, len(chosen) // 4)
        start, end = float(chosen[:quarter].mean()), float(chosen[-quarter:].mean())
        if end < start:
            warnings.append(
                f"Chosen log-probabilities fell during training ({start:.1f} -> {end:.1f}, first vs last quarter "
                "of steps): DPO pushed the rejected side down faster than it raised the chosen one."
            )
    return warnings
