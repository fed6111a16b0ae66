"""Benchmark the image's own model inside its container: ``python3 -m edgebench_serve.bench``.

Prints one JSON line: single-stream latency percentiles (ms) over the golden sample, the thread count, and
the cgroup's memory high-water mark (``memory.max_usage_in_bytes`` on cgroup v1, ``memory.peak`` on v2).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from .model import Model
from .tensors import from_json_tensor


def cgroup_peak_mb() -> float | None:
    for path in ("/sys/fs/cgroup/memory/memory.max_usage_in_bytes", "/sys/fs/cgroup/memory.peak"):
        try:
            return int(Path(path).read_text().strip()) / 2**20
        except (OSError, ValueError):
            continue
    return None


def main() -> None:
    parser = argparse.ArgumentParser(prog="edgebench-serve-bench")
    parser.add_argument("--model-dir", default=os.environ.get("EDGEBENCH_MODEL_DIR", "/opt/edgebench/model"))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("EDGEBENCH_THREADS", "1")))
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    model = Model.from_dir(args.model_dir, threads=args.threads)
    card = json.loads((Path(args.model_dir) / "card.json").read_text())
    feeds = {t["name"]: from_json_tensor(t) for t in card["golden"][0]["inputs"]}
    for _ in range(args.warmup):
        model.run(feeds)
    times = []
    deadline = time.perf_counter() + args.seconds
    while time.perf_counter() < deadline or len(times) < 50:
        start = time.perf_counter()
        model.run(feeds)
        times.append((time.perf_counter() - start) * 1000)
    p50, p90, p99 = (float(v) for v in np.percentile(times, [50, 90, 99]))
    print(json.dumps({"p50": p50, "p90": p90, "p99": p99, "runs": len(times), "threads": args.threads,
                      "peak_memory_mb": cgroup_peak_mb()}), flush=True)


if __name__ == "__main__":
    main()
