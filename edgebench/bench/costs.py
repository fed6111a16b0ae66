"""The per-device, per-operator-class cost model (fitted by scripts/fit_device_costs.py on published ncnn latencies).

A network's work is split into operator classes (dense convolution, depthwise convolution, pointwise convolution /
GEMM / MatMul, element-wise and activations, pooling and reductions, data movement). Per board, latency at one
thread is fitted as a non-negative sum of cost per unit of work per class (relative least squares); the same fit
on this project's reference host gives the device-to-host ratio of any model from its mix of work, from one runtime
(ncnn on both sides). Predictions multiply the host's measured onnxruntime latency by that ratio.

FP16: on ARMv8.2 cores with FP16 arithmetic (Cortex-A55/A75/A76/A78) ncnn computes in FP16, onnxruntime in FP32.
NEON registers hold 8 FP16 lanes against 4 FP32 lanes at the same instruction throughput (Arm's Cortex-A76 and A78
Software Optimization Guides list FMLA with equal throughput for both), so those boards' costs of the convolution
and GEMM classes are doubled for FP32 predictions; element-wise, pooling and movement costs are kept (marked
unverified: no same-board FP32 row exists in the data).
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

CLASSES = ("conv3x3", "conv", "depthwise", "pointwise", "elementwise", "pooling", "movement")
#: work units: GFLOP for the matrix classes, million elements for the others
UNITS = {"conv3x3": 1e9, "conv": 1e9, "depthwise": 1e9, "pointwise": 1e9, "elementwise": 1e6, "pooling": 1e6,
         "movement": 1e6}
MATRIX = ("conv3x3", "conv", "depthwise", "pointwise")


def conv_class(kernel: int, stride: int, group: int, depthwise: bool) -> str:
    """Dense 3x3 stride-1 convolutions (the Winograd-friendly kind), other dense ones, depthwise, pointwise."""
    if depthwise:
        return "depthwise"
    if kernel == 1 and group == 1:
        return "pointwise"
    return "conv3x3" if kernel == 9 and stride == 1 else "conv"


FP16_CORES = ("A55", "A75", "A76", "A78")
FP16_TO_FP32 = 2.0
COVERAGE = 0.8
PATH = Path(__file__).resolve().parents[1] / "profiles" / "costs.json"


# -- fitting (development: scripts/fit_device_costs.py, tests/benchmarks/bench_predict.py) -----------------------


def one_thread_latencies(rows: list[dict[str, str]], models: set[str]) -> dict[str, dict[str, Any]]:
    """Per board: its CPU, FP16 or not, clock, and the minimum ms per model at one thread on its big cores."""
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["threads"] != "1" or row["model"] not in models:
            continue
        core = row["powersave"]
        board = found.setdefault(row["board"], {"cpu": row["cpu"], "ms": {}, "powersave": core})
        if core == "1" or (board["powersave"] == "2" and core == "0"):
            continue  # little cores, or a big-core run already chosen
        if core == "2" and board["powersave"] != "2":
            board["ms"], board["powersave"] = {}, "2"
        board["ms"][row["model"]] = float(row["min_ms"])
    for board in found.values():
        board["core"] = core_of(board["cpu"], board["powersave"])
        board["fp16"] = any(c in board["core"] for c in FP16_CORES)
        board["clock_ghz"] = clock_of(board["cpu"], board["powersave"])
    return {b: v for b, v in found.items() if len(v["ms"]) >= 8}


def core_of(cpu: str, powersave: str) -> str:
    cores = re.findall(r"(A\d\dAE|A\d\d|A5)\b", cpu.replace("Cortex-", "").replace("Quad Core ", ""))
    if not cores:
        return "x86" if not re.search(r"ARM|Cortex|A\d\d", cpu) else "arm"
    return cores[0]  # the first named cluster is the big one in every heading of the data


def clock_of(cpu: str, powersave: str) -> float | None:
    found = re.findall(r"(\d+(?:\.\d+)?)\s*GHz", cpu.replace(" ", " "), flags=re.I)
    return float(found[0]) if found else None


def fit(work: dict[str, dict[str, float]], ms: dict[str, float]) -> np.ndarray:
    """Non-negative cost per unit of work per class minimizing the relative error of ``ms``."""
    from scipy.optimize import nnls

    names = [m for m in ms if m in work]
    a = np.array([[work[m][c] for c in CLASSES] for m in names]) / np.array([ms[m] for m in names])[:, None]
    scale = a.max(axis=0)
    scale[scale == 0] = 1.0
    k, _ = nnls(a / scale, np.ones(len(names)))
    return np.asarray(k / scale)


def predict_ms(work: dict[str, float], k: np.ndarray) -> float:
    return float(np.dot([work[c] for c in CLASSES], k))


def lomo(work: dict[str, dict[str, float]], ms: dict[str, float], host: dict[str, float]
         ) -> dict[str, dict[str, float]]:
    """Leave-one-model-out: per model, the board's latency predicted from costs fitted without it, both absolute
    (``direct``) and as this host's measured ncnn latency times the device-to-host ratio (``ratio``)."""
    found = {}
    for m in ms:
        if m not in work or m not in host:
            continue
        rest = {n: v for n, v in ms.items() if n != m}
        k = fit(work, rest)
        kh = fit(work, {n: v for n, v in host.items() if n != m})
        direct = predict_ms(work[m], k)
        found[m] = {"actual": ms[m], "direct": direct,
                    "ratio": host[m] * direct / max(predict_ms(work[m], kh), 1e-9)}
    return found


def interval(ratios: list[float], coverage: float = COVERAGE) -> list[float]:
    """Factors (low, high) around a prediction from held-out actual/predicted ratios: the symmetric split-conformal
    quantile of their log, which covers a new model with probability >= ``coverage`` when models are exchangeable."""
    if not ratios:
        return [1.0, 1.0]
    errors = np.sort(np.abs(np.log(ratios)))
    rank = min(math.ceil((len(errors) + 1) * coverage), len(errors))
    q = float(errors[rank - 1])
    return [math.exp(-q), math.exp(q)]


def fit_all(work: dict[str, dict[str, float]], boards: dict[str, dict[str, Any]], host: dict[str, float]
            ) -> dict[str, Any]:
    """Costs of every board and of the reference host, each board's 80% interval from its leave-one-model-out
    residuals (ratio path), and the provenance."""
    out: dict[str, Any] = {
        "classes": list(CLASSES), "units": UNITS, "coverage": COVERAGE,
        "source": "Tencent/ncnn benchmark/README.md (benchncnn, minimum ms, one thread, big cores), fitted by "
                  "scripts/fit_device_costs.py on tests/data/device-latency/",
        "fp16_to_fp32": {"factor": FP16_TO_FP32, "classes": list(MATRIX), "unverified": True},
        "host": {"k": fit(work, host).tolist()}, "boards": {}}
    for name, board in sorted(boards.items()):
        checks = lomo(work, board["ms"], host)
        out["boards"][name] = {"cpu": board["cpu"], "core": board["core"], "fp16": board["fp16"],
                               "clock_ghz": board["clock_ghz"], "models": len(board["ms"]),
                               "k": fit(work, board["ms"]).tolist(),
                               "interval": interval([c["actual"] / c["ratio"] for c in checks.values()])}
    return out


# -- run time: the work of an ONNX model, and the ratio for a profile ------------------------------------------

ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
               "Clip", "Exp", "Log", "Sqrt", "Pow", "Erf", "Gelu", "BatchNormalization", "PRelu", "Elu", "Selu",
               "Neg", "Abs", "Max", "Min", "Where", "Cast", "Softplus", "Mish", "Dropout", "Identity"}
POOLING = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax",
           "Softmax", "LogSoftmax", "LayerNormalization", "ArgMax", "TopK", "LRN"}
MOVEMENT = {"Concat", "Reshape", "Transpose", "Pad", "Resize", "Upsample", "Flatten", "Split", "Slice", "Gather",
            "Squeeze", "Unsqueeze", "Expand", "Tile", "DepthToSpace", "SpaceToDepth"}


def onnx_work(model: Any) -> dict[str, float]:
    """Work per class of an ONNX model (``onnx.ModelProto``), from its graph with inferred shapes (batch 1)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes: dict[str, list[int]] = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in value.type.tensor_type.shape.dim]
        shapes[value.name] = dims or [1]
    for init in inferred.graph.initializer:
        shapes[init.name] = list(init.dims)
    total = dict.fromkeys(CLASSES, 0.0)
    for node in inferred.graph.node:
        out = shapes.get(node.output[0], [1]) if node.output else [1]
        elements = float(np.prod(out))
        op = node.op_type
        if op in ("Conv", "ConvTranspose"):
            weight = shapes.get(node.input[1], [1])
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            strides = next((list(a.ints) for a in node.attribute if a.name == "strides"), [1])
            kernel = int(np.prod(weight[2:])) if len(weight) > 2 else 1
            flops = 2 * float(np.prod(weight)) * float(np.prod(out[2:]) if len(out) > 2 else 1)
            total[conv_class(kernel, int(np.prod(strides)), group, group > 1 and weight[1] == 1)] += flops
        elif op in ("MatMul", "Gemm"):
            a = shapes.get(node.input[0], [1])
            k = a[-1] if op == "MatMul" or not any(x.name == "transA" and x.i for x in node.attribute) else a[0]
            total["pointwise"] += 2 * elements * k
        elif op in POOLING:
            total["pooling"] += float(np.prod(shapes.get(node.input[0], out)))
        elif op in MOVEMENT:
            total["movement"] += elements
        elif op in ELEMENTWISE:
            total["elementwise"] += elements
    return {c: v / UNITS[c] for c, v in total.items()}


@cache
def shipped() -> dict[str, Any]:
    """The fitted costs that ship with edgebench (profiles/costs.json)."""
    data: dict[str, Any] = json.loads(PATH.read_text())
    return data


def device_ratio(work: dict[str, float], board: str, clock_ghz: float | None = None
                 ) -> tuple[float, tuple[float, float]]:
    """How many times slower than the reference host ``board`` runs a model with this ``work`` (FP32), scaled to
    ``clock_ghz`` when the profile's clock differs from the board's; and the board's 80% interval factors."""
    data = shipped()
    entry = data["boards"][board]
    k = np.array(entry["k"], dtype=float)
    if entry["fp16"]:
        k = np.array([v * (FP16_TO_FP32 if c in MATRIX else 1.0) for c, v in zip(CLASSES, k, strict=True)])
    if clock_ghz and entry.get("clock_ghz"):
        k = k * entry["clock_ghz"] / clock_ghz
    host = predict_ms(work, np.array(data["host"]["k"]))
    low, high = entry["interval"]
    return predict_ms(work, k) / max(host, 1e-12), (low, high)
