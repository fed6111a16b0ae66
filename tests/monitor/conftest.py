"""Fixtures for monitoring: the machines model exported with held-out rows, its folder as images carry it, and
Debian's Prometheus scraping whatever a test starts."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.request

import numpy as np
import pytest

import edgebench as eb
from edgebench.image.tester import free_port

from ..helpers import require, stop_process, tool
from .load import frame, labels, readings


@pytest.fixture(scope="session")
def machines_store(tmp_path_factory):
    """A store holding machines:1, a logistic regression on five readings and the machine's kind."""
    require("pandas", "pip install -e .[dev] installs it")
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(1)
    train, held_out = readings(3000, rng), readings(2000, rng)
    numeric = [c for c in train if c != "machine"]
    model = Pipeline([
        ("prep", ColumnTransformer([("num", StandardScaler(), numeric),
                                    ("cat", OneHotEncoder(handle_unknown="ignore"), ["machine"])])),
        ("clf", LogisticRegression(max_iter=500)),
    ]).fit(frame(train), labels(train))
    store = eb.Store(tmp_path_factory.mktemp("machines-store"))
    eb.export_model(model, frame(train).iloc[:500], "machines", held_out=frame(held_out), store=store)
    return store


@pytest.fixture(scope="session")
def machines_dir(tmp_path_factory, machines_store):
    """machines:1 as an image carries it: model.onnx and card.json in one folder."""
    card = machines_store.get("machines:1")
    folder = tmp_path_factory.mktemp("machines-model")
    shutil.copyfile(machines_store.model_path(card), folder / "model.onnx")
    (folder / "card.json").write_text(card.to_json())
    return folder


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


@pytest.fixture
def prometheus(tmp_path):
    """``start(targets, data=None)``: a real Prometheus scraping ``targets`` every second (or serving the TSDB
    at ``data``); returns its URL once it answers and has scraped every target."""
    binary = tool("prometheus", "scripts/services.sh installs Debian's prometheus")
    started = []

    def start(targets: list[str], data=None) -> str:
        port = free_port()
        config = tmp_path / f"prometheus-{port}.yml"
        config.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
                          "  - job_name: edge\n    static_configs:\n"
                          f"      - targets: {json.dumps(targets)}\n")
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={data or tmp_path / f'tsdb-{port}'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {process.stderr.read()[-2000:]}")
            with contextlib.suppress(OSError, ValueError):
                up = _get(f"{url}/api/v1/query?query=up")["data"]["result"]
                if len([r for r in up if r["value"][1] == "1"]) >= len(targets):
                    return url
            time.sleep(0.2)
        raise RuntimeError("prometheus did not scrape its targets in 60 s")

    yield start
    for process in started:
        stop_process(process)
