import pandas as pd

from faithdpo.diagnostics import pair_confounds, training_curves, training_warnings


def pairs(chosen, rejected, margin=3):
    return pd.DataFrame({"chosen_tokens": chosen, "rejected_tokens": rejected, "chosen_badness": 0,
                         "rejected_badness": margin})


def test_length_confound_is_flagged_when_length_alone_separates_the_pairs():
    stats = pair_confounds(pairs([10] * 19 + [30], [25] * 20))
    assert stats["share_chosen_shorter"] == 0.95
    assert len(stats["warnings"]) == 1 and "shorter than the rejected one in 95% of pairs" in stats["warnings"][0]


def test_balanced_lengths_raise_no_warning():
    stats = pair_confounds(pairs([10, 30, 20, 20], [20, 20, 20, 10]))
    assert (stats["share_chosen_shorter"], stats["share_chosen_longer"]) == (0.25, 0.5)
    assert stats["warnings"] == []
    assert stats["badness_margin_mean"] == 3.0


def test_no_pairs():
    assert pair_confounds(pairs([], []))["pairs"] == 0


def history(acc, chosen):
    return [{"loss": 0.5, "step": i + 1, "rewards/accuracies": a, "rewards/margins": 0.1, "logps/chosen": c,
             "logps/rejected": c - 1} for i, (a, c) in enumerate(zip(acc, chosen))] + [{"train_runtime": 1.0}]


def test_training_curves_keep_logged_steps_only():
    curves = training_curves(history([0.5, 1.0], [-10, -9]))
    assert list(curves["step"]) == [1, 2] and list(curves["logps/chosen"]) == [-10, -9]


def test_early_saturation_and_falling_chosen_logps_are_flagged():
    warnings = training_warnings(training_curves(history([0.5, 1, 1, 1, 1, 1, 1, 1], [-10, -11, -12, -14, -15, -18,
                                                                                      -20, -25])))
    assert any("Reward accuracy reached 1.0 by logged step 2 of 8" in w for w in warnings)
    assert any("Chosen log-probabilities fell" in w for w in warnings)


def test_healthy_run_has_no_warnings():
    assert training_warnings(training_curves(history([0.5, 0.5, 0.75, 0.5, 1, 0.75, 1, 1],
                                                     [-10, -9, -9, -8, -8, -7, -7, -6]))) == []
