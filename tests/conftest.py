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


@pytest.fixture(scope="session")
def registries(engine):
    """The two loopback registries scripts/services.sh starts: open, and htpasswd (user, password)."""
    import os

    from edgebench import config

    names = ("EDGEBENCH_TEST_REGISTRY", "EDGEBENCH_TEST_AUTH_REGISTRY", "EDGEBENCH_TEST_REGISTRY_USER",
             "EDGEBENCH_TEST_REGISTRY_PASSWORD")
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        why = f"no test registries ({', '.join(missing)} unset): run the tests with scripts/test.sh"
        if config.in_ci():
            pytest.fail(f"CI=true and the registry tests cannot run: {why}")
        pytest.skip(why)
    return {
        "open": os.environ["EDGEBENCH_TEST_REGISTRY"],
        "auth": os.environ["EDGEBENCH_TEST_AUTH_REGISTRY"],
        "user": os.environ["EDGEBENCH_TEST_REGISTRY_USER"],
        "password": os.environ["EDGEBENCH_TEST_REGISTRY_PASSWORD"],
    }


@pytest.fixture(scope="session")
def image_store(tmp_path_factory, digits, digits_rf):
    """A session store holding digits-rf:1 (later tests may add versions)."""
    store = eb.Store(tmp_path_factory.mktemp("image-store"))
    eb.export_model(digits_rf, digits[0][:20], "digits-rf", store=store)
    return store


@pytest.fixture(scope="session")
def built(engine, image_store):
    """digits-rf:1 built for linux/amd64 on the real engine, removed at the end of the session."""
    import contextlib

    image = eb.build_image("digits-rf:1", "linux/amd64", store=image_store, client=engine)
    yield image
    for tag in image.tags:
        with contextlib.suppress(Exception):
            engine.images.remove(tag, force=True)


@pytest.fixture
def without_arm64_emulation():
    """This machine's binfmt_misc entry for aarch64 disabled for one test (root only), then enabled again."""
    from pathlib import Path

    from edgebench import config
    from edgebench.emulation import BINFMT, ENTRIES

    entry = next((BINFMT / n for n in ENTRIES["arm64"] if (BINFMT / n).exists()), None)
    if entry is None:
        if config.in_ci():
            pytest.fail("CI=true and no aarch64 binfmt_misc entry: scripts/services.sh registers one")
        pytest.skip("no aarch64 binfmt_misc entry to disable")
    Path(entry).write_text("0")
    try:
        yield
    finally:
        Path(entry).write_text("1")


SIGNING_PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def signing_keys(tmp_path_factory):
    """A cosign key pair made by edgebench (``{"private", "public"}``), protected by ``SIGNING_PASSWORD``."""
    import os

    from edgebench import config

    if config.tool("cosign") is None:
        if config.in_ci():
            pytest.fail("CI=true and cosign is missing: scripts/tools.sh install fetches it")
        pytest.skip("cosign is not installed: scripts/tools.sh install")
    os.environ["COSIGN_PASSWORD"] = SIGNING_PASSWORD
    try:
        return eb.generate_keys(tmp_path_factory.mktemp("signing") / "keys")
    finally:
        del os.environ["COSIGN_PASSWORD"]


@pytest.fixture
def cosign_password(monkeypatch):
    """COSIGN_PASSWORD set for one test (and the processes it starts)."""
    monkeypatch.setenv("COSIGN_PASSWORD", SIGNING_PASSWORD)
