"""Data stage: fetch raw splits, validate rows, draw the seeded sample."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from faithdpo.io import read_parquet, write_json, write_parquet

log = logging.getLogger(__name__)

COLUMNS = ["id", "article", "highlights"]


def download_dataset(output_dir: str, path: str, name: str | None, revision: str | None, splits: list[str]) -> None:
    """Fetch hub dataset splits into ``output_dir/{split}.parquet`` (run on a host with internet).

    GPU jobs later read these files with the hub offline. A token, if the dataset
    needs one, is read by huggingface_hub from ``HF_TOKEN`` and never logged.
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


def clean_rows(df: pd.DataFrame, source: str, on_bad_row: str = "skip") -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop (or fail on) rows with empty or non-string fields and duplicate ids.

    Returns the clean frame and a count per problem, which the log reports.
    """
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; found {list(df.columns)}")
    df = df[COLUMNS].reset_index(drop=True)
    problems = {
        "empty_or_non_string_article": ~df["article"].map(lambda v: isinstance(v, str) and bool(v.strip())),
        "empty_or_non_string_highlights": ~df["highlights"].map(lambda v: isinstance(v, str) and bool(v.strip())),
        "missing_id": df["id"].isna(),
        "duplicate_id": df["id"].duplicated(keep="first") & df["id"].notna(),
    }
    counts = {name: int(mask.sum()) for name, mask in problems.items()}
    bad = pd.concat(problems, axis=1).any(axis=1)
    if bad.any() and on_bad_row == "fail":
        first = int(bad.idxmax())
        kinds = [name for name, mask in problems.items() if mask.iloc[first]]
        raise ValueError(
            f"{source}: row {first} is invalid ({', '.join(kinds)}); {int(bad.sum())} bad row(s) in all. "
            "Fix the data or set data.on_bad_row: skip."
        )
    clean = df[~bad].reset_index(drop=True)
    clean["id"] = clean["id"].astype(str)
    return clean, counts


def sample_rows(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """The seeded sample of ``n`` rows that prepare_split takes, in source order."""
    return df.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


def prepare_split(raw: str, output: str, stats: str, split: str, n: int, seed: int, on_bad_row: str = "skip") -> None:
    """Validate ``raw`` and write a seeded sample of ``n`` rows (in source order)."""
    df, counts = clean_rows(read_parquet(raw), raw, on_bad_row)
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
    write_json({"split": split, "source": raw, "valid_rows": len(df), "sampled": n, "skipped": counts}, stats)
    log.info("%s: sampled %d of %d valid rows (seed %d)", split, n, len(df), seed)
