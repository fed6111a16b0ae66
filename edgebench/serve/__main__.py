"""Start the inference server: ``python -m edgebench.serve --model-dir DIR`` (``edgebench_serve`` in images).

Every option also reads an environment variable, so an image is configured with ``docker run -e``.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import math
import os
import signal
import sys
import time

from .app import App
from .http import Loading, Server
from .model import Model
from .monitor import Monitor


def options(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="edgebench-serve", description="Open Inference Protocol server for one model")
    p.add_argument("--model-dir", default=env("EDGEBENCH_MODEL_DIR", "/opt/edgebench/model"),
                   help="folder with model.onnx and card.json [EDGEBENCH_MODEL_DIR]")
    p.add_argument("--host", default=env("EDGEBENCH_HOST", "0.0.0.0"), help="[EDGEBENCH_HOST]")
    p.add_argument("--port", type=int, default=int(env("EDGEBENCH_PORT", "8080")), help="[EDGEBENCH_PORT]")
    p.add_argument("--threads", type=int, default=int(env("EDGEBENCH_THREADS", "1")),
                   help="onnxruntime intra-op threads; match the cores you give the container [EDGEBENCH_THREADS]")
    p.add_argument("--max-batch", type=int, default=int(env("EDGEBENCH_MAX_BATCH", "1")),
                   help="rows merged from concurrent requests into one run; 1 disables batching [EDGEBENCH_MAX_BATCH]")
    p.add_argument("--max-wait-ms", type=float, default=float(env("EDGEBENCH_MAX_WAIT_MS", "2")),
                   help="longest a request waits for a batch to fill [EDGEBENCH_MAX_WAIT_MS]")
    p.add_argument("--max-body-bytes", type=int, default=int(env("EDGEBENCH_MAX_BODY_BYTES", str(16 * 2**20))),
                   help="larger requests get 413 [EDGEBENCH_MAX_BODY_BYTES]")
    p.add_argument("--drain-seconds", type=float, default=float(env("EDGEBENCH_DRAIN_SECONDS", "10")),
                   help="on SIGTERM, time given to in-flight requests [EDGEBENCH_DRAIN_SECONDS]")
    p.add_argument("--monitor", default=env("EDGEBENCH_MONITOR", "on"), choices=["on", "off"],
                   help="count inputs per reference bin, classes and confidence for drift [EDGEBENCH_MONITOR]")
    p.add_argument("--spool-dir", default=env("EDGEBENCH_SPOOL_DIR"),
                   help="writable folder where drift counts survive restarts (cut-off sites) [EDGEBENCH_SPOOL_DIR]")
    p.add_argument("--spool-seconds", type=float, default=float(env("EDGEBENCH_SPOOL_SECONDS", "60")),
                   help="how often the counts are spooled [EDGEBENCH_SPOOL_SECONDS]")
    p.add_argument("--spool-max-bytes", type=int, default=int(env("EDGEBENCH_SPOOL_MAX_BYTES", str(16 * 2**20))),
                   help="size cap of the spool file [EDGEBENCH_SPOOL_MAX_BYTES]")
    args = p.parse_args(argv)
    for key in ("threads", "max_batch", "max_body_bytes"):
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1")
    for key in ("max_wait_ms", "drain_seconds", "spool_seconds"):
        if not math.isfinite(getattr(args, key)) or getattr(args, key) < 0:
            p.error(f"--{key.replace('_', '-')} must be a finite number >= 0, got {getattr(args, key)}")
    return args


async def serve(args: argparse.Namespace, model: Model | None = None, started: asyncio.Event | None = None) -> int:
    begin = time.perf_counter()
    server = Server(Loading(), args.max_body_bytes)
    try:
        port = await server.start(args.host, args.port)
    except OSError as exc:
        reason = "the port is taken by another program" if exc.errno == errno.EADDRINUSE else (exc.strerror or exc)
        print(f"edgebench-serve: cannot listen on {args.host}:{args.port}: {reason}; choose another --port",
              file=sys.stderr, flush=True)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if model is None:
            model = await loop.run_in_executor(None, Model.from_dir, args.model_dir, args.threads)
    except Exception as exc:
        print(f"edgebench-serve: cannot load the model from {args.model_dir}: {exc}", file=sys.stderr, flush=True)
        await server.drain(0)
        return 1
    monitor = None
    if args.monitor == "on" and model.card.get("monitoring"):
        try:
            monitor = Monitor(model.card, args.spool_dir, args.spool_seconds, args.spool_max_bytes)
        except OSError as exc:
            print(f"edgebench-serve: cannot write the drift spool in {args.spool_dir}: {exc.strerror or exc}; mount "
                  "a writable volume there (the image's root is read-only) or unset EDGEBENCH_SPOOL_DIR",
                  file=sys.stderr, flush=True)
            await server.drain(0)
            return 1
    app = App(model, args.max_batch, args.max_wait_ms / 1000, monitor)
    server.app = app
    batching = f"batching up to {app.runner.max_batch} rows, {args.max_wait_ms} ms" if app.runner.max_batch > 1 \
        else "batching off"
    drift = "drift counters off" if monitor is None else (
        f"drift counters on {len(monitor.reference['features'])} features"
        + (f", spooled to {args.spool_dir}" if args.spool_dir else ""))
    print(f"edgebench-serve: {model.name}:{model.version} ready on {args.host}:{port} in "
          f"{time.perf_counter() - begin:.3f} s (threads {model.threads}, {batching}, {drift})", file=sys.stderr,
          flush=True)
    if started is not None:
        started.set()
    await stop.wait()
    app.ready = False
    print("edgebench-serve: draining", file=sys.stderr, flush=True)
    await server.drain(args.drain_seconds)
    app.runner.close()
    if monitor is not None:
        monitor.save()  # the last counts reach the spool before the process ends
    print("edgebench-serve: stopped", file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(serve(options(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
