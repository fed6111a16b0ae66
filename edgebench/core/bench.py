"""Benchmark results and the device prediction method (pure: numbers in, numbers out).

The method (see docs/architecture.md and the team's device reference):

1. the model is measured on the host (single-stream p50/p90/p99) and profiled per node;
2. each node's host time moves to the device by the ratio of a matching microbenchmark: *matrix* nodes
   (Conv, Gemm, MatMul...) by FP32 peak per core, *memory* nodes (element-wise, copies, pooling on large
   tensors) by one-core memcpy bandwidth, *scalar* nodes (tree ensembles, linear models, gathers, small ops)
   and the run overhead by one-thread 7-zip rating;
3. matrix time is divided by the device's speed-up at the thread count (Amdahl fitted to published CNN
   scaling), other classes are not;
4. the result never goes below the roofline bound (FLOPs / all-core peak; weight bytes / DRAM bandwidth for
   weights too large to stay in cache);
5. every prediction is a range: ``value / (1 + error)`` to ``value * (1 + error)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from html import escape
from typing import Any, Literal

from . import render
from .profiles import SLO, DeviceProfile
from .render import plural

NodeClass = Literal["matrix", "memory", "scalar"]

MATRIX_OPS = {
    "Conv", "ConvTranspose", "Gemm", "MatMul", "MatMulInteger", "QLinearConv", "QLinearMatMul", "FusedConv",
    "FusedGemm", "FusedMatMul", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "ConvInteger", "NhwcConv",
    "QGemm",
}
SCALAR_OPS = {
    "TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble", "LinearClassifier", "LinearRegressor",
    "SVMClassifier", "SVMRegressor", "Gather", "GatherElements", "GatherND", "ScatterElements", "ScatterND",
    "ArgMax", "ArgMin", "ZipMap", "LabelEncoder", "OneHotEncoder", "Normalizer", "Binarizer", "Imputer",
    "CategoryMapper", "ArrayFeatureExtractor", "TopK", "NonZero",
}
#: Element-wise and copy nodes smaller than this are dominated by dispatch, not bandwidth: scalar.
SMALL_TENSOR_ELEMENTS = 4096
#: Above this many FLOPs per run a model scales like a large conv net, below like a small mobile net.
LARGE_MODEL_FLOPS = 500e6
#: Weights up to this size stay in cache from one run to the next, so DRAM bandwidth does not bound them.
CACHE_BYTES = 4 * 2**20
#: The method's stated relative error, from tests/benchmarks/bench_predict.py on this kind of machine and the
#: published accuracy of FLOPs-based proxies without device data (docs/architecture.md).
METHOD_ERROR = 0.5


def classify(op: str, output_elements: int | None = None) -> NodeClass:
    if op in MATRIX_OPS:
        return "matrix"
    if op in SCALAR_OPS:
        return "scalar"
    if output_elements is not None and output_elements < SMALL_TENSOR_ELEMENTS:
        return "scalar"
    return "memory"


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p90: float
    p99: float
    runs: int


@dataclass(frozen=True)
class HostMeasurement:
    """What was measured on the host for one model."""

    latency_ms: dict[int, Percentiles]  # by thread count
    class_ms: dict[str, float]  # per-run time of matrix / memory / scalar nodes at 1 thread (profile)
    nodes: int
    flops: float
    weight_bytes: int
    peak_rss_mb: float
    baseline_rss_mb: float
    host: dict[str, Any]
    work: dict[str, float] = field(default_factory=dict)  # per operator class (edgebench.bench.costs)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["latency_ms"] = {str(k): asdict(v) for k, v in self.latency_ms.items()}
        return data


@dataclass(frozen=True)
class DeviceResult:
    """Prediction (and, in container mode, enforcement) for one device."""

    device: str
    title: str
    arch: str
    threads: int
    predicted_p50_ms: float
    predicted_p99_ms: float
    interval_p99_ms: tuple[float, float]
    ram_needed_mb: float
    usable_ram_mb: float
    fits: bool
    verdict: str  # pass | fail | uncertain | does not fit
    reasons: list[str]
    ratios: dict[str, float]
    unverified: list[str]
    container: dict[str, Any] | None = None
    measured_on_device: dict[str, Any] | None = None  # slot for a real board (not used yet)


@dataclass(frozen=True)
class BenchReport:
    model: str
    slo: dict[str, Any]
    measured: HostMeasurement
    devices: list[DeviceResult]
    method_error: float = METHOD_ERROR
    notes: list[str] = field(default_factory=list)
    variant_of: str | None = None

    @property
    def passed(self) -> bool:
        return all(d.verdict == "pass" for d in self.devices)

    def device(self, name: str) -> DeviceResult:
        return next(d for d in self.devices if d.device == name)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "slo": self.slo, "measured": self.measured.to_dict(),
                "devices": [asdict(d) for d in self.devices], "method_error": self.method_error,
                "notes": self.notes, "variant_of": self.variant_of, "passed": self.passed}

    def to_json(self) -> str:
        import json

        return json.dumps(self.to_dict(), indent=2)

    def summary(self) -> str:
        parts = [f"{d.device}: p99 {d.interval_p99_ms[0]:.2f}-{d.interval_p99_ms[1]:.2f} ms, "
                 f"RAM {d.ram_needed_mb:.0f}/{d.usable_ram_mb:.0f} MB, {d.verdict}" for d in self.devices]
        return f"{self.model}: " + "; ".join(parts)

    def plot(self, ax: Any = None) -> Any:
        """A bar chart of predicted p99 per device with the interval, and the SLO budget as a line."""
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(max(4, 1.1 * len(self.devices) + 2), 3))
        names = [d.device for d in self.devices]
        values = [d.predicted_p99_ms for d in self.devices]
        low = [v - d.interval_p99_ms[0] for v, d in zip(values, self.devices, strict=True)]
        high = [d.interval_p99_ms[1] - v for v, d in zip(values, self.devices, strict=True)]
        colors = ["#1a7f37" if d.verdict == "pass" else "#cf222e" if d.verdict in ("fail", "does not fit")
                  else "#9a6700" for d in self.devices]
        ax.bar(names, values, yerr=[low, high], color=colors, capsize=4)
        if self.slo.get("p99_ms"):
            ax.axhline(self.slo["p99_ms"], color="#555", linestyle="--", label=f"SLO p99 {self.slo['p99_ms']} ms")
            ax.legend()
        ax.set_ylabel("predicted p99 (ms)")
        ax.set_title(self.model)
        ax.tick_params(axis="x", rotation=30)
        return ax

    def slo_text(self) -> str:
        """What the verdicts were judged against, in words."""
        parts = [f"p99 {self.slo['p99_ms']:g} ms" if self.slo.get("p99_ms") else "",
                 f"RAM {self.slo['ram_mb']:g} MB" if self.slo.get("ram_mb") else ""]
        given = ", ".join(p for p in parts if p)
        return (f"against the SLO {given}" if given else
                "with no SLO given, so every device that fits passes (give eb.SLO(p99_ms=..., ram_mb=...))")

    def _repr_html_(self) -> str:
        rows = [
            (d.device, plural(d.threads, "thread"), f"{d.predicted_p50_ms:.3g}",
             f"{d.interval_p99_ms[0]:.3g} - {d.interval_p99_ms[1]:.3g}",
             f"{d.ram_needed_mb:.0f} / {d.usable_ram_mb:.0f}", d.verdict, "; ".join(d.reasons) or "-")
            for d in self.devices
        ]
        host = self.measured.latency_ms
        measured = ", ".join(f"{plural(t, 'thread')}: p50 {p.p50:.3g} ms, p99 {p.p99:.3g} ms"
                             for t, p in sorted(host.items()))
        chart = render.latency_chart([(d.device, d.interval_p99_ms[0], d.interval_p99_ms[1], d.predicted_p50_ms,
                                       d.verdict) for d in self.devices], self.slo.get("p99_ms"))
        return (
            f"<div><p><b>{escape(self.model)}</b>: measured on the host ({escape(measured)}); predicted per "
            f"device within ±{self.method_error:.0%} (the method's stated error), {escape(self.slo_text())}.</p>"
            + render.table(["device", "threads", "p50 ms", "p99 ms (interval)", "RAM MB (need / usable)",
                            "verdict", "why"], rows)
            + chart + "</div>"
        )


def predict(device: DeviceProfile, host: DeviceProfile, measured: HostMeasurement, threads: int,
            slo: SLO, error: float = METHOD_ERROR, cost: tuple[float, tuple[float, float], str] | None = None
            ) -> DeviceResult:
    """Move the host measurement to ``device`` at ``threads`` threads and judge it against ``slo``.

    ``cost`` (device-to-host ratio of this model at one thread, the 80% interval factors, where they come from)
    is the per-operator cost model's answer (``edgebench.bench.costs``) for convolution and GEMM networks; without
    it the host's matrix / memory / scalar times move by the calibration's ratios within ``error``."""
    ratios = {
        "matrix": host.peak_gflops_core / device.peak_gflops_core,
        "memory": host.value("memcpy_mbps") / device.value("memcpy_mbps"),
        "scalar": host.value("sevenzip_single_mips") / device.value("sevenzip_single_mips"),
    }
    if device.measured:  # this host: measured, not predicted
        at = measured.latency_ms[max(t for t in measured.latency_ms if t <= max(threads, 1))]
        return _judge(device, threads, at.p50, at.p99, (at.p99, at.p99), measured.peak_rss_mb, slo,
                      ["measured on this host, not predicted"], {"matrix": 1.0, "memory": 1.0, "scalar": 1.0})
    single = measured.latency_ms[1]
    if cost is not None:
        ratio, (low, high), source = cost
        speedup = device.speedup(threads, large=measured.flops > LARGE_MODEL_FLOPS)
        p50 = single.p50 * ratio / speedup
        tail = single.p99 / single.p50 if single.p50 > 0 else 1.0
        p99 = p50 * tail
        return _judge(device, threads, p50, p99, (p99 * low, p99 * high), measured.peak_rss_mb, slo,
                      [f"per-operator cost model ({source}), 80% interval"], {"cost_model": ratio})
    profiled = sum(measured.class_ms.values())
    scale = single.p50 / profiled if profiled > single.p50 else 1.0  # profiling can overstate short runs
    class_ms = {k: v * scale for k, v in measured.class_ms.items()}
    overhead = max(single.p50 - sum(class_ms.values()), 0.0)
    speedup = device.speedup(threads, large=measured.flops > LARGE_MODEL_FLOPS)
    p50 = (class_ms.get("matrix", 0.0) * ratios["matrix"] / speedup
           + class_ms.get("memory", 0.0) * ratios["memory"]
           + (class_ms.get("scalar", 0.0) + overhead) * ratios["scalar"])
    bandwidth_gbps = device.value("dram_bandwidth_gbps") if "dram_bandwidth_gbps" in device.figures else \
        device.value("memcpy_mbps") / 1000
    streamed = measured.weight_bytes if measured.weight_bytes > CACHE_BYTES else 0
    roofline_ms = max(measured.flops / (device.peak_gflops_core * device.cores * 1e9),
                      streamed / (bandwidth_gbps * 1e9)) * 1000
    reasons = []
    if roofline_ms > p50:
        reasons.append(f"raised to the roofline bound {roofline_ms:.3g} ms")
        p50 = roofline_ms
    tail = single.p99 / single.p50 if single.p50 > 0 else 1.0
    p99 = p50 * tail
    return _judge(device, threads, p50, p99, (p99 / (1 + error), p99 * (1 + error)), measured.peak_rss_mb, slo,
                  reasons, ratios)


def _judge(device: DeviceProfile, threads: int, p50: float, p99: float, interval: tuple[float, float],
           ram: float, slo: SLO, reasons: list[str], ratios: dict[str, float]) -> DeviceResult:
    """The verdict: does not fit (RAM), fail (over a budget even at the interval's low end), uncertain (the
    interval straddles the budget) or pass."""
    fits = ram <= device.usable_ram_mb
    verdict = "pass"
    if not fits:
        verdict = "does not fit"
        reasons.append(f"needs {ram:.0f} MB, {device.usable_ram_mb:.0f} MB usable")
    else:
        if slo.ram_mb is not None and ram > slo.ram_mb:
            verdict = "fail"
            reasons.append(f"RAM {ram:.0f} MB over the {slo.ram_mb:g} MB budget")
        if slo.p99_ms is not None:
            if interval[0] > slo.p99_ms:
                verdict = "fail"
                reasons.append(f"p99 over {slo.p99_ms:g} ms even at the low end")
            elif interval[1] > slo.p99_ms and verdict == "pass":
                verdict = "uncertain"
                reasons.append(f"the p99 interval straddles {slo.p99_ms:g} ms")
    return DeviceResult(
        device=device.name, title=device.title, arch=device.arch, threads=threads,
        predicted_p50_ms=p50, predicted_p99_ms=p99, interval_p99_ms=interval, ram_needed_mb=ram,
        usable_ram_mb=device.usable_ram_mb, fits=fits, verdict=verdict, reasons=reasons, ratios=ratios,
        unverified=device.unverified,
    )
