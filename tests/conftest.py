"""Shared fixtures: an isolated store per test, and small fitted models trained once per session."""

from __future__ import annotations

import numpy as np
import pytest

import edgebench as eb


@pytest.fixture
def store(tmp_path, monkeypatch):
    """An empty store, also made the default (EDGEBENCH_HOME) so the CLI and API defaults use it."""
    home = tmp_path / "home"
    monkeypatch.setenv("EDGEBENCH_HOME", str(home))
    return eb.Store(home)


@pytest.fixture(scope="session")
def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x, y


@pytest.fixture(scope="session")
def digits_rf(digits):
    from sklearn.ensemble import RandomForestClassifier

    x, y = digits
    return RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0).fit(x, y)


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def engine():
    """The real Docker Engine. Skips with the reason on a machine without one; fails in CI (CI=true)."""
    from edgebench import config
    from edgebench.engine import docker_client, engine_available

    ok, why = engine_available()
    if not ok:
        if config.in_ci():
            pytest.fail(f"CI=true and the Docker tests cannot run: {why}")
        pytest.skip(why)
    client = docker_client()
    yield client
    client.close()
