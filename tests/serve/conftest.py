"""Fixtures for the inference server: a model folder as images carry it, an in-process app, a real server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

import edgebench as eb
from edgebench.image.tester import free_port
from edgebench.serve.app import App
from edgebench.serve.model import Model

from ..helpers import stop_process


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, digits, digits_rf):
    store = eb.Store(tmp_path_factory.mktemp("serve-store"))
    card = eb.export_model(digits_rf, digits[0][:10], "digits-rf", store=store)
    folder = tmp_path_factory.mktemp("model")
    shutil.copyfile(store.model_path(card), folder / "model.onnx")
    (folder / "card.json").write_text(card.to_json())
    return folder


@pytest.fixture(scope="session")
def card(model_dir):
    return eb.ModelCard.from_dict(json.loads((model_dir / "card.json").read_text()))


@pytest.fixture
def app(model_dir):
    return App(Model.from_dir(model_dir))


def call(app, method, path, body=b"", headers=None):
    """One request through the app, as the HTTP layer makes it: (status, parsed JSON or bytes, headers)."""
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    answer = app.handle(method, path, {k.lower(): v for k, v in (headers or {}).items()}, body)
    status, payload, extra = answer if isinstance(answer, tuple) else asyncio.run(answer)
    try:
        return status, json.loads(payload), extra
    except ValueError:
        return status, payload, extra


def start_server(model_dir, *args, env=None):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "edgebench.serve", "--model-dir", str(model_dir), "--host", "127.0.0.1",
         "--port", str(port), *args],
        stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1) as r:
                if r.status == 200:
                    return process, port
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {process.stderr.read()}") from None
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("server not ready in 30 s")


def stop_server(process):
    stop_process(process, timeout=15)


@pytest.fixture(scope="module")
def server(model_dir):
    process, port = start_server(model_dir)
    yield port
    stop_server(process)
