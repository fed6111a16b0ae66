"""The prediction method on hand-made measurements: ratios, thread scaling, roofline, interval, verdicts."""

from __future__ import annotations

import pytest

import edgebench as eb
from edgebench.core.bench import METHOD_ERROR, HostMeasurement, Percentiles, classify, predict
from edgebench.core.profiles import profile_from_dict

from .test_profiles import minimal


def profile(name, **figures):
    data = minimal(name=name)
    for key, value in figures.items():
        data[key] = {"value": value, "source": "test"}
    return profile_from_dict(data, f"{name}.yaml")


HOST = profile("host", cores=2, clock_ghz=3, flops_per_cycle=32, memcpy_mbps=10000, sevenzip_single_mips=4000,
               ram_mb=16000)
SLOW = profile("slow", cores=4, clock_ghz=1.5, flops_per_cycle=8, memcpy_mbps=2000, sevenzip_single_mips=1000,
               speedup_large=2.0, speedup_small=1.5, ram_mb=1000, os_reserved_mb=200)


def measurement(matrix=1.0, memory=0.5, scalar=0.25, overhead=0.25, flops=1e6, weight_bytes=1000, rss=100.0):
    p50 = matrix + memory + scalar + overhead
    return HostMeasurement(
        latency_ms={1: Percentiles(p50, p50 * 1.1, p50 * 1.5, 100), 2: Percentiles(p50 * 0.8, p50, p50 * 1.3, 100)},
        class_ms={"matrix": matrix, "memory": memory, "scalar": scalar}, nodes=10, flops=flops,
        weight_bytes=weight_bytes, peak_rss_mb=rss, baseline_rss_mb=50, host={},
    )


def test_each_class_moves_by_its_own_ratio():
    result = predict(SLOW, HOST, measurement(), threads=1, slo=eb.SLO())
    assert result.ratios == {"matrix": pytest.approx(8.0), "memory": 5.0, "scalar": 4.0}
    # 1.0 ms matrix x 8 + 0.5 memory x 5 + (0.25 scalar + 0.25 overhead) x 4
    assert result.predicted_p50_ms == pytest.approx(8 + 2.5 + 2)
    assert result.predicted_p99_ms == pytest.approx(12.5 * 1.5)
    low, high = result.interval_p99_ms
    assert low == pytest.approx(result.predicted_p99_ms / (1 + METHOD_ERROR))
    assert high == pytest.approx(result.predicted_p99_ms * (1 + METHOD_ERROR))


def test_threads_speed_up_matrix_time_only():
    one = predict(SLOW, HOST, measurement(), threads=1, slo=eb.SLO())
    four = predict(SLOW, HOST, measurement(), threads=4, slo=eb.SLO())
    assert one.predicted_p50_ms - four.predicted_p50_ms == pytest.approx(8 - 8 / 1.5)  # small model curve


def test_never_below_the_roofline():
    result = predict(SLOW, HOST, measurement(flops=2e9), threads=4, slo=eb.SLO())
    assert result.predicted_p50_ms == pytest.approx(2e9 / (12e9 * 4) * 1000)
    assert "roofline" in result.reasons[0]


def test_weights_beyond_the_cache_are_bound_by_bandwidth_cached_ones_are_not():
    big = predict(SLOW, HOST, measurement(weight_bytes=100 * 2**20), threads=4, slo=eb.SLO())
    assert big.predicted_p50_ms == pytest.approx(100 * 2**20 / 2e9 * 1000)  # memcpy 2000 MB/s, no DRAM figure
    small = predict(SLOW, HOST, measurement(weight_bytes=2**20), threads=4, slo=eb.SLO())
    assert not small.reasons


@pytest.mark.parametrize(
    ("slo", "verdict"),
    [(eb.SLO(p99_ms=100), "pass"), (eb.SLO(p99_ms=1), "fail"), (eb.SLO(p99_ms=20), "uncertain"),
     (eb.SLO(ram_mb=50), "fail")],
)
def test_verdicts_against_the_slo(slo, verdict):
    assert predict(SLOW, HOST, measurement(), threads=1, slo=slo).verdict == verdict


def test_model_larger_than_usable_ram_does_not_fit():
    result = predict(SLOW, HOST, measurement(rss=900.0), threads=1, slo=eb.SLO(p99_ms=1000))
    assert not result.fits and result.verdict == "does not fit"
    assert "needs 900 MB, 800 MB usable" in result.reasons[-1]


@pytest.mark.parametrize(
    ("op", "elements", "kind"),
    [("Conv", None, "matrix"), ("MatMul", 10, "matrix"), ("TreeEnsembleClassifier", None, "scalar"),
     ("Relu", 100_000, "memory"), ("Relu", 10, "scalar"), ("Add", None, "memory")],
)
def test_node_classes(op, elements, kind):
    assert classify(op, elements) == kind


def test_the_latency_chart_is_log_scale_so_small_bars_show_next_to_the_slo():
    import re

    from edgebench.core.render import latency_chart

    svg = latency_chart([("rpi4-1gb", 0.05, 0.12, 0.07, "pass"), ("big", 30.0, 45.0, 33.0, "fail")], 20.0)
    widths = [float(w) for w in re.findall(r'<rect x="[\d.]+" y="[\d.-]+" width="([\d.]+)"', svg)]
    xs = [float(v) for v in re.findall(r'<rect x="([\d.]+)"', svg)]
    slo = float(re.search(r'stroke-dasharray="4 3"', svg) and re.findall(r'<line x1="([\d.]+)"', svg)[-1])
    assert widths[0] > 20  # 0.05-0.12 ms spans a visible width on a log axis (on a linear 0-45 ms axis: < 1 px)
    assert xs[0] < slo < xs[1]  # the SLO sits between the fast and the slow device
    assert "var(--jp-error-color1" in svg and ">0.01<" in svg and ">100<" in svg


def test_no_slo_says_so_instead_of_a_dict():
    from edgebench.core.bench import BenchReport

    report = BenchReport.__new__(BenchReport)
    object.__setattr__(report, "slo", {"p99_ms": None, "ram_mb": None})
    assert report.slo_text().startswith("with no SLO given, so every device that fits passes")
