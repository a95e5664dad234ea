"""Shared by every stage: logging set-up for the workflow scripts, one log file per job."""

from __future__ import annotations

import logging
import sys
import warnings


def setup_logging(log_path: str | None = None, level: int = logging.INFO,
                  fmt: str = "%(asctime)s %(levelname)s %(name)s: %(message)s") -> logging.Logger:
    """Send the root logger (and Python warnings) to ``log_path`` and to stderr."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    logging.basicConfig(
        level=level,
        format=fmt,
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    logger = logging.getLogger("faithdpo")

    def log_uncaught(exc_type, exc, tb):
        # The job's log then ends with the error that stopped it, not mid-way.
        logger.critical("%s: %s", exc_type.__name__, exc, exc_info=(exc_type, exc, tb))

    sys.excepthook = log_uncaught
    return logger
