"""Routes of the Open Inference Protocol, independent of the HTTP transport: ``await app.handle(...)``."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from .batching import Runner
from .metrics import Metrics
from .model import Model
from .protocol import HEADER_LENGTH, RequestError, decode, encode

SERVER_NAME = "edgebench"
SERVER_VERSION = "0.1.0"
JSON = "application/json"

_MODEL_ROUTE = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer)?$")

Response = tuple[int, bytes, dict[str, str]]


def json_response(status: int, payload: Any) -> Response:
    return status, json.dumps(payload, separators=(",", ":")).encode(), {"Content-Type": JSON}


def error(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


class App:
    """The server's behaviour once the model is loaded. ``ready`` turns False when draining on shutdown, so
    that load balancers stop sending; requests that still arrive are served."""

    def __init__(self, model: Model, max_batch: int = 1, max_wait: float = 0.002) -> None:
        self.model = model
        self.metrics = Metrics(model.name, model.load_seconds)
        self.runner = Runner(model, self.metrics, max_batch, max_wait)
        self.ready = True

    async def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        path = path.split("?", 1)[0]
        if path == "/v2/health/live":
            return json_response(200, {"live": True})
        if path == "/v2/health/ready":
            return json_response(200 if self.ready else 503, {"ready": self.ready})
        if path == "/v2":
            return json_response(200, {"name": SERVER_NAME, "version": SERVER_VERSION,
                                       "extensions": ["binary_tensor_data"]})
        if path == "/metrics":
            return 200, self.metrics.render().encode(), {"Content-Type": "text/plain; version=0.0.4"}
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
            return await self.infer(headers, body)
        if method != "GET":
            return error(405, f"use GET for {path}")
        if action == "/ready":
            return json_response(200 if self.ready else 503, {"name": name, "ready": self.ready})
        return json_response(200, self.model.metadata())

    async def infer(self, headers: dict[str, str], body: bytes) -> Response:
        start = time.perf_counter()
        try:
            request = decode(body, headers.get(HEADER_LENGTH), self.model)
            results = await self.runner.infer(request)
            payload, extra = encode(self.model, request, results)
        except RequestError as exc:
            self.metrics.count("bad_request")
            return error(exc.status, exc.message)
        except Exception as exc:  # onnxruntime refused what passed our checks
            self.metrics.count("error")
            return error(500, f"inference failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        self.metrics.count("success")
        self.metrics.total.observe(time.perf_counter() - start)
        content_type = "application/octet-stream" if extra else JSON
        return 200, payload, {"Content-Type": content_type, **extra}
