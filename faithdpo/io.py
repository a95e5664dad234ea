"""Atomic file output and typed table I/O shared by every stage.

Every artifact is written to a temporary sibling and renamed into place, so a job
killed at any point never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import yaml

log = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    Works for files and directories. On error the temporary is removed and ``path``
    is left untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    target = tmp / final.name
    try:
        yield target
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(target, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``df`` as parquet atomically, without the pandas index."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a parquet artifact, checking that the expected columns are present."""
    df = pd.read_parquet(path)
    if columns:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    return df


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(obj: Any, path: str | os.PathLike) -> None:
    write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", path)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _row_problem(row: Any, required: list[str], strings: list[str], lists: list[str], kind: str) -> str | None:
    """What is wrong with one row of a row file (``kind``: what a row must be), or None."""
    if not isinstance(row, dict):
        return f"expected {kind}, got {type(row).__name__}"
    missing = [key for key in required if key not in row]
    if missing:
        return f"missing field(s) {missing}"
    wrong = [key for key in strings if not isinstance(row[key], str)]
    if wrong:
        return f"field(s) {wrong} must be strings"
    wrong = [key for key in lists if not (isinstance(row[key], list) and all(isinstance(x, str) for x in row[key]))]
    if wrong:
        return f"field(s) {wrong} must be lists of strings"
    return None


def json_lines(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of a JSON Lines file; a malformed line stops
    the read with an error naming the file and line number."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None


def _frame(rows: list[dict], required: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(dict.fromkeys([*required, *(k for r in rows for k in r)])))


def read_jsonl(path: str | os.PathLike, required: list[str], strings: list[str] = (),
               lists: list[str] = ()) -> pd.DataFrame:
    """Read JSON Lines whose rows are objects holding ``required`` fields (``strings`` of them
    text, ``lists`` of them lists of text).

    A malformed line stops the read with an error naming the file and line number;
    blank lines are allowed.
    """
    rows = []
    for lineno, row in json_lines(path):
        problem = _row_problem(row, required, strings, lists, "a JSON object")
        if problem:
            raise ValueError(f"{path}:{lineno}: {problem}")
        rows.append(row)
    return _frame(rows, required)


def read_yaml_rows(path: str | os.PathLike, required: list[str], strings: list[str] = (),
                   lists: list[str] = ()) -> pd.DataFrame:
    """Read a YAML list of mappings checked like :func:`read_jsonl`; errors name the item."""
    try:
        rows = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a YAML list of mappings, got {type(rows).__name__}")
    for number, row in enumerate(rows, start=1):
        problem = _row_problem(row, required, strings, lists, "a mapping")
        if problem:
            raise ValueError(f"{path}: item {number}: {problem}")
    return _frame(rows, required)


def write_jsonl(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``df`` as JSON Lines atomically (UTF-8, one object per row)."""
    with atomic_path(path) as tmp:
        df.to_json(tmp, orient="records", lines=True, force_ascii=False)


def inputs_fingerprint(files: list[str | os.PathLike], model_dir: str | os.PathLike, settings: Any) -> str:
    """A digest of what a long job's partial progress depends on: its input files' bytes,
    the model folder's files (name, size, mtime) and its settings."""
    h = hashlib.sha256()
    for f in files:
        h.update(Path(f).read_bytes())
    for f in sorted(Path(model_dir).iterdir()):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


def progress_dir(directory: str | os.PathLike, fingerprint: str) -> Path:
    """A folder for a job's partial progress, stamped with its inputs' fingerprint; what an
    earlier run left there from other inputs is discarded rather than mixed in."""
    directory = Path(directory)
    stamp = directory / "fingerprint"
    if directory.exists() and (not stamp.exists() or stamp.read_text() != fingerprint):
        log.info("discarding %s: it was made from other inputs", directory)
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint)
    return directory
