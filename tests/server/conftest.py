"""A real Jupyter server (pytest-jupyter) with the edgebench extension over an isolated store."""

from __future__ import annotations

import pytest

from edgebench import config

CACHE = config.cache_dir()  # read before pytest-jupyter points HOME at a temporary folder


@pytest.fixture
def jp_server_config(store, monkeypatch):  # the store fixture sets EDGEBENCH_HOME before the server starts
    monkeypatch.setenv("EDGEBENCH_CACHE", str(CACHE))  # keep the host calibration and wheel caches
    return {"ServerApp": {"jpserver_extensions": {"edgebench": True}}}
