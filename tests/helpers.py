"""Helpers shared by tests."""

from __future__ import annotations

import contextlib


def stop_process(process, timeout=20):
    """Terminate a child process we started, and kill it if it does not stop in ``timeout`` seconds."""
    import subprocess

    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def derived_image(engine, base, tag, *lines, files=None, platform=None):
    """An image FROM ``base`` with extra Dockerfile lines: how the tests make broken images on purpose
    (``platform="linux/arm64"`` for an arm64 base)."""
    import io
    import tarfile

    dockerfile = f"FROM {base}\n" + "\n".join(lines) + "\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in {"Dockerfile": dockerfile.encode(), **(files or {})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    engine.images.build(fileobj=buffer, custom_context=True, tag=tag, rm=True, platform=platform)
    return tag


def small_cnn(path, channels=8, size=28, classes=10, seed=0):
    """A small convolutional network as PyTorch would export it: two conv+relu+pool blocks and a classifier."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def weight(name, *shape):
        return numpy_helper.from_array((rng.normal(size=shape) * 0.1).astype(np.float32), name)

    c2 = channels * 2
    flat = c2 * (size // 4) * (size // 4)
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "small-cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, size, size])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", classes])],
        initializer=[weight("w1", channels, 1, 3, 3), weight("b1", channels), weight("w2", c2, channels, 3, 3),
                     weight("b2", c2), weight("w3", flat, classes), weight("b3", classes)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch")
    model.ir_version = 8
    onnx.save(model, path)
    return path


def kernel_view(container):
    """What the kernel enforces on a running container's main process, read from /proc and the cgroup files of
    this host (not from the engine's own account): uid, no-new-privileges, capabilities, CPUs, memory, swap,
    whether its root is mounted read-only, the network interfaces it sees."""
    from pathlib import Path

    container.reload()
    pid = container.attrs["State"]["Pid"]
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    root = next(line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
                if line.split()[4] == "/")
    groups = dict(line.split(":", 2)[1:] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines())
    if "memory" in groups:  # cgroup v1
        folder = Path("/sys/fs/cgroup/memory") / groups["memory"].lstrip("/")
        memory = int((folder / "memory.limit_in_bytes").read_text())
        swap_file = folder / "memory.memsw.limit_in_bytes"
        memory_and_swap = int(swap_file.read_text()) if swap_file.exists() else None
    else:  # cgroup v2
        folder = Path("/sys/fs/cgroup") / groups[""].lstrip("/")
        memory = int((folder / "memory.max").read_text())
        swap = (folder / "memory.swap.max").read_text().strip()
        memory_and_swap = memory + (0 if swap == "0" else 1 << 62)
    return {
        "uid": int(status["Uid"].split()[1]),  # effective uid
        "no_new_privs": status["NoNewPrivs"].strip() == "1",
        "capabilities": int(status["CapEff"], 16),
        "cpus": status["Cpus_allowed_list"].strip(),
        "memory": memory,
        "memory_and_swap": memory_and_swap,
        "root_read_only": "ro" in root[5].split(","),
        "interfaces": sorted(line.split(":")[0].strip()
                             for line in Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]),
    }


class Watch:
    """Look at every container carrying ``label`` while it runs (a background thread polling the engine): the
    kernel's view of each, by the label's value. For code that starts and removes its containers itself."""

    def __init__(self, engine, label):
        import threading

        self.engine, self.label, self.seen = engine, label, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self._stop.is_set():
            for container in self.engine.containers.list(filters={"label": self.label}):
                value = container.labels[self.label]
                if value not in self.seen:  # it may end between the listing and the look: then try again
                    with contextlib.suppress(OSError, KeyError, ValueError):
                        self.seen[value] = kernel_view(container)
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def require(module, why):
    """Import ``module`` for a test, or skip with ``why``; in CI (CI=true) a missing module fails instead."""
    import importlib

    import pytest

    from edgebench import config

    try:
        return importlib.import_module(module)
    except ImportError:
        if config.in_ci():
            pytest.fail(f"CI=true and {module} is missing: {why}")
        pytest.skip(f"{module} is not installed: {why}")


def slow_model(path, matmuls=6, rows=2048, seconds=None):
    """A model that takes a while per input row (each row is tiled to ``rows`` x 64 and pushed through
    ``matmuls`` 1024 x 1024 matrix products): how tests make a request stay in flight. Output: one value per row.

    With ``seconds``, ``rows`` is set by timing the model here at one thread so that a row takes about that long on
    this machine: a fixed size took 0.3 s on one host and 0.12 s on a faster one, too short for the tests' waits."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if seconds is not None:
        import time

        from edgebench.ortsession import session as ort_session

        session = ort_session(slow_model(path, matmuls, rows), threads=1)
        one_row = {"x": np.ones((1, 64), np.float32)}
        session.run(None, one_row)
        start = time.perf_counter()
        session.run(None, one_row)
        rows = max(64, round(rows * seconds / (time.perf_counter() - start)))

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array((rng.normal(size=(64, 1024)) * 0.05).astype(np.float32), "w0")]
    weights += [numpy_helper.from_array((rng.normal(size=(1024, 1024)) * 0.03).astype(np.float32), "w")]
    weights += [numpy_helper.from_array(np.array([1, rows, 1], dtype=np.int64), "repeats"),
                numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
                numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
                numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "axes")]
    nodes = [helper.make_node("Unsqueeze", ["x", "axis1"], ["x3"]),  # [N, 1, 64]
             helper.make_node("Tile", ["x3", "repeats"], ["tiled"]),  # [N, rows, 64]
             helper.make_node("MatMul", ["tiled", "w0"], ["h0"])]  # [N, rows, 1024]
    for i in range(matmuls):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "w"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"h{i + 1}"]))
    nodes.append(helper.make_node("ReduceMean", [f"h{matmuls}", "axes"], ["mean"], keepdims=1))  # [N, 1, 1]
    nodes.append(helper.make_node("Squeeze", ["mean", "axis2"], ["y"]))  # [N, 1]
    graph = helper.make_graph(
        nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])], initializer=weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="edgebench-tests")
    model.ir_version = 8
    onnx.save(model, path)
    return path


def tool(name, how):
    """The path of an outside program a test needs; missing, it skips with ``how`` (fails in CI)."""
    import shutil

    import pytest

    from edgebench import config

    found = shutil.which(name)
    if found is None:
        if config.in_ci():
            pytest.fail(f"CI=true and {name} is missing: {how}")
        pytest.skip(f"{name} is not installed: {how}")
    return found


def strict_crd_schema(schema):
    """A CRD's openAPIV3Schema made strict like ``kubectl --validate=strict``: every object that lists its
    properties refuses others, unless it preserves unknown fields or declares additionalProperties."""
    import copy

    def close(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)
        return node

    return close(copy.deepcopy(schema))


def fresh_registry(folder):
    """Debian's docker-registry on a free loopback port, storing under ``folder``: (process, "127.0.0.1:PORT").
    Stop it with stop_process."""
    import subprocess
    import time
    import urllib.error
    import urllib.request

    from edgebench.image.tester import free_port

    port = free_port()
    config = folder / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {folder}/data\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            break
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    return process, f"127.0.0.1:{port}"
