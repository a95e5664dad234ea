"""docs/rulegraph.dot, the README's picture of the workflow, is the rule graph the workflow
produces now (docs/rulegraph.py); the graph source is compared, never the image, so no
Graphviz is needed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("rulegraph", ROOT / "docs" / "rulegraph.py")
rulegraph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rulegraph)


pytestmark = pytest.mark.slow  # the graph comes from a Snakemake process


@pytest.fixture(scope="module")
def graph() -> tuple[list[str], list[tuple[str, str]]]:
    return rulegraph.parse(rulegraph.raw_rulegraph())


def test_the_committed_rulegraph_is_the_workflows(graph):
    committed = rulegraph.DOT.read_text() if rulegraph.DOT.exists() else ""
    assert committed == rulegraph.normalised(*graph), (
        f"docs/rulegraph.dot is out of date with the workflow: run `{rulegraph.COMMAND}` and commit "
        "docs/rulegraph.dot and docs/images/rulegraph.svg"
    )


def test_the_graph_reaches_past_the_checkpoints(graph):
    """Without the checkpoints counted as done, Snakemake's graph would end at select_pairs."""
    rules, edges = graph
    assert {"select_pairs", "train_dpo", "merge_adapter", "generate_eval", "score_eval", "report"} <= set(rules)
    chain = ["select_pairs", "train_dpo", "merge_adapter", "generate_eval", "merge_eval", "score_eval", "report", "all"]
    assert set(zip(chain, chain[1:])) <= set(edges)


def test_the_picture_leaves_out_only_implied_arrows(graph):
    rules, edges = graph
    shown = rulegraph.transitive_reduction(edges)
    assert set(shown) < set(edges)  # the report's benchmark inputs add arrows a path implies
    assert ("download_dataset", "report") not in shown and ("download_dataset", "prepare_split") in shown
    assert rulegraph.transitive_reduction([("a", "b"), ("b", "c"), ("a", "c")]) == [("a", "b"), ("b", "c")]


def test_check_mode_names_the_command_when_the_graph_is_stale(graph, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(rulegraph, "raw_rulegraph", lambda config=rulegraph.CONFIG: "")
    monkeypatch.setattr(rulegraph, "parse", lambda dot: graph)
    dot = tmp_path / "rulegraph.dot"
    monkeypatch.setattr(rulegraph, "DOT", dot)
    dot.write_text(rulegraph.normalised(*graph))
    assert rulegraph.main(["--check"]) == 0
    dot.write_text(rulegraph.normalised(*graph).replace("    train_dpo -> merge_adapter;\n", ""))
    assert rulegraph.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert rulegraph.COMMAND in out and "+    train_dpo -> merge_adapter;" in out
