"""The one place that reads edgebench's environment variables."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The store directory: ``$EDGEBENCH_HOME``, else ``~/.edgebench``."""
    return Path(os.environ.get("EDGEBENCH_HOME") or Path.home() / ".edgebench").expanduser()


def cache_dir() -> Path:
    """Slow-to-build artefacts (calibration, wheels, base images): ``$EDGEBENCH_CACHE`` or ``~/.cache/edgebench``."""
    return Path(os.environ.get("EDGEBENCH_CACHE") or Path.home() / ".cache" / "edgebench").expanduser()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}
