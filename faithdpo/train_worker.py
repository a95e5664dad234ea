"""Training stage: one process of a multi-process training, as accelerate's launcher starts it.

``python -m faithdpo.train_worker SPEC`` (see launch.launch_command) trains this process's share
of the job that training.train_dpo wrote to SPEC. A module of its own, so that the dependency goes
one way: training imports launch, launch starts this worker by name, and this worker imports
training. The rule train_dpo declares it beside training (workflow/rules/train.smk).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from faithdpo.launch import die_with_parent


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def worker(spec: str) -> None:
    """One launched process: train its share of the job; its output reaches the job's log."""
    import datasets
    import transformers

    from faithdpo.gpu_memory import gpu_peak_memory
    from faithdpo.logs import setup_logging
    from faithdpo.training import run_training

    job = json.loads(Path(spec).read_text())
    # The main process tells the story; the others speak up only about problems. No timestamp:
    # the job's log stamps each line as it arrives.
    setup_logging(None, logging.INFO if rank() == 0 else logging.WARNING,
                  fmt=f"[rank {rank()}] %(levelname)s %(name)s: %(message)s")
    # one bar per process, map and model load, each in the job's log
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    own_gpu = [int(os.environ.get("LOCAL_RANK", "0"))]
    with gpu_peak_memory(str(Path(spec).with_name(f"gpu_memory.rank{rank()}.json")), devices=own_gpu):
        run_training(job)


def main(argv: list[str]) -> None:
    """``SPEC``: train this process's share of the job in SPEC, dying with the launcher."""
    die_with_parent()
    worker(argv[0])


if __name__ == "__main__":
    main(sys.argv[1:])
