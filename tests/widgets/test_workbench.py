"""The notebook panel: buttons drive the same steps, results and failures show in the panel."""

from __future__ import annotations

import pytest

import edgebench as eb


def test_from_an_estimator_export_then_bench(store, digits, digits_rf, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    bench = eb.Workbench(digits_rf, digits[0][:20], name="digits-rf", devices=("rpi4-1gb",), store=store)
    assert bench.buttons["export"].disabled is False and bench.buttons["bench"].disabled is True
    assert "not exported yet" in bench.title.value
    assert bench.bar.layout.visibility == "hidden"  # no empty progress bar before anything runs
    assert "Export first" in bench.why.value and "need a Docker Engine" in bench.why.value
    assert bench.destination.style.description_width == "8em"  # labels are not cut
    bench.buttons["export"].click()
    assert bench.ref == "digits-rf:1" and isinstance(bench.results["export"], eb.ModelCard)
    assert bench.buttons["bench"].disabled is False
    assert bench.buttons["build"].disabled is True and "DOCKER_HOST" in bench.buttons["build"].tooltip
    bench.p99.value = 50
    bench.buttons["bench"].click()
    report = bench.results["bench"]
    assert isinstance(report, eb.BenchReport) and report.devices[0].device == "rpi4-1gb"
    assert bench.status.value == "bench done" and bench.bar.value == bench.bar.max
    assert bench.bar.layout.visibility == "visible" and "Export first" not in bench.why.value


def test_for_a_stored_model_and_a_failing_step_shows_the_message(store, digits, digits_rf):
    eb.export_model(digits_rf, digits[0][:10], "digits-rf", store=store)
    bench = eb.Workbench("digits-rf", store=store, devices=())
    assert bench.buttons["export"].disabled is True and bench.title.value == "<b>digits-rf:1</b>"
    bench.devices.value = ()
    result = bench.run("bench")
    assert isinstance(result, eb.InvalidInputError)
    assert bench.status.value.startswith("bench failed: give at least one device")
    assert bench.bar.bar_style == "danger"


def test_unknown_model_name_fails_at_once(store):
    with pytest.raises(eb.ModelNotFoundError, match="no model named 'ghost'"):
        eb.Workbench("ghost", store=store)


def test_build_and_test_buttons_with_the_engine(store, engine, digits, digits_rf):
    eb.export_model(digits_rf, digits[0][:10], "digits-rf", store=store)
    bench = eb.Workbench("digits-rf", devices=("rpi4-1gb", "intel-n100"), store=store, client=engine)
    assert bench.buttons["build"].disabled is False and bench.buttons["test"].disabled is True
    bench.buttons["build"].click()
    try:  # a Pi (arm64) and an N100 (amd64): one image each, the arm64 one tested under emulation
        assert [i.platform for i in bench.results["build"]] == ["linux/amd64", "linux/arm64"]
        bench.buttons["test"].click()
        assert [(r.platform, r.passed, r.emulated) for r in bench.results["test"]] == [
            ("linux/amd64", True, False), ("linux/arm64", True, True)]
    finally:
        for image in bench.results["build"]:
            engine.images.remove(image.id, force=True)


def test_check_drift_shows_the_last_report_with_its_charts(store, digits, digits_rf, tmp_path):
    import numpy as np

    from ..monitor.load import spool_windows

    x = digits[0][np.random.default_rng(0).permutation(len(digits[0]))]
    card = eb.export_model(digits_rf, x[:200], "digits-rf", store=store, held_out=x[200:1000])
    shifted = x[1000:1600].copy()
    shifted[:, 21] += 9
    spool = spool_windows(card, tmp_path / "spool", {"X": shifted[:300]}, {"X": shifted[300:]})
    bench = eb.Workbench("digits-rf", store=store, source=str(tmp_path / "nowhere"))
    assert bench.drift.value == "<p>No drift report yet.</p>"
    failed = bench.run("monitor")
    assert isinstance(failed, eb.MonitorError) and "nowhere is not a spool" in bench.status.value
    bench.source.value, bench.window.value = str(spool), "1000s"
    bench.buttons["monitor"].click()
    report = bench.results["monitor"]
    assert report.alarms == ["X[21]"] and bench.status.value == "monitor done"
    assert "DRIFT in X[21]" in bench.drift.value and bench.drift.value.count("<svg") == 1
    again = eb.Workbench("digits-rf", store=store)  # a new panel shows the stored report
    assert again.drift.value == bench.drift.value


def test_show_is_the_dashboard_in_a_notebook_and_empty_sections_say_what_fills_them(store, digits, digits_rf,
                                                                                    monkeypatch):
    monkeypatch.delenv("EDGEBENCH_SITES", raising=False)
    eb.export_model(digits_rf, digits[0][:200], "digits-rf", store=store, held_out=digits[0][200:500])
    html = eb.show("digits-rf")._repr_html_()
    for hint in ("Not benched yet: eb.benchmark(", "No image yet: eb.build_image(", "Not published: eb.publish(",
                 "Sites show when EDGEBENCH_SITES", "No drift report yet: eb.monitor("):
        assert hint in html
    assert "needs opsets ai.onnx 17, ai.onnx.ml 1" in html and "100.00%" in html
    eb.benchmark("digits-rf", ["rpi4-1gb"], eb.SLO(p99_ms=20, ram_mb=256), seconds=0.3, store=store)
    html = eb.show("digits-rf:1", store=store)._repr_html_()
    assert "Against the SLO p99 20 ms, RAM 256 MB." in html and "<svg" in html and "rpi4-1gb" in html
    with pytest.raises(eb.ModelNotFoundError):
        eb.show("ghost")
