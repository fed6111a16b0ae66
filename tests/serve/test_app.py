"""The Open Inference Protocol as the app answers it: every endpoint, and every malformed request."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgebench.serve.tensors import to_binary

from .conftest import call

INFER = "/v2/models/digits-rf/infer"


def infer_body(card, rows=1, **changes):
    x = np.asarray(card.golden[0].inputs[0]["data"] * rows, dtype=np.float32)
    return {"inputs": [{"name": "X", "datatype": "FP32", "shape": [rows, 64], "data": x.tolist(), **changes}]}


def test_health_server_and_model_metadata(app, card):
    assert call(app, "GET", "/v2/health/live")[:2] == (200, {"live": True})
    assert call(app, "GET", "/v2/health/ready")[:2] == (200, {"ready": True})
    status, meta, _ = call(app, "GET", "/v2")
    assert status == 200 and meta["name"] == "edgebench" and "binary_tensor_data" in meta["extensions"]
    status, meta, _ = call(app, "GET", "/v2/models/digits-rf")
    assert status == 200
    assert meta == call(app, "GET", f"/v2/models/digits-rf/versions/{card.version}")[1]
    assert meta["versions"] == [str(card.version)] and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 64]}]
    assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]
    assert call(app, "GET", "/v2/models/digits-rf/ready")[:2] == (200, {"name": "digits-rf", "ready": True})


def test_infer_matches_the_golden_outputs(app, card):
    for sample in card.golden:
        status, answer, _ = call(app, "POST", INFER, {"id": "req-1", "inputs": sample.inputs})
        assert status == 200
        assert answer["id"] == "req-1" and answer["model_name"] == "digits-rf"
        got = {o["name"]: o for o in answer["outputs"]}
        want = {o["name"]: o for o in sample.outputs}
        assert got["label"] == want["label"]
        assert np.allclose(got["probabilities"]["data"], want["probabilities"]["data"], atol=1e-6)


def test_several_rows_nested_data_and_selected_outputs(app, card):
    body = infer_body(card, rows=3)
    body["inputs"][0]["data"] = np.asarray(body["inputs"][0]["data"]).reshape(3, 64).tolist()
    body["outputs"] = [{"name": "label"}]
    status, answer, _ = call(app, "POST", INFER, body)
    assert status == 200
    assert [o["name"] for o in answer["outputs"]] == ["label"]
    assert answer["outputs"][0]["shape"] == [3] and len(set(answer["outputs"][0]["data"])) == 1


def test_binary_inputs_and_outputs(app, card):
    x = np.asarray(card.golden[0].inputs[0]["data"], dtype=np.float32).reshape(1, 64)
    raw = to_binary(x)
    head = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 64],
                                   "parameters": {"binary_data_size": len(raw)}}],
                       "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]}).encode()
    status, payload, headers = call(app, "POST", INFER, head + raw,
                                    {"Inference-Header-Content-Length": str(len(head))})
    assert status == 200
    split = int(headers["Inference-Header-Content-Length"])
    meta = json.loads(payload[:split])
    (out,) = meta["outputs"]
    assert out["parameters"]["binary_data_size"] == 40
    probabilities = np.frombuffer(payload[split:], dtype="<f4")
    assert np.allclose(probabilities, card.golden[0].outputs[1]["data"], atol=1e-6)


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v2/models/other/infer", {}, 404, "unknown model 'other'; this server serves 'digits-rf'"),
        ("/v2/models/digits-rf/versions/9/infer", {}, 404, "has no version '9'"),
        (INFER, b"{not json", 400, "request body is not valid JSON"),
        (INFER, [1, 2], 400, "request body must be a JSON object"),
        (INFER, b"[" * 100_000 + b"]" * 100_000, 400,
         "request body nests too deeply to parse: send tensors as flat data lists"),
        (INFER, b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 64], "data": ' + b"[" * 900 + b"0"
         + b"]" * 900 + b"}]}", 400, "has data that is not a flat or nested list of FP32"),
        (INFER, {"inputs": []}, 400, "request needs a non-empty 'inputs' list"),
        (INFER, {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": [0] * 64}]}, 400,
         "unknown input 'pixels'; model 'digits-rf' takes ['X']"),
        (INFER, {"inputs": [{"name": "X", "datatype": "FP64", "shape": [1, 64], "data": [0] * 64}]}, 400,
         "input 'X' has datatype FP64; the model takes FP32"),
        (INFER, {"inputs": [{"name": "X", "datatype": "FLOAT", "shape": [1, 64], "data": [0] * 64}]}, 400,
         "input 'X' has datatype 'FLOAT'"),
        (INFER, {"inputs": [{"name": "X", "datatype": "FP32", "shape": [2, 64], "data": [0] * 64}]}, 400,
         "input 'X' has 64 values but shape [2, 64] needs 128"),
        (INFER, {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 8], "data": [0] * 8}]}, 400,
         "input 'X' has shape [1, 8]; the model takes [-1, 64]"),
        (INFER, {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, -64], "data": [0] * 64}]}, 400,
         "needs a 'shape' list of whole numbers >= 0"),
        (INFER, {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 64], "data": ["a"] * 64}]}, 400,
         "FP32 data must hold numbers"),
        (INFER, {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 64], "data": [[1, 2], [3]]}]}, 400,
         "not a flat or nested list of FP32"),
        (INFER, {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 64]}]}, 400,
         "has neither 'data' nor parameters.binary_data_size"),
        (INFER, {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 64], "data": [0] * 64}],
                 "outputs": [{"name": "score"}]}, 400, "unknown output 'score'"),
    ],
)
def test_bad_requests_get_a_message_and_the_server_keeps_serving(app, card, path, body, status, message):
    got_status, answer, _ = call(app, "POST", path, body)
    assert got_status == status
    assert message in answer["error"]
    assert call(app, "POST", INFER, infer_body(card))[0] == 200


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_values_are_refused(app, bad):
    body = f'{{"inputs": [{{"name": "X", "datatype": "FP32", "shape": [1, 64], "data": [{bad}' + ", 0" * 63 + "]}]}"
    status, answer, _ = call(app, "POST", INFER, body.encode())
    assert status == 400 and "the model takes finite numbers only" in answer["error"]


@pytest.mark.parametrize(
    ("header", "sizes", "message"),
    [
        ("10000", [256], "Inference-Header-Content-Length is 10000 but the body has only"),
        ("abc", [256], "Inference-Header-Content-Length must be a number"),
        (None, [300], "has binary_data_size 300 but only 256 binary bytes are left"),
        (None, [128], "has shape [1, 64] (64 x FP32, 256 bytes) but binary_data_size 128"),
    ],
)
def test_binary_header_whose_lengths_lie(app, card, header, sizes, message):
    raw = to_binary(np.zeros((1, 64), np.float32))
    head = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 64],
                                   "parameters": {"binary_data_size": sizes[0]}}]}).encode()
    status, answer, _ = call(app, "POST", INFER, head + raw,
                             {"Inference-Header-Content-Length": header or str(len(head))})
    assert status == 400 and message in answer["error"]
    assert call(app, "POST", INFER, infer_body(card))[0] == 200


def test_binary_bytes_left_over_are_refused(app):
    raw = to_binary(np.zeros((1, 64), np.float32))
    head = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 64],
                                   "parameters": {"binary_data_size": 256}}]}).encode()
    status, answer, _ = call(app, "POST", INFER, head + raw + b"junk",
                             {"Inference-Header-Content-Length": str(len(head))})
    assert status == 400
    assert "binary data is 260 bytes but the inputs' binary_data_size add up to 256" in answer["error"]


def test_unknown_route_and_wrong_method(app):
    status, answer, _ = call(app, "GET", "/v1/models/digits-rf:predict")
    assert status == 404 and "no route /v1/models/digits-rf:predict" in answer["error"]
    assert call(app, "GET", INFER)[0] == 405


def test_metrics_count_outcomes_and_latency(app, card):
    call(app, "POST", INFER, infer_body(card))
    call(app, "POST", INFER, b"{bad")
    _status, text, _ = call(app, "GET", "/metrics")
    text = text.decode()
    assert 'edgebench_requests_total{model="digits-rf",version="1",outcome="success"} 1' in text
    assert 'edgebench_requests_total{model="digits-rf",version="1",outcome="bad_request"} 1' in text
    assert 'edgebench_request_seconds_count{model="digits-rf",version="1"} 1' in text
    assert "edgebench_model_load_seconds" in text and "edgebench_batch_size_bucket" in text
