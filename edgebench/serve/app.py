"""Routes of the Open Inference Protocol, independent of the HTTP transport.

``app.handle(...)`` answers at once with ``(status, body, headers)``, or, for an inference that waits for an
adaptive batch, with an awaitable of it. Answering at once spares a task and a loop turn per request, which
is a measurable share of a small model's latency.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable
from typing import Any

from .batching import Runner
from .metrics import Metrics
from .model import Model
from .monitor import Monitor
from .protocol import HEADER_LENGTH, InferRequest, RequestError, decode, encode

SERVER_NAME = "edgebench"
SERVER_VERSION = "0.1.0"
JSON = "application/json"

_MODEL_ROUTE = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer)?$")

Response = tuple[int, bytes, dict[str, str]]
Answer = Response | Awaitable[Response]


def json_response(status: int, payload: Any) -> Response:
    return status, json.dumps(payload, separators=(",", ":")).encode(), {"Content-Type": JSON}


def error(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


class App:
    """The server's behaviour once the model is loaded. ``ready`` turns False when draining on shutdown, so
    that load balancers stop sending; requests that still arrive are served."""

    def __init__(self, model: Model, max_batch: int = 1, max_wait: float = 0.002, monitor: Monitor | None = None
                 ) -> None:
        self.model = model
        self.metrics = Metrics(model.name, model.load_seconds, model.version)
        self.runner = Runner(model, self.metrics, max_batch, max_wait)
        self.monitor = monitor  # drift counters, when the card has a reference and monitoring is on
        self.ready = True

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        path = path.split("?", 1)[0]
        if path == "/v2/health/live":
            return json_response(200, {"live": True})
        if path == "/v2/health/ready":
            return json_response(200 if self.ready else 503, {"ready": self.ready})
        if path == "/v2":
            return json_response(200, {"name": SERVER_NAME, "version": SERVER_VERSION,
                                       "extensions": ["binary_tensor_data"]})
        if path == "/metrics":
            text = self.metrics.render()
            if self.monitor is not None:
                text += "\n".join(self.monitor.render(self.metrics.labels)) + "\n"
            return 200, text.encode(), {"Content-Type": "text/plain; version=0.0.4"}
        match = _MODEL_ROUTE.match(path)
        if match is None:
            return error(404, f"no route {path}; see /v2, /v2/models/{self.model.name}, /v2/health/ready")
        name, version, action = match.groups()
        if name != self.model.name:
            return error(404, f"unknown model {name!r}; this server serves {self.model.name!r}")
        if version is not None and version != self.model.version:
            return error(404, f"model {name!r} has no version {version!r}; it serves version {self.model.version}")
        if action == "/infer":
            if method != "POST":
                return error(405, "use POST for /infer")
            return self.infer(headers, body)
        if method != "GET":
            return error(405, f"use GET for {path}")
        if action == "/ready":
            return json_response(200 if self.ready else 503, {"name": name, "ready": self.ready})
        return json_response(200, self.model.metadata())

    def infer(self, headers: dict[str, str], body: bytes) -> Answer:
        start = time.perf_counter()
        try:
            request = decode(body, headers.get(HEADER_LENGTH), self.model)
        except RequestError as exc:
            return self._refused(exc)
        if self.runner.batching:
            return self._infer_batched(request, start)
        try:
            return self._answer(request, self.runner.run_now(request), start)
        except Exception as exc:
            return self._failed(exc)

    async def _infer_batched(self, request: InferRequest, start: float) -> Response:
        try:
            return self._answer(request, await self.runner.infer(request), start)
        except Exception as exc:
            return self._failed(exc)

    def _answer(self, request: InferRequest, results: dict[str, Any], start: float) -> Response:
        payload, extra = encode(self.model, request, results)
        if self.monitor is not None:
            self.monitor.observe(request.feeds, results, request.rows)
        self.metrics.count("success")
        self.metrics.total.observe(time.perf_counter() - start)
        return 200, payload, {"Content-Type": "application/octet-stream" if extra else JSON, **extra}

    def _refused(self, exc: RequestError) -> Response:
        self.metrics.count("bad_request")
        return error(exc.status, exc.message)

    def _failed(self, exc: Exception) -> Response:  # onnxruntime refused what passed our checks
        if isinstance(exc, RequestError):
            return self._refused(exc)
        self.metrics.count("error")
        return error(500, f"inference failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
