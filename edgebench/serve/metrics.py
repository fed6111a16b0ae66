"""Prometheus metrics in the text exposition format, without a client library."""

from __future__ import annotations

import bisect
import time
from collections import defaultdict

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.buckets = name, help_text, buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def render(self, labels: str) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        cumulative = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            cumulative += count
            lines.append(f'{self.name}_bucket{{{labels},le="{bound}"}} {cumulative}')
        lines.append(f'{self.name}_bucket{{{labels},le="+Inf"}} {self.n}')
        lines.append(f"{self.name}_sum{{{labels}}} {self.total}")
        lines.append(f"{self.name}_count{{{labels}}} {self.n}")
        return lines


class Metrics:
    """Request counts by outcome, latency histograms (queue, inference, total), batch sizes, load time."""

    def __init__(self, model: str, load_seconds: float, version: str = "1") -> None:
        self.labels = f'model="{model}",version="{version}"'
        self.started = time.time()
        self.requests: dict[str, int] = defaultdict(int)
        self.load_seconds = load_seconds
        self.queue = Histogram("edgebench_queue_seconds", "Time a request waited for a batch.", LATENCY_BUCKETS)
        self.inference = Histogram("edgebench_inference_seconds", "onnxruntime run time per batch.", LATENCY_BUCKETS)
        self.total = Histogram("edgebench_request_seconds", "Inference request time, parse to response.",
                               LATENCY_BUCKETS)
        self.batch = Histogram("edgebench_batch_size", "Rows per onnxruntime run.", BATCH_BUCKETS)

    def count(self, outcome: str) -> None:
        self.requests[outcome] += 1

    def render(self) -> str:
        lines = ["# HELP edgebench_requests_total Inference requests by outcome.",
                 "# TYPE edgebench_requests_total counter"]
        lines += [
            f'edgebench_requests_total{{{self.labels},outcome="{k}"}} {v}' for k, v in sorted(self.requests.items())
        ]
        lines += ["# HELP process_start_time_seconds Start time of the process since the Unix epoch, in seconds.",
                  "# TYPE process_start_time_seconds gauge", f"process_start_time_seconds {self.started:.3f}"]
        lines += ["# HELP edgebench_model_load_seconds Time to load the model.",
                  "# TYPE edgebench_model_load_seconds gauge",
                  f"edgebench_model_load_seconds{{{self.labels}}} {self.load_seconds}"]
        for histogram in (self.queue, self.inference, self.total, self.batch):
            lines += histogram.render(self.labels)
        return "\n".join(lines) + "\n"
