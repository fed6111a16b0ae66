"""Serving benchmark for the digits RandomForestClassifier(100 trees), all measured in one run:

1. requests/s and p50/p99 latency with 1 and 8 concurrent clients against
   (a) edgebench's server (one core, pinned; load from wrk on the other core),
   (a') the same with adaptive batching (max batch 8, 2 ms),
   (c) the same request handling on the standard library's ThreadingHTTPServer (the stack we did not pick),
   (b) onnxruntime called in-process in a loop (same core);
2. with a Docker Engine: image size and the size of the layers edgebench adds, rebuild time after a
   model-only change, cold start (container start to ready).

Run from the repository root: .venv/bin/python -m tests.benchmarks.bench_serve   (wrk: apt-get install wrk)
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import onnxruntime as ort
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

import edgebench as eb
from edgebench.image.tester import free_port
from edgebench.progress import Silent
from edgebench.serve.model import Model
from edgebench.serve.protocol import RequestError, decode, encode
from tests.benchmarks._timing import percentiles

DURATION = 5
SERVER_CPU, CLIENT_CPU = "0", "1"


def in_process(session: ort.InferenceSession, x: np.ndarray, clients: int) -> dict[str, float]:
    times: list[list[float]] = [[] for _ in range(clients)]
    stop = time.perf_counter() + DURATION

    def loop(out: list[float]) -> None:
        while True:
            start = time.perf_counter()
            if start > stop:
                return
            session.run(None, {"X": x})
            out.append(time.perf_counter() - start)

    threads = [threading.Thread(target=loop, args=(t,)) for t in times]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [v for t in times for v in t]
    return {"rps": len(flat) / DURATION, **percentiles(flat)}


def wrk(port: int, body_file: Path, clients: int, model: str = "digits-rf") -> dict[str, float]:
    script = body_file.with_suffix(".lua")
    script.write_text(f'wrk.method = "POST"\nlocal f = io.open("{body_file}", "r")\nwrk.body = f:read("*a")\n'
                      'f:close()\nwrk.headers["Content-Type"] = "application/json"\n')
    out = subprocess.run(
        ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{clients}", f"-d{DURATION}s", "--latency", "-s",
         str(script), f"http://127.0.0.1:{port}/v2/models/{model}/infer"],
        capture_output=True, text=True, check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(out)

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 1e-3, "ms": 1, "s": 1e3}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50": ms("50%"), "p99": ms("99%")}


def wait_ready(port: int) -> None:
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server not ready")


def edgebench_server(model_dir: Path, body: Path, *flags: str, model: str = "digits-rf") -> dict[int, dict[str, float]]:
    port = free_port()
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, sys.executable, "-m", "edgebench.serve", "--model-dir", str(model_dir),
         "--port", str(port), "--host", "127.0.0.1", *flags], stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(port)
        return {c: wrk(port, body, c, model) for c in (1, 8)}
    finally:
        process.terminate()
        process.wait()


def stdlib_server(model_dir: Path, body: Path) -> dict[int, dict[str, float]]:
    """The same decode/run/encode behind http.server.ThreadingHTTPServer, in a child pinned to one core."""
    code = f"""
import http.server, sys
sys.path.insert(0, {str(Path.cwd())!r})
from tests.benchmarks.bench_serve import StdlibHandler
from edgebench.serve.model import Model
StdlibHandler.model = Model.from_dir({str(model_dir)!r})
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), StdlibHandler).serve_forever()
"""
    port = free_port()
    process = subprocess.Popen(["taskset", "-c", SERVER_CPU, sys.executable, "-c", code, str(port)],
                               stderr=subprocess.DEVNULL)
    try:
        time.sleep(2)
        return {c: wrk(port, body, c) for c in (1, 8)}
    finally:
        process.terminate()
        process.wait()


class StdlibHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body leave in two segments and meet delayed ACKs (40 ms)
    model: Model

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            request = decode(body, None, self.model)
            payload, _ = encode(self.model, request, self.model.run(request.feeds, request.outputs))
            status = 200
        except RequestError as exc:
            status, payload = exc.status, json.dumps({"error": exc.message}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def image_figures(store: eb.Store, digits: tuple[np.ndarray, np.ndarray]) -> None:
    from edgebench.engine import engine_available

    ok, why = engine_available()
    if not ok:
        print(f"\nimage figures skipped: {why}")
        return
    from edgebench.engine import docker_client
    from edgebench.image.context import BuildSpec

    client = docker_client()
    x, y = digits
    base = client.images.get(BuildSpec("linux/amd64").base_image)
    first = eb.build_image("digits-rf", store=store, client=client, progress=Silent())
    eb.export_model(RandomForestClassifier(n_estimators=100, random_state=1).fit(x, y), x[:200], "digits-rf",
                    store=store)
    second = eb.build_image("digits-rf", store=store, client=client, progress=Silent())
    report = eb.test_image(second, store=store, client=client, memory="512m", cpuset=SERVER_CPU,
                            progress=Silent())
    layers = client.images.get(second.id).history()
    print("\nimage (linux/amd64, base " + second.base_image + ")")
    print(f"  image size {second.size_bytes / 2**20:.1f} MiB; base {base.attrs['Size'] / 2**20:.1f} MiB; "
          f"edgebench adds {(second.size_bytes - base.attrs['Size']) / 2**20:.1f} MiB:")
    for layer in layers:
        if layer["Size"] and layer["Id"] != base.id and "debootstrap" not in (layer.get("CreatedBy") or ""):
            print(f"    {layer['Size'] / 2**20:8.2f} MiB  {(layer.get('CreatedBy') or '')[-70:]}")
    print(f"  first build {first.build_seconds:.1f} s; rebuild after a model-only change {second.build_seconds:.1f} s")
    print(f"  cold start (container start to ready, 512m, 1 core) {report.cold_start_s:.2f} s; "
          f"in-container sequential p50 {report.latency_ms['p50']:.2f} ms; peak memory {report.peak_memory_mb} MB")
    for image in (first, second):
        client.images.remove(image.id, force=True)


def main() -> None:
    if not shutil.which("wrk"):
        sys.exit("wrk is needed for the HTTP load: apt-get install wrk")
    x, y = load_digits(return_X_y=True)
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    with tempfile.TemporaryDirectory() as tmp:
        store = eb.Store(Path(tmp) / "store")
        card = eb.export_model(RandomForestClassifier(n_estimators=100, random_state=0).fit(x, y), x[:200],
                               "digits-rf", store=store)
        model_dir = Path(tmp) / "model"
        model_dir.mkdir()
        shutil.copyfile(store.model_path(card), model_dir / "model.onnx")
        (model_dir / "card.json").write_text(card.to_json())
        body = Path(tmp) / "request.json"
        body.write_text(json.dumps({"inputs": card.golden[0].inputs}))
        row = np.asarray(card.golden[0].inputs[0]["data"], dtype=np.float32).reshape(1, 64)

        results = {
            "edgebench server": edgebench_server(model_dir, body),
            "edgebench server, batching 8/2ms": edgebench_server(model_dir, body, "--max-batch", "8"),
            "stdlib ThreadingHTTPServer": stdlib_server(model_dir, body),
        }
        os.sched_setaffinity(0, {int(SERVER_CPU)})
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
        for _ in range(200):
            session.run(None, {"X": row})
        results["onnxruntime in-process loop"] = {c: in_process(session, row, c) for c in (1, 8)}
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))

        print(f"digits RandomForestClassifier(100), 1 row per request, server on 1 core, {DURATION} s per cell")
        print(f"{'':<34} {'clients':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs in-process':>14}")
        for label, by_clients in results.items():
            for clients, r in by_clients.items():
                ratio = r["rps"] / results["onnxruntime in-process loop"][clients]["rps"]
                print(f"{label:<34} {clients:>7} {r['rps']:>9.0f} {r['p50']:>8.3f} {r['p99']:>8.3f} {ratio:>13.1%}")
        image_figures(store, (x, y))


if __name__ == "__main__":
    main()
