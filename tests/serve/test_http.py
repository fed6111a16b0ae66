"""The server as a process on a real socket: V2 clients, limits, keep-alive, batching, graceful shutdown."""

from __future__ import annotations

import ast
import http.client
import json
import signal
import socket
import sys
import threading
from pathlib import Path

import numpy as np

import edgebench.serve

from ..helpers import require
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


def test_adaptive_batching_merges_concurrent_requests(model_dir, card):
    process, port = start_server(model_dir, "--max-batch", "8", "--max-wait-ms", "20")
    try:
        results = {}

        def one(i):
            sample = card.golden[i % len(card.golden)]
            status, data = post(port, json.dumps({"inputs": sample.inputs}).encode())
            results[i] = (status, json.loads(data)["outputs"][0]["data"], sample.outputs[0]["data"])

        threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(status == 200 and got == want for status, got, want in results.values())
        connection = http.client.HTTPConnection("127.0.0.1", port)
        connection.request("GET", "/metrics")
        metrics = connection.getresponse().read().decode()
        runs = next(line for line in metrics.splitlines() if line.startswith("edgebench_batch_size_count"))
        assert int(runs.split()[-1]) < 16  # fewer onnxruntime runs than requests
    finally:
        stop_server(process)


def test_sigterm_drains_in_flight_requests_and_exits_0(model_dir, card):
    process, port = start_server(model_dir)
    body = json.dumps({"inputs": card.golden[0].inputs}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/v2/models/digits-rf/infer", body=body)
    process.send_signal(signal.SIGTERM)
    assert connection.getresponse().status == 200
    assert process.wait(timeout=15) == 0
    log = process.stderr.read()
    assert "draining" in log and "stopped" in log


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
