"""A small HTTP/1.1 server on asyncio: keep-alive, Content-Length bodies with a size limit, graceful drain.

Why not a framework: the image must stay small and start fast, and the protocol needs five routes. This
transport measured faster than the standard library's ThreadingHTTPServer and than uvicorn + starlette on the
same model (docs/architecture.md has the figures), with no dependency beyond the standard library.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from http import HTTPStatus

from .app import Response, error, json_response

MAX_HEADER_BYTES = 16 * 1024
_PHRASES = {s.value: s.phrase for s in HTTPStatus}


class Loading:
    """Answers while the model loads: live, not ready."""

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        if path == "/v2/health/live":
            return json_response(200, {"live": True})
        return error(503, "model is loading")


class Connection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        """Answer every complete request in the buffer, in order; one that must wait continues in a task."""
        while self.transport is not None and not self.busy and self._one():
            pass

    def _one(self) -> bool:
        """Handle the next request if it is complete; True when it was answered at once."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEADER_BYTES:
                self._reject(431, "request headers are too large")
            return False
        try:
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
        except ValueError:
            self._reject(400, "malformed HTTP request line or header")
            return False
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._reject(411, "send the body with a Content-Length (chunked bodies are not accepted)")
            return False
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            self._reject(400, "Content-Length must be a number")
            return False
        if length > self.server.max_body:
            self._reject(413, f"request body is {length} bytes; the limit is {self.server.max_body}")
            return False
        if len(self.buffer) < end + 4 + length:
            return False
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        keep_alive = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
        try:
            answer = self.server.app.handle(method, target, headers, body)
        except Exception as exc:  # a bug must not take the server down
            answer = error(500, f"internal error: {type(exc).__name__}: {exc}")
        if isinstance(answer, tuple):
            keep_alive = keep_alive and not self.server.draining
            self._write(*answer, keep_alive)
            return keep_alive
        self.busy = True
        self.server.in_flight += 1
        task = asyncio.get_running_loop().create_task(self._respond(answer, keep_alive))
        task.add_done_callback(self.server.tasks.discard)
        self.server.tasks.add(task)
        return False

    async def _respond(self, answer: Awaitable[Response], keep_alive: bool) -> None:
        try:
            try:
                status, payload, extra = await answer
            except Exception as exc:  # a bug must not take the server down
                status, payload, extra = error(500, f"internal error: {type(exc).__name__}: {exc}")
            keep_alive = keep_alive and not self.server.draining
            self._write(status, payload, extra, keep_alive)
        finally:
            self.server.in_flight -= 1
            self.busy = False
        if keep_alive:
            self._next()

    def _write(self, status: int, payload: bytes, extra: dict[str, str], keep_alive: bool) -> None:
        if self.transport is None:
            return
        head = [f"HTTP/1.1 {status} {_PHRASES[status]}", f"Content-Length: {len(payload)}"]
        head += [f"{k}: {v}" for k, v in extra.items()]
        if not keep_alive:
            head.append("Connection: close")
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        if not keep_alive:
            self.transport.close()

    def _reject(self, status: int, message: str) -> None:
        _, payload, extra = error(status, message)
        self._write(status, payload, extra, keep_alive=False)
        self.buffer.clear()


class Server:
    """Owns the listening socket, the open connections and the handler (swapped once the model loads)."""

    def __init__(self, app: object, max_body: int) -> None:
        self.app = app  # any object with an async handle(method, path, headers, body)
        self.max_body = max_body
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.in_flight = 0
        self.draining = False
        self.listener: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self.listener = await loop.create_server(lambda: Connection(self), host, port, reuse_address=True)
        return int(self.listener.sockets[0].getsockname()[1])

    async def drain(self, timeout: float) -> None:
        """Stop accepting, let in-flight requests finish (up to ``timeout`` s), close idle connections."""
        self.draining = True
        if self.listener is not None:
            self.listener.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await asyncio.sleep(min(0.5, timeout))  # requests already sent get read and become in-flight
        while self.in_flight and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
