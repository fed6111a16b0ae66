"""Host measurement of one model: latency loops, a per-node profile, graph statistics, peak memory."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..core.bench import HostMeasurement, Percentiles, classify
from ..core.card import ModelCard, array
from ..core.errors import BenchError
from ..ortsession import session

WARMUP_RUNS = 20


def feeds_for(card: ModelCard, sample: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """One request's inputs: the sample given, else the first golden sample. Refuses dynamic shapes that no
    sample fixes."""
    if sample is not None:
        return {k: np.asarray(v) for k, v in sample.items()}
    if card.golden:
        return {t["name"]: array(t) for t in card.golden[0].inputs}
    dynamic = [t for t in card.inputs if -1 in t.shape[1:]]
    if dynamic:
        t = dynamic[0]
        raise BenchError(
            f"input {t.name!r} of {card.ref} has a dynamic dimension (shape {t.shape}) and no sample fixes it: "
            "pass sample={name: array} to eb.benchmark", model=card.ref,
        )
    from ..serve.tensors import numpy_dtype

    return {t.name: np.zeros([1, *t.shape[1:]], dtype=numpy_dtype(t.datatype)) for t in card.inputs}


def latency(path: str | Path, feeds: dict[str, np.ndarray], threads: int, seconds: float = 2.0,
            max_runs: int = 5000) -> Percentiles:
    """Single-stream loop after a warm-up: each run starts when the previous one ends (MLPerf single stream)."""
    s = session(path, threads)
    for _ in range(WARMUP_RUNS):
        s.run(None, feeds)
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < max_runs and (time.perf_counter() < deadline or len(times) < 50):
        start = time.perf_counter()
        s.run(None, feeds)
        times.append((time.perf_counter() - start) * 1000)
    q = np.percentile(times, [50, 90, 99])
    return Percentiles(float(q[0]), float(q[1]), float(q[2]), len(times))


def node_profile(path: str | Path, feeds: dict[str, np.ndarray], runs: int = 50) -> dict[str, float]:
    """Per-run time (ms) of matrix, memory and scalar nodes at 1 thread, from onnxruntime's profiler, with the
    warm-up runs left out."""
    s = session(path, 1, profile=True)
    for _ in range(WARMUP_RUNS):
        s.run(None, feeds)
    for _ in range(runs):
        s.run(None, feeds)
    file = s.end_profiling()
    events = json.loads(Path(file).read_text())
    Path(file).unlink(missing_ok=True)
    runs_events = [e for e in events if e.get("name") == "model_run"]
    cutoff = runs_events[WARMUP_RUNS]["ts"] if len(runs_events) > WARMUP_RUNS else 0
    totals = {"matrix": 0.0, "memory": 0.0, "scalar": 0.0}
    for event in events:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
            continue
        if event["ts"] < cutoff:
            continue
        args = event.get("args", {})
        elements = _elements(args.get("output_type_shape"))
        totals[classify(args.get("op_name", ""), elements)] += event["dur"] / 1000
    return {k: v / runs for k, v in totals.items()}


def _elements(shapes: Any) -> int | None:
    try:
        return int(sum(np.prod(next(iter(s.values()))) for s in shapes))
    except Exception:
        return None


def graph_stats(path: str | Path, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    """FLOPs of matrix nodes per run (shape inference with the sample's shapes), weight bytes, node count."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path))
    for inp in model.graph.input:
        if inp.name in feeds:
            dims = inp.type.tensor_type.shape.dim
            for dim, size in zip(dims, feeds[inp.name].shape, strict=False):
                dim.ClearField("dim_param")
                dim.dim_value = int(size)
    with contextlib.suppress(Exception):
        model = shape_inference.infer_shapes(model)
    shapes = {}
    for value in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in value.type.tensor_type.shape.dim]
        shapes[value.name] = dims
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    shapes.update(weights)
    flops = 0.0
    for node in model.graph.node:
        if node.op_type in ("MatMul", "Gemm") and len(node.input) >= 2:
            a, b = shapes.get(node.input[0], []), shapes.get(node.input[1], [])
            out = shapes.get(node.output[0], [])
            if a and b and out:
                flops += 2 * float(np.prod(out)) * a[-1]  # (M x K) @ (K x N): 2 M N K
        elif node.op_type == "Conv" and len(node.input) >= 2:
            w, out = shapes.get(node.input[1], []), shapes.get(node.output[0], [])
            if w and out:
                flops += 2 * float(np.prod(out)) * float(np.prod(w[1:]))
    # initializers are read whole on every run (matrix weights); tree ensembles, kept in attributes, are not:
    # a run walks one path per tree, so their size says nothing about the bytes a run needs
    weight_bytes = sum(int(np.prod(i.dims)) * 4 for i in model.graph.initializer)
    return {"flops": flops, "weight_bytes": weight_bytes, "nodes": len(model.graph.node)}


_MEMORY_PROBE = """
import json, sys, numpy as np, onnxruntime as ort
path, threads, feeds_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
options = ort.SessionOptions(); options.intra_op_num_threads = threads; options.log_severity_level = 3
options.add_session_config_entry("arena_extend_strategy", "kSameAsRequested")
if path != "-":
    feeds = dict(np.load(feeds_file, allow_pickle=True).items())
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    for _ in range(20):
        session.run(None, feeds)
# VmHWM, not ru_maxrss: exec keeps the parent's high-water mark in ru_maxrss, VmHWM belongs to this image
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"maxrss_mb": int(hwm.split()[1]) / 1024}))
"""


def peak_memory_mb(path: str | Path, feeds: dict[str, np.ndarray], threads: int) -> tuple[float, float]:
    """Peak RSS of a fresh process that loads and runs the model, and of one that only imports onnxruntime."""
    with tempfile.TemporaryDirectory() as tmp:
        feeds_file = Path(tmp) / "feeds.npz"
        np.savez(feeds_file, **feeds)
        results = []
        for target in (str(path), "-"):
            done = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, target, str(threads), str(feeds_file)],
                                  capture_output=True, text=True, timeout=300,
                                  env={**os.environ, "ORT_DISABLE_TELEMETRY": "1"})
            if done.returncode != 0:
                raise BenchError(f"memory probe failed: {done.stderr.strip()[-500:]}")
            results.append(json.loads(done.stdout)["maxrss_mb"])
    return results[0], results[1]


def measure(path: str | Path, feeds: dict[str, np.ndarray], thread_counts: list[int], seconds: float,
            host: dict[str, Any]) -> HostMeasurement:
    latencies = {t: latency(path, feeds, t, seconds) for t in sorted(set([1, *thread_counts]))}
    stats = graph_stats(path, feeds)
    peak, baseline = peak_memory_mb(path, feeds, max(thread_counts))
    import onnx

    from .costs import onnx_work

    return HostMeasurement(
        work=onnx_work(onnx.load(str(path))),
        latency_ms=latencies, class_ms=node_profile(path, feeds), nodes=stats["nodes"], flops=stats["flops"],
        weight_bytes=stats["weight_bytes"], peak_rss_mb=round(peak, 1), baseline_rss_mb=round(baseline, 1),
        host=host,
    )
