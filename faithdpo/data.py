"""Data stage: fetch raw splits, read them in any of three formats, validate rows, draw the seeded sample."""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from pathlib import Path

import pandas as pd

from faithdpo.io import json_lines, write_json, write_parquet

log = logging.getLogger(__name__)

COLUMNS = ["id", "article", "highlights"]
# data.columns: the workflow's column -> the dataset's own name (id: None derives ids from the article)
DEFAULT_COLUMNS = {"id": "id", "article": "article", "highlights": "highlights"}
# The file types a split may come in, by extension; data.dir holds exactly one per split.
FORMATS = ("parquet", "jsonl", "csv")
ID_HEX_DIGITS = 16  # a derived id: the first 16 hex digits (64 bits) of the article's sha256


def download_dataset(output_dir: str, path: str, name: str | None, revision: str | None, splits: list[str]) -> None:
    """Fetch hub dataset splits into ``output_dir/{split}.parquet`` (run on a host with internet).

    ``splits`` are the dataset's own split names (data.splits); the files keep the dataset's own
    columns, which prepare_split maps (data.columns). GPU jobs later read these files with the hub
    offline. A token, if the dataset needs one, is read by huggingface_hub from ``HF_TOKEN`` and
    never logged.
    """
    import datasets

    for split in splits:
        try:
            ds = datasets.load_dataset(path, name, revision=revision, split=split)
        except Exception as exc:  # network, auth or name errors: say what to do
            raise RuntimeError(
                f"could not load dataset {path!r} (config {name!r}, split {split!r}) from the hub: {exc}. "
                f"Check the network and `data.hub` in the config, or place {split}.parquet under {output_dir}."
            ) from exc
        write_parquet(ds.to_pandas(), Path(output_dir) / f"{split}.parquet")
        log.info("downloaded %s/%s %s: %d rows", path, name, split, len(ds))


def split_file(directory: str, name: str, split: str = "train") -> str:
    """The one file of the dataset split ``name`` in ``directory``: ``{name}.parquet``,
    ``{name}.jsonl`` or ``{name}.csv``; the extension says how it is read. None or several
    stop with the keys that name them (``split``: the workflow's split, whose data.splits key it is)."""
    found = [os.path.join(directory, f"{name}.{ext}") for ext in FORMATS]
    found = [path for path in found if os.path.isfile(path)]
    where = f"data.dir = {directory!r}, the {split} split (data.splits.{split} = {name!r})"
    if not found:
        raise ValueError(
            f"{where}: no {name}.parquet, {name}.jsonl or {name}.csv there. Place one in data.dir "
            "(data.source: local), or set data.source: hub, whose download_dataset step fetches it."
        )
    if len(found) > 1:
        raise ValueError(f"{where}: {' and '.join(found)} both exist; keep one, so that it is clear which is read.")
    return found[0]


def file_format(path: str) -> str:
    ext = Path(path).suffix.lstrip(".").lower()
    if ext not in FORMATS:
        raise ValueError(f"{path}: a data split must be .parquet, .jsonl or .csv, not .{ext}")
    return ext


def file_columns(path: str) -> list[str]:
    """The column names of a split file, from its schema or header alone (the config check reads
    them before any job): Parquet's schema, a JSON Lines file's first object, a CSV file's header."""
    fmt = file_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    if fmt == "csv":
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: a spreadsheet's byte-order mark
            return next(csv.reader(fh), [])
    for row in json_objects(path):
        return list(row)
    return []


def json_objects(path: str):
    """The rows of a JSON Lines split file, each a JSON object (an error names the file and line)."""
    for lineno, row in json_lines(path):
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        yield row


def check_columns(path: str, found: list[str], columns: dict) -> None:
    """Stop when a column that data.columns names is not among the file's ``found`` columns."""
    missing = [(key, name) for key, name in columns.items() if name is not None and name not in found]
    if missing:
        named = "; ".join(f"data.columns.{key} = {name!r} is not one of its columns" for key, name in missing)
        hint = (" (data.columns.id: null derives ids from the article)"
                if any(key == "id" for key, _ in missing) else "")
        raise ValueError(f"{path}: {named}. Its columns: {found}. Map each key to one of them{hint}.")


def derive_id(article: str) -> str:
    """The id of an article in a set without ids (data.columns.id: null): the first 16 hex digits
    of the sha256 of its UTF-8 text, exactly as stored (no normalisation). The same text gets the
    same id on every run and machine; the same article twice gets one id, a duplicate."""
    return hashlib.sha256(article.encode("utf-8")).hexdigest()[:ID_HEX_DIGITS]


def _as_id(value) -> str | None:
    """An id as a string ("007" stays "007", 7 becomes "7"); None when missing."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value if isinstance(value, str) else str(value)


def read_split(path: str, columns: dict | None = None) -> pd.DataFrame:
    """``id, article, highlights`` of a split file (Parquet, JSON Lines or CSV), its own columns
    mapped by ``columns`` (data.columns). Ids are strings whatever the file type, derived from the
    article (:func:`derive_id`) when ``columns["id"]`` is None; a row whose article is not a
    non-empty string gets none (clean_rows counts it as a bad article)."""
    columns = {**DEFAULT_COLUMNS, **(columns or {})}
    check_columns(path, file_columns(path), columns)
    wanted = list(dict.fromkeys(name for name in columns.values() if name is not None))
    fmt = file_format(path)
    if fmt == "parquet":
        df = pd.read_parquet(path, columns=wanted)
        if columns["id"] is not None and not pd.api.types.is_string_dtype(df[columns["id"]]):
            import pyarrow.parquet as pq  # integer ids with gaps would read as floats (7.0)

            df[columns["id"]] = pd.Series(pq.read_table(path, columns=[columns["id"]]).column(0).to_pylist(),
                                          dtype=object)
    elif fmt == "csv":
        # Every field as text: "007" stays "007"; only an empty field is missing ("NA" is text).
        df = pd.read_csv(path, usecols=wanted, dtype=str, keep_default_na=False, na_values=[""],
                         encoding="utf-8-sig")
    else:
        values = {name: [] for name in wanted}
        for row in json_objects(path):
            for name in wanted:
                values[name].append(row.get(name))
        df = pd.DataFrame({name: pd.Series(v, dtype=object) for name, v in values.items()})
    article = df[columns["article"]]
    if columns["id"] is None:
        ids = pd.Series([derive_id(a) if isinstance(a, str) and a.strip() else None for a in article],
                        index=df.index, dtype=object)
    elif pd.api.types.is_string_dtype(df[columns["id"]]):
        ids = df[columns["id"]]
    else:
        ids = pd.Series([_as_id(v) for v in df[columns["id"]]], index=df.index, dtype=object)
    out = pd.DataFrame({"id": ids, "article": article, "highlights": df[columns["highlights"]]})
    return out


def clean_rows(df: pd.DataFrame, source: str, on_bad_row: str = "skip",
               derived_ids: bool = False) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop (or fail on) rows with empty or non-string fields and duplicate ids.

    Returns the clean frame and a count per problem, which the log reports. With ``derived_ids``
    (data.columns.id: null) a duplicate id is the same article twice, and a bad article, which
    gets no id, is counted as a bad article alone.
    """
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; found {list(df.columns)}")
    df = df[COLUMNS].reset_index(drop=True)
    bad_article = ~df["article"].map(lambda v: isinstance(v, str) and bool(v.strip()))
    problems = {
        "empty_or_non_string_article": bad_article,
        "empty_or_non_string_highlights": ~df["highlights"].map(lambda v: isinstance(v, str) and bool(v.strip())),
        "missing_id": df["id"].isna() & ~bad_article if derived_ids else df["id"].isna(),
        "duplicate_id": df["id"].duplicated(keep="first") & df["id"].notna(),
    }
    counts = {name: int(mask.sum()) for name, mask in problems.items()}
    bad = pd.concat(problems, axis=1).any(axis=1)
    if bad.any() and on_bad_row == "fail":
        first = int(bad.idxmax())
        kinds = [name for name, mask in problems.items() if mask.iloc[first]]
        derived = (" (ids derived from the article text: a duplicate id is the same article twice)"
                   if derived_ids and "duplicate_id" in kinds else "")
        raise ValueError(
            f"{source}: row {first} is invalid ({', '.join(kinds)}){derived}; {int(bad.sum())} bad row(s) in all. "
            "Fix the data or set data.on_bad_row: skip."
        )
    clean = df[~bad].reset_index(drop=True)
    clean["id"] = clean["id"].astype(str)
    return clean, counts


def sample_rows(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """The seeded sample of ``n`` rows that prepare_split takes, in source order."""
    return df.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


def prepare_split(raw: str, output: str, stats: str, split: str, n: int, seed: int, on_bad_row: str = "skip",
                  columns: dict | None = None) -> None:
    """Read ``raw`` (Parquet, JSON Lines or CSV; its columns mapped by ``columns``, data.columns),
    validate it and write a seeded sample of ``n`` rows (in source order) as ``id, article,
    highlights``. ``split`` is the workflow's split (train or validation), whatever the dataset calls it."""
    derived_ids = columns is not None and "id" in columns and columns["id"] is None
    df, counts = clean_rows(read_split(raw, columns), raw, on_bad_row, derived_ids)
    for problem, count in counts.items():
        if count:
            log.warning("%s: %d row(s) skipped: %s", raw, count, problem)
    if n > len(df):
        raise ValueError(
            f"data.n_{split} = {n} is larger than the {len(df)} valid rows of {raw}; "
            f"lower data.n_{split} (at most {len(df)})."
        )
    sample = sample_rows(df, n, seed)
    write_parquet(sample, output)
    summary = {"split": split, "source": raw, "valid_rows": len(df), "sampled": n, "skipped": counts}
    if derived_ids:
        summary["ids"] = f"derived: sha256 of the article, first {ID_HEX_DIGITS} hex digits"
    write_json(summary, stats)
    log.info("%s: sampled %d of %d valid rows (seed %d)", split, n, len(df), seed)
