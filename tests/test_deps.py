from pathlib import Path

import pytest

import faithdpo
from faithdpo.deps import module_closure

PACKAGE = Path(faithdpo.__file__).parent


def names(paths):
    return sorted(Path(p).stem for p in paths)


def test_closure_follows_imports_lazy_ones_included():
    # training imports faithdpo.models inside a function; models imports io.
    assert names(module_closure(PACKAGE, ["training"])) == ["io", "models", "training"]
    assert names(module_closure(PACKAGE, ["report"])) == ["cost", "diagnostics", "figures", "io", "quality", "report", "stats"]


def test_closure_of_an_unknown_module_fails():
    with pytest.raises(FileNotFoundError, match="nosuch"):
        module_closure(PACKAGE, ["nosuch"])


def test_closure_sees_a_new_import(tmp_path):
    (tmp_path / "a.py").write_text("def f():\n    from faithdpo.b import g\n")
    (tmp_path / "b.py").write_text("import faithdpo.c\n")
    (tmp_path / "c.py").write_text("x = 1\n")
    assert names(module_closure(tmp_path, ["a"])) == ["a", "b", "c"]
