"""Report stage: what each step of a run cost, from Snakemake's benchmark files and the peak
GPU memory that GPU jobs record beside them, summed per step into the reports' "Cost" section.

A benchmark file is ``<...>/benchmarks/<rule>/<job>.tsv`` (or ``<rule>.tsv`` for a rule with
one job); a GPU job writes ``<same stem>.gpu.json`` next to it (faithdpo.gpu_memory).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from faithdpo.io import atomic_path

COST_HEADING = "## Cost"
_SHARD = re.compile(r"\.?\d+-of-\d+$")  # a scatter item, e.g. "base.1-of-2" -> "base"


def step_name(benchmark: str) -> str:
    """The step a benchmark file belongs to: its rule, and what the job varies beside the shard
    ("generate_eval (dpo)" for base/dpo.1-of-2.tsv, "prepare_split (train)")."""
    path = Path(benchmark)
    if path.parent.name == "benchmarks":
        return path.stem
    variant = _SHARD.sub("", path.stem)
    return f"{path.parent.name} ({variant})" if variant else path.parent.name


COLUMNS = ["benchmark", "step", "wall_s", "cpu_s", "max_rss_mb", "gpu_peak_mb"]


def read_costs(benchmarks: list[str]) -> pd.DataFrame:
    """One row per job: its benchmark file, step, wall and CPU seconds, peak RSS (MB) and peak
    GPU memory (MB, or NaN without one). GPU memory files given beside are read through theirs."""
    rows = []
    for path in (b for b in benchmarks if b.endswith(".tsv")):
        table = pd.read_csv(path, sep="\t")
        if table.empty or not {"s", "cpu_time", "max_rss"} <= set(table.columns):
            raise ValueError(f"{path}: not a Snakemake benchmark file (columns s, cpu_time, max_rss expected)")
        last = table.iloc[-1]  # a benchmark repeated N times keeps N rows; the last is the latest
        gpu_file = Path(path).with_suffix(".gpu.json")
        gpu = json.loads(gpu_file.read_text()) if gpu_file.exists() else {}
        rows.append({
            "benchmark": path,
            "step": step_name(path),
            "wall_s": float(last["s"]),
            "cpu_s": float(pd.to_numeric(last["cpu_time"], errors="coerce")),
            "max_rss_mb": float(pd.to_numeric(last["max_rss"], errors="coerce")),
            "gpu_peak_mb": gpu.get("peak_reserved_mb"),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def write_costs(jobs: pd.DataFrame, path: str) -> None:
    """The per-job table as TSV (a report's ``cost.tsv``; the comparison sums them)."""
    with atomic_path(path) as tmp:
        jobs.to_csv(tmp, sep="\t", index=False)


def read_cost_tables(paths: list[str]) -> pd.DataFrame:
    """Per-job tables of several reports as one, each job once (experiments share steps)."""
    tables = [pd.read_csv(p, sep="\t") for p in paths]
    return pd.concat(tables, ignore_index=True).drop_duplicates("benchmark") if tables else pd.DataFrame(
        columns=COLUMNS)


def summarize_costs(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per step, in order of first appearance: jobs, summed wall and CPU time, the largest
    job's peak RSS and GPU memory; then a total row."""
    grouped = jobs.groupby("step", sort=False).agg(
        jobs=("step", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"),
        max_rss_mb=("max_rss_mb", "max"), gpu_peak_mb=("gpu_peak_mb", "max"),
    ).reset_index()
    total = pd.DataFrame([{
        "step": "Total", "jobs": int(grouped["jobs"].sum()), "wall_s": grouped["wall_s"].sum(),
        "cpu_s": grouped["cpu_s"].sum(), "max_rss_mb": grouped["max_rss_mb"].max(),
        "gpu_peak_mb": grouped["gpu_peak_mb"].max(),
    }])
    return pd.concat([grouped, total], ignore_index=True)


def _seconds(value: float) -> str:
    if pd.isna(value):
        return "n/a"
    return f"{value:.1f} s" if value < 600 else f"{value / 60:.1f} min"


def _megabytes(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:,.0f} MB"


def cost_section(jobs: pd.DataFrame, scope: str) -> list[str]:
    """The "Cost" section of a report, as Markdown lines. ``scope`` says which jobs it covers."""
    if jobs.empty:
        return [COST_HEADING, "", "No benchmark files were given.", ""]
    table = summarize_costs(jobs)
    lines = [
        COST_HEADING, "",
        f"{scope} From Snakemake's benchmark files (`benchmarks/` beside each output); times are summed over a "
        "step's jobs, which run in parallel where cores and GPUs allow, so the run took less wall time than the "
        "total. Peak memory is the largest job's resident set (RSS); peak GPU memory is what torch's allocator "
        "reserved (\"n/a\": the step ran without a GPU, or is a CPU step). Snakemake samples CPU and memory "
        "while a job runs, so jobs of a second or so read near zero there.", "",
        "| Step | Jobs | Wall time | CPU time | Peak memory | Peak GPU memory |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in table.itertuples():
        name = f"**{row.step}**" if row.step == "Total" else f"`{row.step}`"
        lines.append(f"| {name} | {row.jobs} | {_seconds(row.wall_s)} | {_seconds(row.cpu_s)} | "
                     f"{_megabytes(row.max_rss_mb)} | {_megabytes(row.gpu_peak_mb)} |")
    return lines + [""]
