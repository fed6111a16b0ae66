"""Host calibration: this machine's figures on the same definitions as the device profiles.

- FP32 peak per core: clock x FLOPs per cycle from the CPU's vector flags (the profiles' definition);
- memcpy bandwidth on one core (bytes copied per second, tinymembench's definition), with numpy;
- 7-zip single-thread rating (``7zz b -mmt1``, the same tool sbc-bench runs on the boards);
- onnxruntime's per-run overhead (an Identity model) and per-node cost (a chain of small Relu nodes), the
  time of one tree-node visit (a synthetic TreeEnsembleClassifier), measured single-thread MatMul GFLOPS and
  thread speed-ups (for the host profile and the validation benchmark).

The result is cached under ``~/.cache/edgebench/calibration``, keyed by CPU model, core count and library
versions, re-measured when older than 30 days or unreadable.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import config
from ..core.errors import BenchError
from ..core.images import arch_name
from ..core.profiles import DeviceProfile, Figure
from ..fsutil import atomic_writer
from ..ortsession import session as open_session

CALIBRATION_VERSION = 2
MAX_AGE_S = 30 * 24 * 3600


@dataclass(frozen=True)
class HostCalibration:
    cpu_model: str
    arch: str
    cores: int
    clock_ghz: float
    flops_per_cycle: int
    ram_mb: float
    memcpy_mbps: float
    sevenzip_single_mips: float
    ort_overhead_us: float
    ort_node_us: float
    tree_visit_ns: float
    matmul_gflops_1t: float
    speedup_large: float
    speedup_small: float
    versions: dict[str, str]
    measured_at: float
    seconds: float
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def host_facts() -> dict[str, Any]:
    """CPU model, cores usable by this process, clock, vector flags, RAM, kernel, cgroup limits."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)$", cpuinfo, re.M)]
    flags = set((re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.M) or [None, ""])[1].split())
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    total = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
    cgroup_limit = None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(path).read_text().strip()
            if raw.isdigit() and int(raw) < 2**60:
                cgroup_limit = int(raw) / 2**20
        except OSError:
            pass
    arch = arch_name(platform.machine())
    vendor = (re.search(r"^vendor_id\s*:\s*(\S+)", cpuinfo, re.M) or [None, ""])[1]
    family = int((re.search(r"^cpu family\s*:\s*(\d+)", cpuinfo, re.M) or [None, "0"])[1])
    fpc = flops_per_cycle(arch, vendor, family, flags)
    ram = (total and int(total[1]) / 1024) or 0.0
    return {
        "cpu_model": model[1].strip() if model else platform.processor() or platform.machine(),
        "arch": arch,
        "cores": len(os.sched_getaffinity(0)),
        "clock_ghz": round(max(mhz) / 1000, 3) if mhz else 2.0,
        "flops_per_cycle": fpc,
        "ram_mb": min(ram, cgroup_limit) if cgroup_limit else ram,
        "cgroup_memory_mb": cgroup_limit,
        "kernel": platform.release(),
    }


def flops_per_cycle(arch: str, vendor: str, family: int, flags: set[str]) -> int:
    """FP32 FLOPs per cycle per core: FMA pipes x FP32 lanes x 2. x86 by vector extension, with AMD's documented
    exception: Zen 4 (family 25 with AVX-512) runs 512-bit instructions as two halves on 256-bit datapaths
    (AMD Software Optimization Guide for the Zen 4 microarchitecture, pub. 57647), so AVX-512 gives it 32, not 64;
    Zen 5 (family 26) has full 512-bit datapaths (pub. 58455). Intel parts with one AVX-512 FMA unit also peak at
    32; /proc/cpuinfo cannot tell them apart, so 64 stands for Intel AVX-512 (unverified per part). arm64 hosts:
    two 128-bit FMA pipes (Neoverse N1/V1 class), 16."""
    if arch == "arm64":
        return 16
    if "avx512f" in flags:
        return 32 if vendor == "AuthenticAMD" and family == 25 else 64
    if "avx2" in flags and "fma" in flags:
        return 32
    return 16 if "avx" in flags else 8


def _versions() -> dict[str, str]:
    return {d: importlib.metadata.version(d) for d in ("onnxruntime", "numpy")}


def cache_path(facts: dict[str, Any] | None = None) -> Path:
    facts = facts or host_facts()
    key = json.dumps([CALIBRATION_VERSION, facts["cpu_model"], facts["cores"], _versions()])
    return config.cache_dir() / "calibration" / (hashlib.sha256(key.encode()).hexdigest()[:16] + ".json")


def calibrate(force: bool = False) -> HostCalibration:
    """The host calibration, from the cache when it is fresh and readable, else measured (about a minute)."""
    facts = host_facts()
    path = cache_path(facts)
    notes = []
    if path.exists() and not force:
        try:
            cached = HostCalibration(**json.loads(path.read_text()))
            if time.time() - cached.measured_at < MAX_AGE_S:  # FLOPs per cycle is a fact, not a measurement
                return replace(cached, flops_per_cycle=facts["flops_per_cycle"])
            notes.append("the cached calibration was older than 30 days: re-measured")
        except (ValueError, TypeError) as exc:
            notes.append(f"the cached calibration at {path} was unreadable ({type(exc).__name__}): re-measured")
    try:  # before a minute of measuring, not after
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot keep the host calibration in {path.parent}: {exc.strerror or exc}; set "
                         "EDGEBENCH_CACHE to a writable folder", path=str(path.parent)) from None
    start = time.perf_counter()
    single = sevenzip_single_mips()
    gflops_1 = _matmul_gflops(512, 1)
    gflops_n = _matmul_gflops(512, facts["cores"])
    small_1, small_n = _matmul_gflops(64, 1), _matmul_gflops(64, facts["cores"])
    result = HostCalibration(
        cpu_model=facts["cpu_model"], arch=facts["arch"], cores=facts["cores"], clock_ghz=facts["clock_ghz"],
        flops_per_cycle=facts["flops_per_cycle"], ram_mb=facts["ram_mb"], memcpy_mbps=memcpy_mbps(),
        sevenzip_single_mips=single, ort_overhead_us=ort_overhead_us(), ort_node_us=ort_node_us(),
        tree_visit_ns=tree_visit_ns(), matmul_gflops_1t=gflops_1,
        speedup_large=max(1.0, gflops_n / gflops_1), speedup_small=max(1.0, small_n / small_1),
        versions=_versions(), measured_at=time.time(), seconds=0.0, notes=notes,
    )
    result = HostCalibration(**{**result.to_dict(), "seconds": round(time.perf_counter() - start, 1)})
    with atomic_writer(path) as f:
        f.write(json.dumps(result.to_dict(), indent=2).encode())
    return result


def memcpy_mbps(size: int = 64 * 2**20, repeats: int = 10) -> float:
    """Bytes copied per second by one core over buffers far larger than the caches (best of ``repeats``)."""
    src = np.ones(size, dtype=np.uint8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return size / best / 1e6


def sevenzip_single_mips() -> float:
    """The total rating of ``7zz b -mmt1`` (or ``7z``), as sbc-bench reports "7-zip single"."""
    tool = shutil.which("7zz") or shutil.which("7z")
    if tool is None:
        raise BenchError(
            "calibration needs 7-zip to measure scalar speed on the same scale as the device profiles: "
            "install it (apt-get install 7zip)"
        )
    done = subprocess.run([tool, "b", "-mmt1"], capture_output=True, text=True, timeout=600)
    match = re.search(r"^Tot:\s+\d+\s+\d+\s+(\d+)", done.stdout, re.M)
    if done.returncode != 0 or match is None:
        raise BenchError(f"7-zip benchmark failed: {done.stderr.strip() or done.stdout[-300:]}")
    return float(match[1])


def _median_run_us(model: Any, feed: dict[str, np.ndarray], runs: int = 2000) -> float:
    session = open_session(model.SerializeToString(), 1)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return float(np.median(times[runs // 10:]) * 1e6)


def _chain(nodes: int) -> Any:
    from onnx import TensorProto, helper

    ops = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"]) for i in range(nodes)]
    graph = helper.make_graph(ops, "chain", [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info(f"t{nodes}", TensorProto.FLOAT, [1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def ort_overhead_us() -> float:
    """Median time of an onnxruntime run of a one-node model on one float: the per-run floor."""
    return _median_run_us(_chain(1), {"t0": np.zeros(1, np.float32)})


def ort_node_us(nodes: int = 64) -> float:
    """Extra time per node of a chain of tiny nodes: what dispatching one kernel costs."""
    feed = {"t0": np.zeros(1, np.float32)}
    return max(_median_run_us(_chain(nodes), feed) - _median_run_us(_chain(1), feed), 0.0) / (nodes - 1)


def tree_visit_ns(trees: int = 64, depth: int = 10) -> float:
    """Time per tree-node visit of onnxruntime's TreeEnsembleClassifier on complete random trees."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    per_tree = 2 ** (depth + 1) - 1
    ids = np.arange(per_tree)
    leaf = ids >= 2**depth - 1
    attrs: dict[str, Any] = {
        "nodes_treeids": np.repeat(np.arange(trees), per_tree).tolist(),
        "nodes_nodeids": np.tile(ids, trees).tolist(),
        "nodes_featureids": rng.integers(0, 16, trees * per_tree).tolist(),
        "nodes_values": rng.normal(size=trees * per_tree).astype(np.float32).tolist(),
        "nodes_modes": np.tile(np.where(leaf, "LEAF", "BRANCH_LEQ"), trees).tolist(),
        "nodes_truenodeids": np.tile(np.where(leaf, 0, 2 * ids + 1), trees).tolist(),
        "nodes_falsenodeids": np.tile(np.where(leaf, 0, 2 * ids + 2), trees).tolist(),
        "nodes_hitrates": [1.0] * (trees * per_tree),
        "nodes_missing_value_tracks_true": [0] * (trees * per_tree),
    }
    leaves = ids[leaf]
    attrs.update({
        "class_treeids": np.repeat(np.arange(trees), len(leaves)).tolist(),
        "class_nodeids": np.tile(leaves, trees).tolist(),
        "class_ids": rng.integers(0, 2, trees * len(leaves)).tolist(),
        "class_weights": [1.0] * (trees * len(leaves)),
        "classlabels_int64s": [0, 1],
    })
    node = helper.make_node("TreeEnsembleClassifier", ["x"], ["label", "scores"], domain="ai.onnx.ml", **attrs)
    graph = helper.make_graph([node], "trees", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("label", TensorProto.INT64, [1]),
                               helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    feed = {"x": rng.normal(size=(1, 16)).astype(np.float32)}
    run_us = _median_run_us(model, feed) - ort_overhead_us()
    return max(run_us, 0.0) * 1000 / (trees * (depth + 1))


def _matmul_gflops(n: int, threads: int, seconds: float = 0.5) -> float:
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(n, n)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "matmul",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])], initializer=[weight])
    session = open_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(),
                           threads)
    feed = {"x": np.ones((n, n), np.float32)}
    for _ in range(3):
        session.run(None, feed)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        session.run(None, feed)
        runs += 1
    return 2 * n**3 * runs / (time.perf_counter() - start) / 1e9


def host_profile(calibration: HostCalibration | None = None) -> DeviceProfile:
    """This machine as a device profile, every figure measured (source: edgebench calibration)."""
    c = calibration or calibrate()
    source = f"measured by edgebench calibration on {c.cpu_model}"
    # /proc/cpuinfo gives the current (often the base) clock; a one-thread MatMul faster than base clock x FLOPs per
    # cycle shows the core boosting, and the profiles' clocks are maximum clocks: take the higher of the two
    clock = max(c.clock_ghz, c.matmul_gflops_1t / c.flops_per_cycle)
    figures = {
        "cores": c.cores, "clock_ghz": clock, "flops_per_cycle": c.flops_per_cycle,
        "ram_mb": c.ram_mb, "os_reserved_mb": 1.0, "memcpy_mbps": c.memcpy_mbps,
        "sevenzip_single_mips": c.sevenzip_single_mips, "speedup_large": c.speedup_large,
        "speedup_small": c.speedup_small,
    }
    return DeviceProfile(
        name="host", title=f"this machine ({c.cpu_model})", arch=c.arch, cpu=c.cpu_model,
        figures={k: Figure(float(v), source) for k, v in figures.items()}, path="(measured)", measured=True,
    )
