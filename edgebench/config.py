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


#: A public slim Python image whose Python matches the runtime wheels (3.11). Offline sites and the tests use
#: the Debian-built base instead: EDGEBENCH_BASE_IMAGE=edgebench/base:bookworm-py311-{arch}.
DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"


def base_image() -> str:
    """The base image for new images; ``{arch}`` is replaced by amd64 or arm64."""
    return os.environ.get("EDGEBENCH_BASE_IMAGE") or DEFAULT_BASE_IMAGE


def docker_host() -> str:
    """Where the Docker Engine is expected: ``$DOCKER_HOST`` or the default socket."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def deployment() -> tuple[Path, Path] | None:
    """The sites file and GitOps repository the Jupyter panel shows: ``$EDGEBENCH_SITES`` and
    ``$EDGEBENCH_GITOPS`` (both, or neither)."""
    sites, repo = os.environ.get("EDGEBENCH_SITES"), os.environ.get("EDGEBENCH_GITOPS")
    return (Path(sites), Path(repo)) if sites and repo else None


def monitoring() -> tuple[str | None, str | None]:
    """Where the panel and Alertmanager's webhook read drift counts from, and the retrain notebook they run on
    drift: ``$EDGEBENCH_MONITOR_SOURCE`` and ``$EDGEBENCH_RETRAIN_NOTEBOOK`` (each may be unset)."""
    return os.environ.get("EDGEBENCH_MONITOR_SOURCE") or None, os.environ.get("EDGEBENCH_RETRAIN_NOTEBOOK") or None


def known_hosts() -> Path:
    """The SSH known-hosts file for boards measured over SSH: ``$EDGEBENCH_KNOWN_HOSTS`` or in the cache."""
    value = os.environ.get("EDGEBENCH_KNOWN_HOSTS")
    return Path(value) if value else cache_dir() / "known_hosts"


def run_dir() -> Path | None:
    """The folder of the notebook run in progress (set by ``edgebench run``), if any."""
    value = os.environ.get("EDGEBENCH_RUN_DIR")
    return Path(value) if value else None


def tool(name: str) -> str | None:
    """An outside program (cosign, kustomize, qemu-aarch64...): on ``PATH``, else where ``scripts/tools.sh`` put
    it (``$EDGEBENCH_CACHE/bin``); None when neither has it."""
    import shutil

    return shutil.which(name) or shutil.which(name, path=str(cache_dir() / "bin"))
