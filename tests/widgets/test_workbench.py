"""The notebook panel: buttons drive the same steps, results and failures show in the panel."""

from __future__ import annotations

import pytest

import edgebench as eb


def test_from_an_estimator_export_then_bench(store, digits, digits_rf, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    bench = eb.Workbench(digits_rf, digits[0][:20], name="digits-rf", devices=("rpi4-1gb",), store=store)
    assert bench.buttons["export"].disabled is False and bench.buttons["bench"].disabled is True
    assert "not exported yet" in bench.title.value
    bench.buttons["export"].click()
    assert bench.ref == "digits-rf:1" and isinstance(bench.results["export"], eb.ModelCard)
    assert bench.buttons["bench"].disabled is False
    assert bench.buttons["build"].disabled is True and "DOCKER_HOST" in bench.buttons["build"].tooltip
    bench.p99.value = 50
    bench.buttons["bench"].click()
    report = bench.results["bench"]
    assert isinstance(report, eb.BenchReport) and report.devices[0].device == "rpi4-1gb"
    assert bench.status.value == "bench done" and bench.bar.value == bench.bar.max


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
