"""The demo's world has headroom on any machine: its base model, rebuilt with other seeds (a
stand-in for other CPUs, whose floating point builds another tiny model), lands in the bands.

Slow (a tiny-model build per seed), so it is marked ``seedbands`` and left out of the default
run; `.ci/run` runs it beside the README's test command: ``pytest -m seedbands``.
"""

import pytest

from demo_bands import BANDS, candidate_generation, measure_candidates, measure_tiny_model, outside_bands
from workflow_helpers import REPO, demo_config


@pytest.mark.slow  # generates and scores the demo's candidates
def test_the_committed_demo_model_has_headroom():
    """The weights the demo runs with (demo/tiny-qwen2, built by build_tiny_model with seed 0)."""
    from faithdpo.corpus import generate_corpus
    from faithdpo.data import sample_rows

    cfg = demo_config()
    train = sample_rows(generate_corpus(cfg["data"]["synthetic"]["train"], "train", cfg["seed"]),
                        cfg["data"]["n_train"], cfg["seed"])
    measured = measure_candidates(str(REPO / cfg["model"]["path"]), train, cfg["prompt"]["template"],
                                  cfg["prompt"]["max_prompt_tokens"], candidate_generation(cfg), cfg["seed"])
    assert outside_bands(measured) == [], measured


@pytest.mark.seedbands
@pytest.mark.parametrize("model_seed", [1, 2])
def test_a_rebuilt_demo_model_lands_in_the_bands(model_seed, tmp_path):
    measured = measure_tiny_model(str(tmp_path), model_seed, demo_config())
    print(f"seed {model_seed}: {measured}")  # the note's table: pytest -m seedbands -s
    assert outside_bands(measured) == [], measured


def test_bands_flag_a_world_without_headroom():
    assert outside_bands({"entity_rate": 0.5, "number_rate": 0.4, "clean_article_share": 0.6,
                          "degenerate_share": 0.01}) == []
    assert outside_bands({"entity_rate": 0.5, "number_rate": 0.98, "clean_article_share": 0.01,
                          "degenerate_share": 0.2}) == [
        "number_rate = 0.980 outside [0.25, 0.75]", "clean_article_share = 0.010 outside [0.25, 1.0]",
        "degenerate_share = 0.200 outside [0.0, 0.05]"]
    assert set(BANDS) == {"entity_rate", "number_rate", "clean_article_share", "degenerate_share"}
