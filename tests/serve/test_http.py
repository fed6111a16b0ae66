"""The server as a process on a real socket: V2 clients, limits, keep-alive, batching, graceful shutdown."""

from __future__ import annotations

import ast
import http.client
import json
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import edgebench as eb
import edgebench.serve

from ..helpers import require, slow_model
from .conftest import start_server, stop_server


def post(port, body, path="/v2/models/digits-rf/infer", headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def test_triton_client_works_unchanged_in_json_and_binary(server, card):
    httpclient = require("tritonclient.http", "pip install -e .[dev] installs it")
    client = httpclient.InferenceServerClient(f"127.0.0.1:{server}")
    assert client.is_server_live() and client.is_model_ready("digits-rf")
    assert client.get_model_metadata("digits-rf")["inputs"][0]["shape"] == [-1, 64]
    x = np.asarray(card.golden[0].inputs[0]["data"], dtype=np.float32).reshape(1, 64)
    for binary in (True, False):
        inp = httpclient.InferInput("X", [1, 64], "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("label", "probabilities")]
        result = client.infer("digits-rf", [inp], outputs=outputs)
        assert result.as_numpy("label").tolist() == card.golden[0].outputs[0]["data"]
        assert np.allclose(result.as_numpy("probabilities").reshape(-1), card.golden[0].outputs[1]["data"], atol=1e-6)
    client.close()


def test_body_over_the_limit_gets_413_and_the_server_keeps_serving(model_dir, card):
    process, port = start_server(model_dir, "--max-body-bytes", "1000")
    try:
        status, data = post(port, b"x" * 5000)
        assert status == 413 and "request body is 5000 bytes; the limit is 1000" in json.loads(data)["error"]
        status, _ = post(port, json.dumps({"inputs": card.golden[0].inputs}).encode())
        assert status == 200
    finally:
        stop_server(process)


def test_keep_alive_serves_many_requests_on_one_connection(server, card):
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    body = json.dumps({"inputs": card.golden[1].inputs})
    for _ in range(20):
        connection.request("POST", "/v2/models/digits-rf/infer", body=body)
        response = connection.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["outputs"][0]["data"] == card.golden[1].outputs[0]["data"]
    connection.close()


def test_chunked_body_and_garbage_request_line(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as s:
        s.sendall(b"POST /v2/models/digits-rf/infer HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 411") and b"Content-Length" in reply
    with socket.create_connection(("127.0.0.1", server), timeout=5) as s:
        s.sendall(b"HELLO\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 400")
    assert post(server, b"{}", path="/v2/health/live")[0] == 200


@pytest.fixture(scope="module")
def slow_dir(tmp_path_factory):
    """A model that takes ~0.5 s per row on this machine, as an image carries it."""
    store = eb.Store(tmp_path_factory.mktemp("slow-store"))
    onnx = slow_model(tmp_path_factory.mktemp("slow") / "slow.onnx", seconds=0.5)
    card = eb.import_onnx(onnx, np.ones((1, 64), np.float32), "slow", store=store)
    folder = tmp_path_factory.mktemp("slow-model")
    shutil.copyfile(store.model_path(card), folder / "model.onnx")
    (folder / "card.json").write_text(card.to_json())
    return folder


def slow_request(value):
    return json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 64], "data": [value] * 64}]}).encode()


def in_process(folder, value):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": np.full((1, 64), value, np.float32)})[0].ravel().tolist()


def test_adaptive_batching_merges_requests_that_arrive_during_a_run(slow_dir):
    process, port = start_server(slow_dir, "--max-batch", "8", "--max-wait-ms", "1")
    try:
        results = {}

        def one(i):
            status, data = post(port, slow_request(i / 10), path="/v2/models/slow/infer")
            results[i] = (status, json.loads(data)["outputs"][0]["data"])

        first = threading.Thread(target=one, args=(0,))
        first.start()
        time.sleep(0.1)  # the first request runs alone for ~0.5 s; the six below arrive meanwhile
        rest = [threading.Thread(target=one, args=(i,)) for i in range(1, 7)]
        for t in rest:
            t.start()
        for t in [first, *rest]:
            t.join(timeout=60)
        for i, (status, got) in results.items():  # each request gets its own rows back
            assert status == 200 and got == pytest.approx(in_process(slow_dir, i / 10), rel=1e-4), i
        connection = http.client.HTTPConnection("127.0.0.1", port)
        connection.request("GET", "/metrics")
        metrics = {line.split("{")[0]: line.rsplit(" ", 1)[1] for line in
                   connection.getresponse().read().decode().splitlines() if line.startswith("edgebench_batch_size_")}
        assert float(metrics["edgebench_batch_size_sum"]) == 7
        assert float(metrics["edgebench_batch_size_count"]) <= 3  # the six waiting requests were merged
    finally:
        stop_server(process)


@pytest.mark.parametrize("batching", [False, True])
def test_sigterm_answers_the_slow_request_in_flight_and_takes_no_new_ones(slow_dir, batching):
    process, port = start_server(slow_dir, *(["--max-batch", "4"] if batching else []))
    answer = {}

    def send():
        start = time.perf_counter()
        status, data = post(port, slow_request(0.5), path="/v2/models/slow/infer")
        answer.update(status=status, data=json.loads(data), seconds=time.perf_counter() - start,
                      at=time.monotonic())

    try:
        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        if batching:  # the event loop is free while the worker computes: new connections are refused at once
            time.sleep(0.1)
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=2)
            refused_at = time.monotonic()
        sender.join(timeout=30)
        assert answer["status"] == 200 and answer["seconds"] > 0.25  # it was running when SIGTERM came
        assert answer["data"]["outputs"][0]["data"] == pytest.approx(in_process(slow_dir, 0.5), rel=1e-4)
        if batching:
            assert refused_at < answer["at"]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
        assert process.wait(timeout=15) == 0
        log = process.stderr.read()
        assert "draining" in log and "stopped" in log
    finally:
        stop_server(process)


def test_server_package_imports_nothing_else_from_edgebench():
    folder = Path(edgebench.serve.__file__).parent
    allowed = {"numpy", "onnxruntime", *sys.stdlib_module_names}
    own = {p.stem for p in folder.glob("*.py")}
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert node.module.split(".")[0] in allowed, f"{path.name} imports {node.module}"
            elif isinstance(node, ast.ImportFrom):  # relative: only the package's own modules, never ``..``
                assert node.level == 1 and (node.module or "").split(".")[0] in own | ({""} if node.module is None
                                                                                      else set()), \
                    f"{path.name} imports {'.' * node.level}{node.module or ''}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] in allowed, f"{path.name} imports {alias.name}"


def test_bad_model_folder_exits_1_with_the_reason(tmp_path):
    import subprocess

    done = subprocess.run([sys.executable, "-m", "edgebench.serve", "--model-dir", str(tmp_path), "--port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and f"cannot load the model from {tmp_path}" in done.stderr
