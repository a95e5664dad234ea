"""Workflow set-up: which package source files a workflow step depends on.

Snakemake sees a rule's script but not the modules it imports, so a change in
``faithdpo/scoring.py`` would rerun nothing. Each rule names its entry module; this
module follows ``faithdpo.*`` imports (anywhere in the file, lazy ones included) and
returns every file of the closure, which the rule declares as inputs.
Standard library only: the Snakefile imports it at parse time.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "faithdpo"


def _imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(n.split(".")[1] for n in names if n.startswith(PACKAGE + ".") and n.count(".") >= 1)
    return found


def module_closure(package_dir: str | Path, entry_modules: list[str]) -> list[str]:
    """Sorted paths of the entry modules and every package module they import, transitively."""
    package_dir = Path(package_dir)
    seen: set[str] = set()
    todo = list(entry_modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = package_dir / f"{name}.py"
        if not path.is_file():
            continue  # `from faithdpo.x import y` where y is a name, not a module
        seen.add(name)
        todo.extend(_imported_modules(path) - seen)
    missing = [m for m in entry_modules if m not in seen]
    if missing:
        raise FileNotFoundError(f"no module(s) {missing} in {package_dir}")
    return sorted(str(package_dir / f"{name}.py") for name in seen)


def import_graph(package_dir: str | Path) -> dict[str, set[str]]:
    """Each package module's name -> the package modules it imports (lazy imports included)."""
    package_dir = Path(package_dir)
    modules = {path.stem for path in package_dir.glob("*.py")}
    return {name: _imported_modules(package_dir / f"{name}.py") & modules for name in sorted(modules)}
