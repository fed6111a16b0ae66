"""End to end against scikit-learn itself, not against the card's golden outputs (which are onnxruntime's own
answers at export): the fitted estimator's ``predict`` / ``predict_proba`` on held-out rows, compared with what a
V2 client (tritonclient) gets from the served model, within the card's tolerance and with labels exact."""

from __future__ import annotations

import contextlib
import shutil
import uuid

import numpy as np
import pytest

import edgebench as eb
from edgebench.engine import run_limited
from edgebench.image.tester import free_port

from ..helpers import require
from .conftest import start_server, stop_server


def fitted(kind, digits):
    from sklearn.decomposition import PCA
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    x, y = digits
    if kind == "classifier":
        return DecisionTreeClassifier(max_depth=6, random_state=0).fit(x[:1000], y[:1000])
    if kind == "regressor":
        return GradientBoostingRegressor(n_estimators=30, random_state=0).fit(x[:1000], y[:1000].astype(float))
    return make_pipeline(StandardScaler(), PCA(16, random_state=0), LogisticRegression(max_iter=300)).fit(
        x[:1000], y[:1000])


def ask(port, name, rows):
    """Everything the model answers for ``rows``, through tritonclient with binary tensors."""
    httpclient = require("tritonclient.http", "pip install -e .[dev] installs it")
    client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        meta = client.get_model_metadata(name)
        inp = httpclient.InferInput(meta["inputs"][0]["name"], list(rows.shape), "FP32")
        inp.set_data_from_numpy(rows.astype(np.float32), binary_data=True)
        outputs = [httpclient.InferRequestedOutput(o["name"], binary_data=True) for o in meta["outputs"]]
        result = client.infer(name, [inp], outputs=outputs)
        return {o["name"]: result.as_numpy(o["name"]) for o in meta["outputs"]}
    finally:
        client.close()


def assert_matches_scikit_learn(answer, model, rows, tolerance):
    """Labels exactly, probabilities and values within |a - b| <= atol + rtol * |b|."""
    if hasattr(model, "predict_proba"):
        assert answer["label"].ravel().tolist() == model.predict(rows).tolist()
        expected, got = model.predict_proba(rows), answer["probabilities"]
    else:
        expected, got = model.predict(rows), answer["variable"].ravel()
    assert got.shape == expected.shape
    assert np.all(np.abs(got - expected) <= tolerance.atol + tolerance.rtol * np.abs(expected)), \
        f"largest difference {np.abs(got - expected).max():.3g}"


@pytest.mark.parametrize("kind", ["classifier", "regressor", "pipeline"])
def test_the_server_answers_what_scikit_learn_answers(kind, digits, tmp_path):
    x, _ = digits
    model = fitted(kind, digits)
    store = eb.Store(tmp_path / "store")
    card = eb.export_model(model, x[:20], f"digits-{kind}", store=store)
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copyfile(store.model_path(card), folder / "model.onnx")
    (folder / "card.json").write_text(card.to_json())
    process, port = start_server(folder)
    try:
        held_out = x[1000:1300]
        assert_matches_scikit_learn(ask(port, card.name, held_out), model, held_out, card.parity.tolerance)
    finally:
        stop_server(process)


@pytest.mark.docker
def test_the_image_answers_what_scikit_learn_answers(engine, built, image_store, digits, digits_rf):
    x, _ = digits
    port = free_port()
    container = run_limited(engine, built.id, memory=512 * 2**20, cpuset=None, network="host",
                            name=f"edgebench-test-{uuid.uuid4().hex[:12]}", labels={"org.edgebench.test": "oracle"},
                            environment={"EDGEBENCH_PORT": str(port)})
    try:
        from edgebench.image.tester import _wait_ready

        ready, message = _wait_ready(container, port, 60, "512m")
        assert ready, message
        held_out = x[1000:1300]
        card = image_store.get("digits-rf:1")
        assert_matches_scikit_learn(ask(port, "digits-rf", held_out), digits_rf, held_out, card.parity.tolerance)
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)
