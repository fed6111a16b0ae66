"""Helpers shared by tests."""

from __future__ import annotations


def stop_process(process, timeout=20):
    """Terminate a child process we started, and kill it if it does not stop in ``timeout`` seconds."""
    import subprocess

    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def derived_image(engine, base, tag, *lines, files=None):
    """An image FROM ``base`` with extra Dockerfile lines: how the tests make broken images on purpose."""
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
    engine.images.build(fileobj=buffer, custom_context=True, tag=tag, rm=True)
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
