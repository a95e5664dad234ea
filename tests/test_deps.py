from pathlib import Path

import pytest

import faithdpo
from faithdpo.deps import module_closure

PACKAGE = Path(faithdpo.__file__).parent


def names(paths):
    return sorted(Path(p).stem for p in paths)


def test_closure_follows_imports_lazy_ones_included():
    # training imports launch and io at the top, models and gpu_memory inside functions;
    # launch imports logs inside its worker; models imports io. Not cost: a change to how the
    # reports present cost must not retrain.
    assert names(module_closure(PACKAGE, ["training"])) == ["gpu_memory", "io", "launch", "logs", "models", "training"]
    assert names(module_closure(PACKAGE, ["report"])) == ["agreement", "cost", "diagnostics", "figures", "io",
                                                          "quality", "report", "stats", "verdicts"]
    # the comparison re-decides the verdicts, and never needs the report's figures
    assert names(module_closure(PACKAGE, ["comparison"])) == ["comparison", "cost", "io", "quality", "stats",
                                                              "verdicts"]


def test_the_checker_and_regex_ner_never_rerun_each_other():
    # editing regex + NER scoring reruns no checker step, and the reverse
    assert "scoring" not in names(module_closure(PACKAGE, ["checker"]))
    assert "checker" not in names(module_closure(PACKAGE, ["scoring"]))


def test_closure_of_an_unknown_module_fails():
    with pytest.raises(FileNotFoundError, match="nosuch"):
        module_closure(PACKAGE, ["nosuch"])


def test_closure_sees_a_new_import(tmp_path):
    (tmp_path / "a.py").write_text("def f():\n    from faithdpo.b import g\n")
    (tmp_path / "b.py").write_text("import faithdpo.c\n")
    (tmp_path / "c.py").write_text("x = 1\n")
    assert names(module_closure(tmp_path, ["a"])) == ["a", "b", "c"]
