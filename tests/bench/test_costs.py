"""The per-operator cost model: work per class read from an ONNX graph, the shipped fit, and where predictions use
it (convolution and GEMM networks on devices with fitted costs) or keep the calibration path (trees, tabular)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgebench as eb
from edgebench.bench import costs


def graph(path):
    """A 1x16x32x32 input through a 3x3 conv, a depthwise 3x3, a pointwise 1x1, a 3x3 stride-2 conv, ReLU, a
    global pool, a Gemm: every class, with FLOPs that can be counted by hand."""
    rng = np.random.default_rng(0)

    def w(name, *shape):
        return numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),  # 32 x 16 x 3x3 over 32x32
        helper.make_node("Conv", ["a", "w2"], ["b"], pads=[1, 1, 1, 1], group=32),  # depthwise 32 x 1 x 3x3
        helper.make_node("Conv", ["b", "w3"], ["c"]),  # pointwise 64 x 32
        helper.make_node("Conv", ["c", "w4"], ["d"], pads=[1, 1, 1, 1], strides=[2, 2]),  # 64 x 64 x 3x3, 16x16 out
        helper.make_node("Relu", ["d"], ["e"]),
        helper.make_node("GlobalAveragePool", ["e"], ["f"]),
        helper.make_node("Flatten", ["f"], ["g"]),
        helper.make_node("Gemm", ["g", "w5"], ["y"]),
    ]
    model = helper.make_model(helper.make_graph(
        nodes, "classes", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        initializer=[w("w1", 32, 16, 3, 3), w("w2", 32, 1, 3, 3), w("w3", 64, 32, 1, 1), w("w4", 64, 64, 3, 3),
                     w("w5", 64, 10)]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return model


def test_work_per_class_is_counted_from_the_graph(tmp_path):
    work = costs.onnx_work(graph(tmp_path / "m.onnx"))
    giga, mega = 1e9, 1e6
    assert work["conv3x3"] == pytest.approx(2 * 32 * 16 * 9 * 32 * 32 / giga)
    assert work["depthwise"] == pytest.approx(2 * 32 * 9 * 32 * 32 / giga)
    assert work["pointwise"] == pytest.approx((2 * 64 * 32 * 32 * 32 + 2 * 10 * 64) / giga)
    assert work["conv"] == pytest.approx(2 * 64 * 64 * 9 * 16 * 16 / giga)  # 3x3 stride 2: not the Winograd kind
    assert work["elementwise"] == pytest.approx(64 * 16 * 16 / mega)
    assert work["pooling"] == pytest.approx(64 * 16 * 16 / mega)
    assert work["movement"] == pytest.approx(64 / mega)


def test_the_shipped_fit_has_its_provenance_and_sane_costs():
    data = costs.shipped()
    assert data["classes"] == list(costs.CLASSES) and "Tencent/ncnn benchmark/README.md" in data["source"]
    a53 = data["boards"]["rpi3bplus-a53"]
    assert not a53["fp16"] and data["boards"]["rpi5-a76"]["fp16"] and data["fp16_to_fp32"]["unverified"]
    work = {c: 0.0 for c in costs.CLASSES} | {"pointwise": 1.0}
    ratio_a53, (low, high) = costs.device_ratio(work, "rpi3bplus-a53")
    ratio_a72, _ = costs.device_ratio(work, "rpi4b-a72")
    assert ratio_a53 > ratio_a72 > 1 and low < 1 < high < 2  # an A53 is slower than an A72, both than the host
    assert a53["k"][costs.CLASSES.index("depthwise")] / data["host"]["k"][costs.CLASSES.index("depthwise")] > \
        a53["k"][costs.CLASSES.index("pointwise")] / data["host"]["k"][costs.CLASSES.index("pointwise")]
    faster, _ = costs.device_ratio(work, "rpi4b-a72", clock_ghz=2.0)  # a BeagleBone AI-64's A72 at 2.0 GHz
    assert faster == pytest.approx(ratio_a72 * 1.8 / 2.0)


def test_profiles_name_fitted_boards_and_a_wrong_name_is_refused(tmp_path, monkeypatch):
    assert eb.load_profile("rpi4-4gb").costs == "rpi4b-a72" and eb.load_profile("intel-n100").costs == ""
    text = Path(eb.load_profile("rpi4-1gb").path).read_text()
    (tmp_path / "my-board.yaml").write_text(text.replace("name: rpi4-1gb", "name: my-board")
                                            .replace("costs: rpi4b-a72", "costs: rpi9"))
    monkeypatch.setenv("EDGEBENCH_PROFILES", str(tmp_path))
    with pytest.raises(eb.ProfileError, match=r"my-board.yaml: field 'costs' names 'rpi9', which has no fitted "
                                              r"costs; known boards: .*rpi4b-a72"):
        eb.load_profile("my-board")


def test_cnns_use_the_cost_model_and_forests_keep_the_calibration_path(store, digits, digits_rf, tmp_path):
    cnn = eb.import_onnx(graph(tmp_path / "cnn.onnx") and str(tmp_path / "cnn.onnx"),
                         np.random.default_rng(0).normal(size=(1, 16, 32, 32)), "cnn", store=store)
    report = eb.benchmark(cnn.ref, ["rpi3b-plus", "rpi4-1gb", "intel-n100"], seconds=0.3, store=store)
    by = {d.device: d for d in report.devices}
    assert by["rpi3b-plus"].reasons == ["per-operator cost model (ncnn figures of rpi3bplus-a53), 80% interval"]
    assert by["rpi3b-plus"].predicted_p50_ms > by["rpi4-1gb"].predicted_p50_ms
    high = by["rpi4-1gb"].interval_p99_ms[1]
    assert high / by["rpi4-1gb"].predicted_p99_ms < 1.5  # the fitted interval, not the fixed +-50%
    assert "calibration ratios (x/÷1.5): no fitted costs for this device" in by["intel-n100"].reasons
    forest = eb.benchmark(eb.export_model(digits_rf, digits[0][:20], "rf", store=store).ref, ["rpi4-1gb"],
                          seconds=0.3, store=store)
    assert "calibration ratios (x/÷1.5): no published device figures cover this kind of model" in \
        forest.devices[0].reasons
    assert "conv3x3" in forest.measured.work and sum(forest.measured.work.values()) < 0.01


@pytest.mark.parametrize(("arch", "vendor", "family", "flags", "want"), [
    ("amd64", "AuthenticAMD", 25, {"avx2", "fma", "avx512f"}, 32),  # Zen 4: AVX-512 on 256-bit datapaths
    ("amd64", "AuthenticAMD", 26, {"avx2", "fma", "avx512f"}, 64),  # Zen 5: full 512-bit datapaths
    ("amd64", "AuthenticAMD", 25, {"avx2", "fma"}, 32),  # Zen 3
    ("amd64", "GenuineIntel", 6, {"avx2", "fma", "avx512f"}, 64),
    ("amd64", "GenuineIntel", 6, {"avx"}, 16),
    ("arm64", "", 0, set(), 16),
])
def test_fp32_flops_per_cycle_by_microarchitecture(arch, vendor, family, flags, want):
    from edgebench.bench.calibration import flops_per_cycle

    assert flops_per_cycle(arch, vendor, family, flags) == want
