"""Test an inference image for real: run it under limits, check it against its model card, always clean up.

Checks, in order: the container starts and becomes ready (cold start measured from the start call); the
metadata at ``/v2/models/NAME`` matches the card; every golden sample replays within tolerance; malformed
requests get 4xx and the server keeps serving; a short sequential latency run. Peak memory comes from the
container's cgroup (``memory.max_usage_in_bytes`` on cgroup v1, ``memory.peak`` on v2, via the stats API).
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import uuid
from typing import Any

import numpy as np

from .. import config
from ..core.card import ModelCard, array
from ..core.errors import ContainerTestError, InvalidInputError
from ..core.images import Check, ImageRef, ImageTestReport, arch_name
from ..core.numbers import number
from ..core.parity import Tolerance, compare
from ..emulation import HOW, emulation
from ..engine import applied_limits, docker_client, emulator_baseline, peak_memory_mb, run_limited
from ..progress import Progress, auto
from ..store import Store, open_store

_MEMORY_UNITS = {"b": 1, "k": 2**10, "m": 2**20, "g": 2**30}
#: How much longer waits are under emulation (QEMU runs onnxruntime 5-20 times slower than the host).
EMULATION_SLOWDOWN = 5


def parse_memory(value: str | int) -> int:
    """Bytes from ``512m``, ``1g``, ``268435456``."""
    text = str(value).strip().lower()
    number, unit = (text[:-1], text[-1]) if text and text[-1] in _MEMORY_UNITS else (text, "b")
    try:
        result = int(float(number) * _MEMORY_UNITS[unit])
    except ValueError:
        raise InvalidInputError(f"memory limit {value!r} is not a size like 512m or 1g") from None
    if result < 6 * 2**20:
        raise InvalidInputError(f"memory limit {value!r} is below the engine's minimum of 6m")
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Http:
    """Keep-alive JSON client for the server in the container."""

    def __init__(self, port: int, timeout: float = 10) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        try:
            self.connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            raise
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data.decode(errors="replace")

    def close(self) -> None:
        self.connection.close()


def test_image(
    image: ImageRef | str,
    *,
    memory: str | int = "512m",
    cpuset: str | None = None,
    threads: int | None = None,
    timeout: float = 60,
    latency_requests: int = 200,
    store: Store | str | None = None,
    client: Any = None,
    progress: Progress | None = None,
) -> ImageTestReport:
    """Run ``image`` under ``memory`` (no swap) and ``cpuset``, and check it against its model card.

    Returns a report whether the checks pass or not; raises :class:`ContainerTestError` only when the test
    cannot run at all (no such image, an image for another architecture, its model not in the store).
    """
    number(timeout, "timeout", above=0)
    number(latency_requests, "latency_requests", whole=True, at_least=1)
    if threads is not None:
        number(threads, "threads", whole=True, at_least=1)
    store = open_store(store)
    progress = progress or auto("test")
    memory_bytes = parse_memory(memory)
    docker = docker_client(client)
    tag = image.tag if isinstance(image, ImageRef) else image
    found = _image(docker, tag)
    card = _card(store, found, tag)
    threads = threads or (_cpus(cpuset) if cpuset else 1)
    limits: dict[str, Any] = {"memory": str(memory), "cpuset": cpuset, "threads": threads, "read_only": True}
    arch = found.attrs.get("Architecture", "")
    platform = f"{found.attrs.get('Os', 'linux')}/{arch}"
    emulated = arch != arch_name(docker.info().get("Architecture", ""))
    run_id = store.start_run("test", card.name, card.version, {"image": tag, **limits, "emulated": emulated})
    port = free_port()
    checks: list[Check] = []
    cold_start = None
    latency: dict[str, float] = {}
    peak = baseline = None
    logs = ""
    container = None
    try:
        if emulated and config.docker_host().startswith("unix://") and not emulation(arch).usable:
            # never a silent pass: the report says the image was not run, and how to run it
            checks.append(Check("emulation", False, f"not run: {emulation(arch).explain()}"))
            raise _NotRun
        progress.step(1, 5, f"starting {tag} (memory {memory}, cpuset {cpuset or 'all'}"
                            f"{', under emulation' if emulated else ''})")
        started = time.perf_counter()
        container = run_limited(
            docker, found.id, memory=memory_bytes, cpuset=cpuset, network="host",
            name=f"edgebench-test-{uuid.uuid4().hex[:12]}", labels={"org.edgebench.test": card.ref},
            environment={"EDGEBENCH_PORT": str(port), "EDGEBENCH_THREADS": str(threads)},
        )
        limits["applied"] = applied_limits(container)
        ready, message = _wait_ready(container, port, timeout * (EMULATION_SLOWDOWN if emulated else 1), memory)
        if ready:
            cold_start = time.perf_counter() - started
        checks.append(Check("start", ready, message, {"cold_start_s": cold_start}))
        if ready:
            client_http = Http(port, timeout=10 * (EMULATION_SLOWDOWN if emulated else 1))
            try:
                progress.step(2, 5, "checking metadata")
                checks.append(_check_metadata(client_http, card))
                progress.step(3, 5, f"replaying {len(card.golden)} golden samples")
                checks.append(_check_golden(client_http, card))
                progress.step(4, 5, "sending malformed requests")
                checks.append(_check_malformed(client_http, card))
                requests = max(20, latency_requests // 10) if emulated else latency_requests
                progress.step(5, 5, f"latency run ({requests} requests{', emulated' if emulated else ''})")
                latency = _latency(client_http, card, requests)
            except (OSError, http.client.HTTPException) as exc:
                checks.append(Check("connection", False, f"the server stopped answering: {exc}"))
            finally:
                client_http.close()
        peak = peak_memory_mb(container)
        container.reload()
        if container.attrs["State"].get("OOMKilled"):
            checks.append(Check("memory", False, f"killed for running out of memory (limit {memory})"
                                + (" under emulation, which adds QEMU's own memory" if emulated else "")))
        if emulated:
            baseline = emulator_baseline(docker, found, memory_bytes)
    except _NotRun:
        pass
    finally:
        if container is not None:
            try:
                logs = container.logs().decode(errors="replace")
            finally:
                container.remove(force=True)
    report = ImageTestReport(
        image=tag, model=card.ref, platform=platform, limits=limits, checks=checks,
        cold_start_s=round(cold_start, 3) if cold_start is not None else None,
        latency_ms=latency, peak_memory_mb=peak, logs=logs, emulated=emulated, emulator_baseline_mb=baseline,
    )
    store.finish_run(run_id, "passed" if report.passed else "failed",
                     {**report.to_dict(), "logs": None, "image_id": found.id}, log=logs)
    progress.close()
    return report


class _NotRun(Exception):
    """The image cannot run on this engine; the report's checks say why."""


test_image.__test__ = False  # type: ignore[attr-defined]  # a library function, not a pytest test


def _image(docker: Any, tag: str) -> Any:
    import docker as sdk

    try:
        found = docker.images.get(tag)
    except sdk.errors.ImageNotFound:
        raise ContainerTestError(
            f"image {tag!r} is not in the engine: build it with eb.build_image(...) or `edgebench build`",
            image=tag,
        ) from None
    return found


def _card(store: Store, image: Any, tag: str) -> ModelCard:
    ref = (image.labels or {}).get("org.edgebench.model")
    if not ref:
        raise ContainerTestError(f"image {tag!r} has no org.edgebench.model label: not built by edgebench",
                                 image=tag)
    return store.get(ref)


def _cpus(cpuset: str) -> int:
    count = 0
    for part in cpuset.split(","):
        low, _, high = part.partition("-")
        if not low.strip().isdigit() or (high and not high.strip().isdigit()):
            raise InvalidInputError(f"cpuset {cpuset!r} is not a CPU list like 0 or 0-1 or 0,2")
        count += int(high) - int(low) + 1 if high else 1
    return count


def _wait_ready(container: Any, port: int, timeout: float, memory: str | int) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if container.status in ("exited", "dead"):
            state = container.attrs["State"]
            tail = container.logs(tail=20).decode(errors="replace").strip()
            if "exec format error" in tail:
                arch = container.attrs.get("Platform") or "this image's architecture"
                return False, f"this engine cannot run binaries of {arch}: {HOW}; its last output:\n{tail}"
            if state.get("OOMKilled"):
                return False, (f"out of memory: the container was killed before it was ready, so the image does "
                               f"not fit in {memory}; its last output:\n{tail}")
            return False, f"container exited with code {state.get('ExitCode')} before it was ready; its last " \
                          f"output:\n{tail}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
            client = Http(port, timeout=2)
            try:
                status, _ = client.request("GET", "/v2/health/ready")
            finally:
                client.close()
            if status == 200:
                return True, "ready"
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.05)
    tail = container.logs(tail=20).decode(errors="replace").strip()
    return False, f"not ready after {timeout:g} s; its last output:\n{tail}"


def _check_metadata(client: Http, card: ModelCard) -> Check:
    status, meta = client.request("GET", f"/v2/models/{card.name}")
    if status != 200:
        return Check("metadata", False, f"/v2/models/{card.name} answered {status}: {meta}")
    problems = []
    if meta.get("versions") != [str(card.version)]:
        problems.append(f"versions {meta.get('versions')} instead of {[str(card.version)]}")
    for kind, specs in (("inputs", card.inputs), ("outputs", card.outputs)):
        expected = [{"name": t.name, "datatype": t.datatype, "shape": t.shape} for t in specs]
        if meta.get(kind) != expected:
            problems.append(f"{kind} {meta.get(kind)} instead of {expected}")
    return Check("metadata", not problems, "; ".join(problems) or "matches the card")


def _check_golden(client: Http, card: ModelCard) -> Check:
    tolerance = card.parity.tolerance if card.parity else Tolerance()
    failures = []
    largest: dict[str, float] = {}  # per output: the largest |answer - host's golden output| over the samples
    for index, sample in enumerate(card.golden):
        status, answer = client.request("POST", f"/v2/models/{card.name}/infer",
                                        json.dumps({"inputs": sample.inputs}).encode())
        if status != 200:
            failures.append(f"sample {index}: HTTP {status}: {answer}")
            continue
        got = {o["name"]: array(o) for o in answer["outputs"]}
        want = {o["name"]: array(o) for o in sample.outputs}
        if set(got) != set(want):
            failures.append(f"sample {index}: outputs {sorted(got)} instead of {sorted(want)}")
            continue
        kinds = {k: ("values" if v.dtype.kind == "f" else "label") for k, v in want.items()}
        for name, expected in want.items():
            answer = got[name]
            diff = float(np.max(np.abs(answer.astype(np.float64) - expected))) if kinds[name] == "values" and \
                answer.shape == expected.shape else float(np.sum(answer.ravel() != expected.ravel()))
            largest[name] = max(largest.get(name, 0.0), diff)
        result = compare(want, got, kinds, tolerance, rows=1)
        for output in result.outputs:
            if not output.passed:
                failures.append(f"sample {index}: output {output.name!r} is {got[output.name].tolist()}, "
                                f"expected {want[output.name].tolist()}")
    message = "; ".join(failures) or f"{len(card.golden)} samples match the card"
    return Check("golden", not failures, message, {"samples": len(card.golden), "max_abs_diff": largest})


def _check_malformed(client: Http, card: ModelCard) -> Check:
    first = card.golden[0].inputs[0] if card.golden else None
    path = f"/v2/models/{card.name}/infer"
    cases: list[tuple[str, str, bytes, int]] = [("invalid JSON", path, b"{not json", 400),
                                                ("unknown model", "/v2/models/no-such-model/infer", b"{}", 404)]
    if first is not None:
        cases += [
            ("unknown input name", path, json.dumps({"inputs": [{**first, "name": "no_such_input"}]}).encode(), 400),
            ("wrong datatype", path, json.dumps({"inputs": [{**first, "datatype": "BOOL"}]}).encode(), 400),
            ("shape and data disagree", path,
             json.dumps({"inputs": [{**first, "shape": [2, *first["shape"][1:]]}]}).encode(), 400),
        ]
    wrong = []
    for label, target, body, expected in cases:
        status, answer = client.request("POST", target, body)
        if status != expected or not isinstance(answer, dict) or "error" not in answer:
            wrong.append(f"{label}: HTTP {status} {answer!r} instead of {expected} with an error message")
    live, _ = client.request("GET", "/v2/health/live")
    if live != 200:
        wrong.append(f"server not live after malformed requests (HTTP {live})")
    return Check("malformed", not wrong, "; ".join(wrong) or f"{len(cases)} malformed requests refused with 4xx")


def _latency(client: Http, card: ModelCard, requests: int) -> dict[str, float]:
    if not card.golden or requests < 1:
        return {}
    body = json.dumps({"inputs": card.golden[0].inputs}).encode()
    path = f"/v2/models/{card.name}/infer"
    for _ in range(min(20, requests)):
        client.request("POST", path, body)
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        client.request("POST", path, body)
        times.append((time.perf_counter() - start) * 1000)
    return {f"p{q}": round(float(np.percentile(times, q)), 3) for q in (50, 90, 99)}
