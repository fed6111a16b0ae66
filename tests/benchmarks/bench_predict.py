"""How good is the prediction? What can be checked on this host, measured side by side in one run:

0. *Cross-validation of the per-operator cost model* on the published ncnn latencies it was fitted on
   (tests/data/device-latency/): leave-one-model-out (absolute latency through this host's ncnn time and the
   device-to-host ratio; device-to-device ratios; rank correlation of models per board; coverage of the 80%
   interval, itself from the other models' residuals) and leave-one-device-out (a board predicted from the other
   boards of its core type, scaled by clock), next to today's ratio of FP32 peaks (clock x FLOPs per cycle).
1. *From calibration alone*: this host's 1-thread p50 predicted without running the model, from its graph
   (FLOPs, activation bytes, nodes, tree-node visits) and the calibration's microbenchmarks, against the
   measured p50, for trees, MLPs and a small CNN.
2. *Thread scaling*: the method's step 3 (matrix time divided by the speed-up curve) applied to the 1-thread
   measurement, against the measured p50 at all host cores.
3. The predicted latency per device for the digits models and the small CNN.

Run from the repository root: .venv/bin/python -m tests.benchmarks.bench_predict
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from sklearn.datasets import load_digits
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.neural_network import MLPClassifier

import edgebench as eb
from edgebench.bench import cost_of
from edgebench.bench.calibration import calibrate, host_profile
from edgebench.bench.costs import onnx_work
from edgebench.bench.measure import feeds_for, graph_stats, latency, node_profile
from edgebench.core.bench import MATRIX_OPS, HostMeasurement, classify, predict
from tests.helpers import small_cnn

DEVICES = ["rpi3b-plus", "rpi4-1gb", "rpi5-16gb", "jetson-nano", "jetson-orin-nano", "rk3588", "intel-n100"]


def tree_visits(model: onnx.ModelProto, x: np.ndarray) -> int:
    """Nodes visited by one row across every tree of every TreeEnsemble node (leaves included)."""
    visits = 0
    for node in model.graph.node:
        if not node.op_type.startswith("TreeEnsemble"):
            continue
        a = {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}
        trees: dict[int, dict[int, int]] = {}
        for i, (t, n) in enumerate(zip(a["nodes_treeids"], a["nodes_nodeids"], strict=True)):
            trees.setdefault(t, {})[n] = i
        for tree in trees.values():
            index = tree[0]
            while True:
                visits += 1
                mode = a["nodes_modes"][index]
                mode = mode.decode() if isinstance(mode, bytes) else mode
                if mode == "LEAF":
                    break
                value = x.reshape(-1)[a["nodes_featureids"][index]]
                threshold = a["nodes_values"][index]
                go_true = value <= threshold if mode == "BRANCH_LEQ" else value < threshold
                index = tree[a["nodes_truenodeids"][index] if go_true else a["nodes_falsenodeids"][index]]
    return visits


def analytic_ms(path: Path, feeds: dict[str, np.ndarray], c: Any) -> float:
    """1-thread latency from the graph and the calibration only."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    stats = graph_stats(path, feeds)
    sizes = {}
    for value in [*model.graph.value_info, *model.graph.output]:
        dims = [d.dim_value or 1 for d in value.type.tensor_type.shape.dim]
        sizes[value.name] = int(np.prod(dims)) if dims else 1
    memory_bytes = 0
    for node in model.graph.node:
        elements = sum(sizes.get(o, 0) for o in node.output)
        if node.op_type not in MATRIX_OPS and classify(node.op_type, elements) == "memory":
            memory_bytes += elements * 4 * 2  # read and write
    visits = tree_visits(model, next(iter(feeds.values())))
    us = (c.ort_overhead_us + (len(model.graph.node) - 1) * c.ort_node_us
          + stats["flops"] / (c.matmul_gflops_1t * 1e3)
          + memory_bytes / c.memcpy_mbps
          + visits * c.tree_visit_ns / 1000)
    return us / 1000


EVALUATED = ("A53", "A57", "A72", "A73")  # FP32 ARM cores: the published rows are FP32 timings
PEAK_PROFILES = {"rpi3bplus-a53": "rpi3b-plus", "rpi4b-a72": "rpi4-1gb", "jetson-nano": "jetson-nano"}


def cross_validation() -> None:
    import csv
    import itertools
    import json

    from scipy.stats import spearmanr

    from edgebench.bench import costs

    data = Path(__file__).resolve().parents[1] / "data" / "device-latency"
    saved = json.loads((data / "features.json").read_text())
    work, host = saved["work"], saved["host"]["ms"]
    with (data / "ncnn-cpu.csv").open() as f:
        boards = costs.one_thread_latencies(list(csv.DictReader(f)), set(work))
    chosen = {b: v for b, v in boards.items() if v["core"] in EVALUATED}
    checks = {b: costs.lomo(work, v["ms"], host) for b, v in chosen.items()}

    def stats(errors: list[float]) -> str:
        e = np.abs(errors)
        return f"median {np.median(e):5.1%}, p90 {np.quantile(e, 0.9):5.1%} (n={len(e)})"

    print(f"0. cost model, leave-one-model-out on {len(chosen)} FP32 ARM boards ({', '.join(EVALUATED)}), "
          f"{len(work)} networks, this host's ncnn {saved['host']['ncnn']} on {saved['host']['cpu']}")
    absolute = [c["ratio"] / c["actual"] - 1 for b in checks.values() for c in b.values()]
    direct = [c["direct"] / c["actual"] - 1 for b in checks.values() for c in b.values()]
    print(f"   absolute latency via this host x ratio: {stats(absolute)}; fitted directly: {stats(direct)}")
    ratios, within, baseline, ours_on_baseline = [], [], [], []
    for b1, b2 in itertools.combinations(sorted(chosen), 2):
        for m in set(checks[b1]) & set(checks[b2]):
            actual = checks[b1][m]["actual"] / checks[b2][m]["actual"]
            error = (checks[b1][m]["direct"] / checks[b2][m]["direct"]) / actual - 1
            ratios.append(error)
            within.append(abs(error) <= 0.15)
            if b1 in PEAK_PROFILES and b2 in PEAK_PROFILES:
                p1, p2 = (eb.load_profile(PEAK_PROFILES[b]) for b in (b1, b2))
                baseline.append((p2.peak_gflops_core / p1.peak_gflops_core) / actual - 1)
                ours_on_baseline.append(error)
    print(f"   device-to-device ratios: {stats(ratios)}; within 15%: {np.mean(within):.0%} of (pair, model)")
    print(f"   on the boards with profiles (Pi 3B+, Pi 4, Jetson Nano): cost model {stats(ours_on_baseline)}; "
          f"today's FP32 peak ratio {stats(baseline)}")
    rhos, orders, covered, widths = [], [], [], []
    for found in checks.values():
        names = sorted(found)
        rhos.append(spearmanr([found[m]["ratio"] for m in names], [found[m]["actual"] for m in names])[0])
        pairs = list(itertools.combinations(names, 2))
        orders.append(np.mean([(found[a]["ratio"] < found[c]["ratio"]) == (found[a]["actual"] < found[c]["actual"])
                               for a, c in pairs]))
        for m in names:
            low, high = costs.interval([found[n]["actual"] / found[n]["ratio"] for n in names if n != m])
            covered.append(low <= found[m]["actual"] / found[m]["ratio"] <= high)
            widths.append(high)
    print(f"   ranking of models per board: Spearman median {np.median(rhos):.3f} (min {min(rhos):.3f}); pairs "
          f"ordered right: median {np.median(orders):.1%} (min {min(orders):.1%})")
    print(f"   80% intervals (split-conformal on the other models' residuals, median x/{np.median(widths):.2f}) cover "
          f"{np.mean(covered):.1%} of {len(covered)}")
    lodo = []
    for b, v in chosen.items():
        peers = [p for p, w in chosen.items() if p != b and w["core"] == v["core"] and w["clock_ghz"]]
        if not peers or not v["clock_ghz"]:
            continue
        k = np.median([np.array(costs.fit(work, chosen[p]["ms"])) * chosen[p]["clock_ghz"] / v["clock_ghz"]
                       for p in peers], axis=0)
        lodo += [costs.predict_ms(work[m], k) / ms - 1 for m, ms in v["ms"].items()]
    print(f"   leave-one-device-out (same core type, clock-scaled): {stats(lodo)}")


def main() -> None:
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    cross_validation()
    x, y = load_digits(return_X_y=True)
    c = calibrate()
    host = host_profile(c)
    cores = len(os.sched_getaffinity(0))
    print(f"host: {c.cpu_model}, {cores} cores; memcpy {c.memcpy_mbps:.0f} MB/s, 7-zip single "
          f"{c.sevenzip_single_mips:.0f} MIPS, MatMul 1 thread {c.matmul_gflops_1t:.1f} GFLOPS, onnxruntime run "
          f"{c.ort_overhead_us:.1f} us + {c.ort_node_us:.2f} us/node, tree visit {c.tree_visit_ns:.1f} ns")
    with tempfile.TemporaryDirectory() as tmp:
        store = eb.Store(Path(tmp) / "store")
        models = {
            "digits RandomForest(100)": RandomForestClassifier(n_estimators=100, random_state=0),
            "digits GradientBoosting(50)": GradientBoostingClassifier(n_estimators=50, random_state=0),
            "digits MLP(64)": MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=0),
            "digits MLP(512, 512)": MLPClassifier(hidden_layer_sizes=(512, 512), max_iter=30, random_state=0),
        }
        cards = {}
        for index, (label, model) in enumerate(models.items()):
            cards[label] = eb.export_model(model.fit(x, y), x[:50], f"model-{index}", store=store,
                                           allow_mismatch=True)
        for channels in (8, 32):
            path = small_cnn(Path(tmp) / f"cnn{channels}.onnx", channels=channels)
            cards[f"small CNN ({channels}/{2 * channels} ch, 28x28)"] = eb.import_onnx(
                path, np.random.default_rng(0).normal(size=(2, 1, 28, 28)), f"cnn-{channels}", store=store)

        print("\n1. this host at 1 thread from calibration alone, and 2. thread scaling, against measurement")
        print(f"{'model':<34} {'measured':>9} {'analytic':>9} {'error':>7} | {'meas ' + str(cores) + 't':>9} "
              f"{'method':>9} {'error':>7}")
        errors_a, errors_t = [], []
        measurements = {}
        for label, card in cards.items():
            path = store.model_path(card)
            feeds = feeds_for(card)
            one = latency(path, feeds, 1, seconds=2)
            many = latency(path, feeds, cores, seconds=2)
            analytic = analytic_ms(path, feeds, c)
            stats = graph_stats(path, feeds)
            measured = HostMeasurement(latency_ms={1: one, cores: many}, class_ms=node_profile(path, feeds),
                                       nodes=stats["nodes"], flops=stats["flops"],
                                       weight_bytes=stats["weight_bytes"], peak_rss_mb=0, baseline_rss_mb=0,
                                       host={}, work=onnx_work(onnx.load(str(path))))
            measurements[label] = measured
            scaled = predict(host.__class__(**{**host.__dict__, "measured": False}), host, measured, cores,
                             eb.SLO()).predicted_p50_ms
            ea, et = (analytic - one.p50) / one.p50, (scaled - many.p50) / many.p50
            errors_a.append(ea)
            errors_t.append(et)
            print(f"{label:<34} {one.p50:8.3f}ms {analytic:8.3f}ms {ea:+7.0%} | {many.p50:8.3f}ms {scaled:8.3f}ms "
                  f"{et:+7.0%}")
        print(f"{'mean absolute error':<34} {'':>9} {'':>9} {np.mean(np.abs(errors_a)):7.0%} | {'':>9} {'':>9} "
              f"{np.mean(np.abs(errors_t)):7.0%}")

        print("\n3. predicted p50 / p99 (ms) per device, all cores (cost model where the device has fitted costs and "
              "the model >= 10 MFLOP of matrix work; else the calibration ratios, +-50%)")
        print(f"{'model':<34} " + " ".join(f"{d:>17}" for d in DEVICES))
        for label, measured in measurements.items():
            cells = []
            for device in DEVICES:
                profile = eb.load_profile(device)
                r = predict(profile, host, measured, profile.cores, eb.SLO(), cost=cost_of(profile, host, measured))
                cells.append(f"{r.predicted_p50_ms:7.3f}/{r.predicted_p99_ms:7.3f}")
            print(f"{label:<34} " + " ".join(f"{cell:>17}" for cell in cells))


if __name__ == "__main__":
    main()
