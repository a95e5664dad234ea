"""Shared by the GPU steps: a job's peak GPU memory, beside its benchmark file (read by cost.py).

Apart from cost.py so that the GPU steps that record it (generation, training) do not depend
on how the reports present cost: editing the Cost section reruns no GPU step.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

from faithdpo.io import write_json


@contextlib.contextmanager
def gpu_peak_memory(path: str, devices: list[int] | None = None) -> Iterator[None]:
    """Record the job's peak GPU memory (torch's allocator; ``devices``, else every visible one) to ``path``.

    On a machine without CUDA the file says so (``device: cpu``, peaks null), so that the
    step's cost reads "no GPU" rather than missing. A launched training process names its own
    device only: touching the others would open a CUDA context on each.
    """
    import torch

    cuda = torch.cuda.is_available()
    if cuda:
        devices = range(torch.cuda.device_count()) if devices is None else devices
        for index in devices:
            torch.cuda.reset_peak_memory_stats(index)
    yield
    record = {"device": "cpu", "peak_allocated_mb": None, "peak_reserved_mb": None}
    if cuda:
        record = {
            "device": ", ".join(sorted({torch.cuda.get_device_name(i) for i in devices})),
            "peak_allocated_mb": round(max(torch.cuda.max_memory_allocated(i) for i in devices) / 2**20, 1),
            "peak_reserved_mb": round(max(torch.cuda.max_memory_reserved(i) for i in devices) / 2**20, 1),
        }
    write_json(record, path)


def combine_gpu_records(paths: list[str], out: str) -> None:
    """One job's peak GPU memory from its processes' records: the largest peak of any one GPU."""
    records = [json.loads(Path(p).read_text()) for p in paths]
    peaks = {key: [r[key] for r in records if r[key] is not None] for key in ("peak_allocated_mb", "peak_reserved_mb")}
    write_json({
        "device": ", ".join(sorted({r["device"] for r in records})),
        **{key: max(values) if values else None for key, values in peaks.items()},
    }, out)
