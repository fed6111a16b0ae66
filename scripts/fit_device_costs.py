"""Fit edgebench's per-device, per-operator-class cost model from published ncnn latencies.

Inputs (tests/data/device-latency/, with their provenance): ncnn-cpu.csv (benchncnn minimum latencies per board)
and models/*.param (the networks benchncnn ran). Steps:

1. work per network and operator class (edgebench.bench.costs.CLASSES): the layers of each .param with the blob
   shapes ncnn itself computes (the networks run once here with empty weights, as benchncnn does);
2. this host's own ncnn latency of each network at one thread (the reference host of the ratios);
3. per board (one-thread rows) and for this host, non-negative costs per class fitted on relative error;
4. leave-one-model-out residuals give each board's 80% interval.

Writes tests/data/device-latency/features.json (work and host timings, for the benchmark's cross-validation) and
edgebench/profiles/costs.json (what predictions use at run time). Development only: needs
`pip install ncnn==1.0.20261020`, never a run-time dependency.

Run from the repository root: .venv/bin/python scripts/fit_device_costs.py
"""

from __future__ import annotations

import csv
import json
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgebench.bench import costs  # noqa: E402

DATA = ROOT / "tests" / "data" / "device-latency"
#: benchncnn's input (w, h, c) per network (Tencent/ncnn benchmark/benchncnn.cpp)
INPUTS = {"alexnet": 227, "blazeface": 128, "mobilenet_ssd": 300, "squeezenet_ssd": 300, "mobilenet_yolo": 416,
          "mobilenetv2_yolov3": 352, "yolov4-tiny": 416, "nanodet_m": 320, "yolo-fastest-1.1": 320,
          "yolo-fastestv2": 352, "vision_transformer": 384, "FastestDet": 352}


def layers(path: Path) -> list[tuple[str, list[str], list[str], dict[int, str]]]:
    """(type, inputs, outputs, params) per layer of an ncnn .param file."""
    lines = path.read_text().split("\n")
    found = []
    for line in lines[2:]:
        parts = line.split()
        if not parts:
            continue
        kind, n_in, n_out = parts[0], int(parts[2]), int(parts[3])
        ins, outs = parts[4:4 + n_in], parts[4 + n_in:4 + n_in + n_out]
        params = {}
        for item in parts[4 + n_in + n_out:]:
            key, _, value = item.partition("=")
            if re.fullmatch(r"-?\d+", key) and int(key) >= 0:
                params[int(key)] = value
        found.append((kind, ins, outs, params))
    return found


def work(name: str) -> dict[str, float]:
    """Work per operator class of one network, from its layers and the shapes ncnn computes."""
    import ncnn

    path = DATA / "models" / f"{name}.param"
    net = ncnn.Net()
    net.opt.num_threads = 1
    net.opt.use_vulkan_compute = False
    net.load_param(str(path))
    net.load_model(ncnn.DataReaderFromEmpty())
    size = INPUTS.get(name, 224)
    image = ncnn.Mat(size, size, 3)
    image.fill(0.5)
    shapes: dict[str, tuple[int, int, int]] = {}

    def shape(blob: str) -> tuple[int, int, int]:
        if blob not in shapes:
            ex = net.create_extractor()
            ex.input(net.input_names()[0], image)
            _, mat = ex.extract(blob)
            shapes[blob] = (mat.w, mat.h * max(mat.d, 1), mat.c)
        return shapes[blob]

    total = dict.fromkeys(costs.CLASSES, 0.0)
    for kind, ins, outs, p in layers(path):
        if kind in ("Input", "MemoryData") or not outs:
            continue
        w, h, c = shape(outs[0])
        elements = w * h * c
        if kind in ("Convolution", "ConvolutionDepthWise", "Deconvolution", "DeconvolutionDepthWise"):
            weights = float(p.get(6, 0))
            kernel = int(p.get(1, 1)) * int(p.get(11, p.get(1, 1)))
            group = int(p.get(7, 1))
            flops = 2 * weights * (w * h if not kind.startswith("Deconv") else shape(ins[0])[0] * shape(ins[0])[1])
            stride = int(p.get(3, 1)) * int(p.get(13, p.get(3, 1)))
            total[costs.conv_class(kernel, stride, group, group > 1 and group == int(p.get(0, 0)))] += flops
        elif kind == "InnerProduct":
            rows = max(shape(ins[0])[1], 1) if shape(ins[0])[2] == 1 and shape(ins[0])[1] > 1 else 1
            total["pointwise"] += 2 * float(p.get(2, 0)) * rows
        elif kind == "Gemm":
            k, n = int(p.get(9, 0)), int(p.get(8, 0))
            total["pointwise"] += 2 * shape(ins[0])[1] * k * n
        elif kind == "MultiHeadAttention":
            length, embed = shape(ins[0])[1], int(p.get(0, 0))
            total["pointwise"] += 2 * 4 * length * float(p.get(2, 0)) + 4 * length * length * embed
        elif kind in ("Pooling", "Reduction", "Softmax", "LayerNorm", "LRN"):
            total["pooling"] += sum(a * b * d for a, b, d in (shape(i) for i in ins))
        elif kind in ("Concat", "Split", "Slice", "Reshape", "Permute", "Interp", "Padding", "Crop",
                      "ShuffleChannel", "Flatten"):
            total["movement"] += elements
        elif kind in ("DetectionOutput", "Yolov3DetectionOutput", "YoloDetectionOutput", "PriorBox", "Noop"):
            continue
        else:  # activations, BinaryOp, Eltwise, BatchNorm, ...
            total["elementwise"] += elements
    return {k: v / costs.UNITS[k] for k, v in total.items()}


def host_ms(name: str, loops: int = 12) -> float:
    """This host's minimum ncnn latency at one thread (benchncnn's statistic), empty weights."""
    import ncnn

    net = ncnn.Net()
    net.opt.num_threads = 1
    net.opt.use_vulkan_compute = False
    net.load_param(str(DATA / "models" / f"{name}.param"))
    net.load_model(ncnn.DataReaderFromEmpty())
    size = INPUTS.get(name, 224)
    image = ncnn.Mat(size, size, 3)
    image.fill(0.5)
    best = float("inf")
    for i in range(loops + 2):
        ex = net.create_extractor()
        start = time.perf_counter()
        ex.input(net.input_names()[0], image)
        ex.extract(net.output_names()[0])
        if i >= 2:
            best = min(best, (time.perf_counter() - start) * 1000)
    return best


def rows() -> list[dict[str, str]]:
    with (DATA / "ncnn-cpu.csv").open() as f:
        return list(csv.DictReader(f))


def main() -> None:
    import ncnn

    from edgebench.bench.calibration import calibrate, host_profile

    names = sorted(p.stem for p in (DATA / "models").glob("*.param"))
    if "--refit" in sys.argv:  # the saved work and host timings, fitted again (no ncnn run)
        saved = json.loads((DATA / "features.json").read_text())
        features, host = saved["work"], saved["host"]["ms"]
    else:
        features = {n: work(n) for n in names}
        host = {n: host_ms(n) for n in names}
    calibration = calibrate()
    (DATA / "features.json").write_text(json.dumps({
        "classes": list(costs.CLASSES), "units": costs.UNITS, "work": features,
        "host": {"cpu": calibration.cpu_model, "machine": platform.machine(), "ncnn": ncnn.__version__,
                 "ms": host}}, indent=1) + "\n")
    latencies = costs.one_thread_latencies(rows(), set(names))
    fitted = costs.fit_all(features, latencies, host)
    fitted["reference_host"] = {"cpu": calibration.cpu_model,
                                "peak_gflops_core": host_profile(calibration).peak_gflops_core,
                                "memcpy_mbps": calibration.memcpy_mbps,
                                "sevenzip_single_mips": calibration.sevenzip_single_mips, "ncnn": ncnn.__version__}
    path = ROOT / "edgebench" / "profiles" / "costs.json"
    path.write_text(json.dumps(fitted, indent=1) + "\n")
    print(f"wrote {path}: {len(fitted['boards'])} boards, {len(names)} networks")


if __name__ == "__main__":
    main()
