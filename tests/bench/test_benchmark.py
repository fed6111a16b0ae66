"""The benchmark end to end: catalog, calibration, host measurement, prediction, container limits, int8."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import edgebench as eb
from edgebench.bench import calibration as calibration_module
from edgebench.profiles import load_profile

from ..helpers import Watch, small_cnn


@pytest.fixture(scope="session")
def calibration():
    """The real host calibration (7-zip, memcpy, onnxruntime), cached under ~/.cache/edgebench."""
    return calibration_module.calibrate()


@pytest.fixture
def bench_store(store, digits, digits_rf, tmp_path):
    from sklearn.neural_network import MLPClassifier

    x, y = digits
    eb.export_model(digits_rf, x[:20], "digits-rf", store=store)
    eb.export_model(MLPClassifier(hidden_layer_sizes=(64,), max_iter=50, random_state=0).fit(x, y), x[:20],
                    "digits-mlp", store=store)
    eb.import_onnx(small_cnn(tmp_path / "cnn.onnx"), np.random.default_rng(0).normal(size=(2, 1, 28, 28)),
                   "small-cnn", store=store)
    return store


def test_catalog_has_every_reference_device_with_sources():
    names = {p.name for p in eb.list_profiles()}
    assert {"rpi3b-plus", "rpi4-1gb", "rpi4-4gb", "rpi5-16gb", "jetson-nano", "jetson-orin-nano",
            "coral-dev-board", "beaglebone-ai64", "intel-n100", "rk3588"} <= names
    for profile in eb.list_profiles():
        assert all(f.source for f in profile.figures.values()), profile.name
    assert "dram_bandwidth_gbps" in eb.load_profile("rpi4-1gb").unverified


def test_a_profile_extends_another():
    child, parent = eb.load_profile("rpi4-4gb"), eb.load_profile("rpi4-1gb")
    assert child.extends == "rpi4-1gb" and child.cores == parent.cores
    assert child.value("memcpy_mbps") == parent.value("memcpy_mbps")
    assert child.usable_ram_mb > 3 * parent.usable_ram_mb


def test_unknown_device_lists_the_closest_names():
    with pytest.raises(eb.ProfileError) as err:
        eb.load_profile("rpi4-2gb")
    message = str(err.value)
    assert message.startswith("unknown device 'rpi4-2gb'; did you mean ")
    suggestions = message.split("did you mean ")[1].split("?")[0].split(", ")
    assert {"rpi4-1gb", "rpi4-4gb"} <= set(suggestions)
    assert "Known devices: beaglebone-ai64" in message


def test_user_profile_on_the_search_path_and_its_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_PROFILES", str(tmp_path))
    (tmp_path / "plant-gw.yaml").write_text(
        "name: plant-gw\nextends: rpi4-1gb\ntitle: Plant gateway\nram_mb: {value: 1900, source: our datasheet}\n")
    assert eb.load_profile("plant-gw").usable_ram_mb == 1750
    (tmp_path / "broken.yaml").write_text("name: broken\nextends: rpi4-1gb\ncores: {value: four, source: x}\n")
    with pytest.raises(eb.ProfileError) as err:
        eb.load_profile("broken")
    assert str(tmp_path / "broken.yaml") in str(err.value) and "field 'cores' has value 'four'" in str(err.value)
    (tmp_path / "nameless.yaml").write_text("arch: arm64\n")
    with pytest.raises(eb.ProfileError, match="field 'name' is None, but the file is named nameless.yaml"):
        eb.load_profile("nameless")


def test_calibration_is_on_the_profiles_scale(calibration):
    assert calibration.memcpy_mbps > 500 and calibration.sevenzip_single_mips > 500
    assert 0 < calibration.ort_overhead_us < 1000 and calibration.matmul_gflops_1t > 1
    host = eb.load_profile("host")
    assert host.measured and host.cores == calibration.cores
    assert host.peak_gflops_core >= calibration.matmul_gflops_1t * 0.5


def test_corrupt_calibration_cache_is_measured_again(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(calibration_module, "sevenzip_single_mips", lambda: 1234.0)  # skip the 40 s 7-zip run
    path = calibration_module.cache_path()
    path.parent.mkdir(parents=True)
    path.write_text("{ not json")
    fresh = calibration_module.calibrate()
    assert fresh.sevenzip_single_mips == 1234.0
    assert "was unreadable" in fresh.notes[0]
    assert json.loads(path.read_text())["memcpy_mbps"] == fresh.memcpy_mbps


def test_benchmark_predicts_every_device_and_records_the_run(bench_store, calibration):
    report = eb.benchmark("digits-rf", ["rpi4-1gb", "jetson-orin-nano", "host"], eb.SLO(p99_ms=20, ram_mb=512),
                          seconds=0.3, store=bench_store)
    assert report.model == "digits-rf:1" and report.passed
    host = report.measured.latency_ms[1]
    rpi4, orin, here = (report.device(n) for n in ("rpi4-1gb", "jetson-orin-nano", "host"))
    assert rpi4.predicted_p50_ms > host.p50  # a Pi 4 is slower than this host on every class
    pi = load_profile("rpi4-1gb")
    assert rpi4.ratios["scalar"] == pytest.approx(calibration.sevenzip_single_mips / pi.value("sevenzip_single_mips"))
    # a forest is scalar work: its host time moves to the Pi by the ratio of the two single-thread 7-zip ratings
    assert rpi4.predicted_p50_ms == pytest.approx(host.p50 * rpi4.ratios["scalar"], rel=0.2)
    error = report.method_error
    assert rpi4.interval_p99_ms == pytest.approx((rpi4.predicted_p99_ms / (1 + error),
                                                  rpi4.predicted_p99_ms * (1 + error)))
    assert rpi4.threads == 4 and orin.threads == 6
    assert here.reasons == ["measured on this host, not predicted"]
    assert report.measured.class_ms["scalar"] > report.measured.class_ms["matrix"]  # trees are scalar work
    assert 50 < report.measured.peak_rss_mb < 700
    run = bench_store.runs("digits-rf", step="bench")[0]
    assert run.status == "passed" and run.outputs["devices"][0]["device"] == "rpi4-1gb"
    html = report._repr_html_()
    assert "rpi4-1gb" in html and "<svg" in html and "var(--jp-brand-color1" in html  # theme-aware chart
    assert "against the SLO p99 20 ms, RAM 512 MB" in html and "{" not in html.split("<table")[0]  # no dict repr
    assert json.loads(report.to_json())["passed"] is True


def test_matrix_models_are_matrix_bound(bench_store, calibration):
    cnn = eb.benchmark("small-cnn", ["rpi4-1gb"], seconds=0.3, store=bench_store)
    conv1, conv2, dense = 8 * 28 * 28 * 9 * 2, 16 * 14 * 14 * 8 * 9 * 2, 784 * 10 * 2
    assert cnn.measured.flops == conv1 + conv2 + dense and cnn.measured.class_ms["matrix"] > 0
    mlp = eb.benchmark("digits-mlp", ["rpi4-1gb"], seconds=0.3, store=bench_store)
    assert mlp.measured.flops == pytest.approx(2 * (64 * 64 + 64 * 10), rel=0.01)


def test_slo_failure_and_does_not_fit(bench_store, calibration, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_PROFILES", str(tmp_path))
    (tmp_path / "tiny.yaml").write_text("name: tiny\nextends: rpi3b-plus\nram_mb: {value: 60, source: test}\n"
                                        "os_reserved_mb: {value: 30, source: test}\n")
    report = eb.benchmark("small-cnn", ["rpi3b-plus", "tiny"], eb.SLO(p99_ms=0.001), seconds=0.3, store=bench_store)
    assert report.device("rpi3b-plus").verdict == "fail"
    tiny = report.device("tiny")
    assert tiny.verdict == "does not fit" and not tiny.fits and "30 MB usable" in tiny.reasons[-1]
    assert not report.passed and bench_store.runs("small-cnn", step="bench")[0].status == "failed"


def test_dynamic_shape_without_a_sample(bench_store, tmp_path):
    card = bench_store.get("small-cnn")
    blank = eb.ModelCard.from_dict({**card.to_dict(), "name": "no-golden", "golden": [],
                                    "inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 1, -1, -1]}]})
    bench_store.add_version(bench_store.model_path(card).read_bytes() + b"", blank)
    with pytest.raises(eb.BenchError) as err:
        eb.benchmark("no-golden", ["rpi4-1gb"], store=bench_store)
    expected = "input 'image' of no-golden:1 has a dynamic dimension (shape [-1, 1, -1, -1]) and no sample"
    assert expected in str(err.value)
    report = eb.benchmark("no-golden", ["rpi4-1gb"], sample={"image": np.zeros((1, 1, 28, 28), np.float32)},
                          seconds=0.2, store=bench_store)
    assert report.measured.flops > 0


def test_bad_arguments(bench_store):
    with pytest.raises(eb.ProfileError, match="unknown device 'pi'"):
        eb.benchmark("digits-rf", ["pi"], store=bench_store)
    with pytest.raises(eb.InvalidInputError, match="give at least one device"):
        eb.benchmark("digits-rf", [], store=bench_store)
    with pytest.raises(eb.InvalidInputError, match="slo must be an edgebench.SLO"):
        eb.benchmark("digits-rf", slo={"p99_ms": 3}, store=bench_store)
    with pytest.raises(eb.ModelNotFoundError):
        eb.benchmark("ghost", store=bench_store)
    for seconds in (float("inf"), float("nan"), 0, "2", True):
        with pytest.raises(eb.InvalidInputError, match=f"seconds must be a finite number > 0, got {seconds!r}"):
            eb.benchmark("digits-rf", seconds=seconds, store=bench_store)


def test_int8_variant_is_stored_with_parity_and_benched_beside(bench_store, calibration):
    float_report, int8_report = eb.benchmark("digits-mlp", ["rpi4-1gb"], int8="dynamic", seconds=0.3,
                                             store=bench_store)
    assert float_report.model == "digits-mlp:1" and float_report.variant_of is None
    assert int8_report.variant_of == "digits-mlp:1" and int8_report.model == "digits-mlp-int8:1"
    card = bench_store.get("digits-mlp-int8")
    assert card.metadata["quantized_from"] == "digits-mlp:1" and card.parity is not None
    assert card.parity.outputs[0].name == "label" and card.parity.label_agreement >= 0.8
    assert card.size_bytes < bench_store.get("digits-mlp").size_bytes


def test_int8_static_with_calibration_rows(bench_store, calibration, digits):
    x = digits[0][:40].astype(np.float32)
    reports = eb.benchmark("digits-mlp", ["rpi4-1gb"], int8="static", sample={"X": x[:1]}, seconds=0.2,
                           store=bench_store)
    assert reports[1].variant_of == "digits-mlp:1"
    assert bench_store.get("digits-mlp-int8").metadata["method"] == "static"


def test_int8_of_a_tree_model_says_it_does_not_apply(bench_store):
    with pytest.raises(eb.BenchError, match="has no matrix operators .* int8 quantization does not apply"):
        eb.benchmark("digits-rf", ["rpi4-1gb"], int8="dynamic", seconds=0.2, store=bench_store)


@pytest.mark.docker
def test_container_mode_enforces_ram_and_cores_and_reports_oom(bench_store, engine, calibration, tmp_path,
                                                               monkeypatch):
    monkeypatch.setenv("EDGEBENCH_PROFILES", str(tmp_path))
    (tmp_path / "starved.yaml").write_text("name: starved\nextends: intel-n100\nram_mb: {value: 90, source: test}\n"
                                           "os_reserved_mb: {value: 60, source: test}\n")
    with Watch(engine, "org.edgebench.bench") as watch:
        report = eb.benchmark("digits-rf", ["intel-n100", "starved"], in_container=True, seconds=1,
                              store=bench_store, client=engine)
    n100 = report.device("intel-n100")
    cores = min(4, len(os.sched_getaffinity(0)))
    usable = round(n100.usable_ram_mb)
    assert watch.seen["intel-n100"] == {
        "uid": 65532, "no_new_privs": True, "capabilities": 0, "cpus": f"0-{cores - 1}" if cores > 1 else "0",
        "memory": int(n100.usable_ram_mb * 2**20), "memory_and_swap": int(n100.usable_ram_mb * 2**20),
        "root_read_only": True, "interfaces": ["lo"]}
    assert n100.container["status"] == "ok" and n100.container["memory_mb"] == usable
    assert n100.container["threads"] == cores and n100.container["emulated"] is False
    assert 0 < n100.container["peak_memory_mb"] < usable and n100.container["p50"] > 0
    starved = report.device("starved")
    assert starved.container["status"] == "oom" and starved.verdict == "does not fit"
    assert starved.reasons[-1] == "does not fit in 30 MB: killed for running out of memory"
    assert not engine.containers.list(all=True, filters={"label": "org.edgebench.bench"})


@pytest.mark.docker
def test_container_mode_for_an_arm64_board_checks_the_memory_fit_under_emulation(bench_store, engine, calibration):
    with Watch(engine, "org.edgebench.bench") as watch:
        report = eb.benchmark("digits-rf", ["rpi4-1gb"], in_container=True, seconds=1, store=bench_store,
                              client=engine)
    rpi4 = report.device("rpi4-1gb")
    baseline = rpi4.container["emulator_baseline_mb"]
    assert rpi4.container["emulated"] is True and 5 < baseline < 200
    assert watch.seen["rpi4-1gb"]["memory"] == pytest.approx(  # + QEMU, to the page
        int(rpi4.usable_ram_mb * 2**20) + int(baseline * 2**20), abs=4096)
    assert rpi4.container["status"] == "ok" and "p50" not in rpi4.container  # never a latency from QEMU
    assert baseline < rpi4.container["peak_memory_mb"] < 759 + baseline
    assert rpi4.reasons[-1].endswith(f"under emulation (QEMU and python3 idle: {baseline:.0f} MB of it)")
    assert engine.images.get("edgebench/digits-rf:1-arm64").attrs["Architecture"] == "arm64"


def test_cli_profiles_and_bench_exit_codes(bench_store, calibration):
    base = [sys.executable, "-m", "edgebench", "--home", str(bench_store.home)]
    listed = subprocess.run([*base, "profiles", "list"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "rpi4-1gb" in listed.stdout and "host" in listed.stdout
    shown = subprocess.run([*base, "profiles", "show", "rpi4-1gb"], capture_output=True, text=True, timeout=60)
    assert "sbc-bench 3OBF" in shown.stdout and "[unverified]" in shown.stdout
    ok = subprocess.run([*base, "bench", "digits-rf", "--device", "rpi4-1gb", "--slo-p99-ms", "50", "--seconds",
                         "0.2", "--json"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["devices"][0]["verdict"] == "pass"
    failing = subprocess.run([*base, "bench", "digits-rf", "--device", "rpi4-1gb", "--slo-p99-ms", "0.0001",
                              "--seconds", "0.2"], capture_output=True, text=True, timeout=300)
    assert failing.returncode == 1 and "SLO not met" in failing.stderr
    bad = subprocess.run([*base, "bench", "digits-rf", "--device", "rpi9"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 1 and "unknown device 'rpi9'" in bad.stderr


def test_peak_memory_is_the_model_process_own_not_inherited_from_this_one(bench_store):
    from edgebench.bench.measure import feeds_for, peak_memory_mb

    card = bench_store.get("digits-rf")
    ballast = np.ones(400 * 2**20 // 8)  # 400 MB in the parent: exec keeps it in ru_maxrss, not in VmHWM
    peak, baseline = peak_memory_mb(bench_store.model_path(card), feeds_for(card), 1)
    assert ballast.sum() > 0
    assert baseline < peak < 300
