"""Training stage: the experiment trackers (training.report_to) and where they write.

TensorBoard, W&B and MLflow, each an optional extra: named and checked before the model loads,
and pointed at the experiment's tracking folder while the trainer runs (training.run_training).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TRACKERS = ("tensorboard", "wandb", "mlflow")  # each the name of its package and of its extra


def trackers(report_to: str | list[str]) -> list[str]:
    """``training.report_to`` as a list of trackers (``none`` -> [])."""
    names = [report_to] if isinstance(report_to, str) else list(report_to)
    names = [n for n in names if n != "none"]
    unknown = sorted(set(names) - set(TRACKERS))
    if unknown:
        raise ValueError(f"training.report_to = {report_to!r}: unknown {', '.join(unknown)}; "
                         f"allowed: none, {', '.join(TRACKERS)}")
    return names


def check_trackers(report_to: str | list[str]) -> None:
    """Stop before the model loads when a tracker's package is missing (they are extras)."""
    import importlib.util

    for name in trackers(report_to):
        if importlib.util.find_spec(name) is None:
            raise RuntimeError(
                f"training.report_to includes {name}, but the {name} package is not installed "
                f"in this job's environment: pip install -e '.[{name}]' (or set report_to: none)."
            )


@contextlib.contextmanager
def tracking_env(tracking_dir: str | None):
    """Where the trackers write, through the variables transformers and the trackers read: under
    the experiment's ``tracking_dir`` (TensorBoard's ``tensorboard/``, W&B's ``wandb/``, MLflow's
    ``mlruns/`` unless MLFLOW_TRACKING_URI names a server), in a "faithdpo" W&B project or MLflow
    experiment unless the user names one. A variable the user set wins. Credentials stay where
    the user put them (their environment or login); nothing here reads or logs them."""
    settings = {"WANDB_PROJECT": "faithdpo", "MLFLOW_EXPERIMENT_NAME": "faithdpo"}
    if tracking_dir:
        root = Path(tracking_dir).absolute()
        settings.update(TENSORBOARD_LOGGING_DIR=str(root / "tensorboard"), WANDB_DIR=str(root),
                        MLFLOW_TRACKING_URI=(root / "mlruns").as_uri())
    settings = {k: v for k, v in settings.items() if k not in os.environ}
    if "WANDB_DIR" in settings:
        Path(settings["WANDB_DIR"]).mkdir(parents=True, exist_ok=True)  # W&B wants it to exist
    os.environ.update(settings)
    try:
        yield
    finally:
        for k in settings:
            os.environ.pop(k, None)
