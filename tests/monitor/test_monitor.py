"""Monitoring for real: the server's drift counters scraped by Debian's Prometheus, a bounded load of held-out
then shifted rows, and which features `monitor` flags; the counts a live /metrics gives; the reports it stores."""

from __future__ import annotations

import json
import time
import urllib.request

import numpy as np
import pytest

import edgebench as eb

from ..serve.conftest import start_server, stop_server
from .load import SHIFTED, readings, send

WINDOW = 6  # seconds; Prometheus scrapes every second


@pytest.fixture
def machines_server(machines_dir, tmp_path):
    process, port = start_server(machines_dir, "--spool-dir", str(tmp_path / "spool"))
    yield port
    stop_server(process)


def _phase(port, shifted, rng, seconds=2 * WINDOW + 2, rate=100):
    """Send ``rate`` rows a second for ``seconds``: enough for two full windows of the same kind."""
    return send(port, "machines", readings(int(seconds * rate), rng, shifted), batch=20, rows_per_second=rate)


def test_prometheus_scraping_the_server_flags_exactly_the_shifted_features(machines_store, machines_server,
                                                                          prometheus):
    url = prometheus([f"127.0.0.1:{machines_server}"])
    rng = np.random.default_rng(5)

    _phase(machines_server, False, rng)
    time.sleep(1.5)  # the last scrape
    calm = eb.monitor("machines", url, window=f"{WINDOW}s", windows=2, store=machines_store)
    assert all(w.judged for w in calm.windows), [w.reason for w in calm.windows]
    assert all(400 <= w.rows <= 800 for w in calm.windows), [w.rows for w in calm.windows]
    assert not calm.drift and calm.alarms == [], calm.summary()
    assert calm.summary() == "machines:1: no drift" or "(one window only" in calm.summary()

    _phase(machines_server, True, rng)
    time.sleep(1.5)
    report = eb.monitor("machines", url, window=f"{WINDOW}s", windows=2, store=machines_store)
    assert report.drift
    assert set(report.alarms) - {"confidence"} == SHIFTED, report.alarms
    last = {f.name: f for f in report.windows[-1].features}
    assert last["pressure"].out_of_range == pytest.approx(0.15, abs=0.06)
    assert last["machine"].missing == pytest.approx(0.20, abs=0.06)
    assert last["humidity"].out_of_range < 0.03 and not last["humidity"].drifted
    assert last["vibration"].p_adjusted < 1e-6 and last["vibration"].psi > report.thresholds["psi"]
    assert report.summary().startswith("machines:1: DRIFT in ")

    html = report._repr_html_()
    assert html.count("<svg") >= 4 and "vibration: reference (blue) and window (orange)" in html
    stored = machines_store.runs("machines", step="monitor")
    assert [r.status for r in stored[:2]] == ["drift", "passed"]
    assert stored[0].outputs["alarms"] == report.alarms and stored[0].inputs["source"] == url


def test_a_live_metrics_endpoint_gives_the_counts_since_start(machines_store, machines_server):
    send(machines_server, "machines", readings(300, np.random.default_rng(2)))
    with urllib.request.urlopen(f"http://127.0.0.1:{machines_server}/metrics") as answer:
        text = answer.read().decode()
    assert 'edgebench_monitor_rows_total{model="machines",version="1"} 300' in text
    assert 'edgebench_input_bin_total{model="machines",version="1",feature="machine",bin="0"}' in text
    assert "# TYPE edgebench_prediction_total counter" in text and "process_start_time_seconds" in text
    report = eb.monitor("machines:1", f"http://127.0.0.1:{machines_server}/metrics", store=machines_store)
    (window,) = report.windows
    assert window.judged and window.rows == 300
    assert sum(window.features[0].window) == pytest.approx(1.0, abs=1e-3)
    assert "an alarm needs 2 windows, this source gave 1" in report.note and not report.drift


def test_a_window_too_small_to_judge_is_said_and_never_an_alarm(machines_store, machines_server):
    send(machines_server, "machines", readings(12, np.random.default_rng(3), shifted=True), batch=4)
    report = eb.monitor("machines", f"http://127.0.0.1:{machines_server}/metrics", store=machines_store)
    assert not report.drift and not report.windows[0].judged
    assert report.summary() == ("machines:1: no verdict: 12 rows in the window: too few to judge (at least 65, "
                                "5 per bin)")
    assert "no verdict" in report._repr_html_()


def test_monitoring_switched_off_serves_no_drift_counters(machines_dir, machines_store):
    process, port = start_server(machines_dir, "--monitor", "off")
    try:
        send(port, "machines", readings(40, np.random.default_rng(4)))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as answer:
            text = answer.read().decode()
        assert "edgebench_requests_total" in text and "edgebench_input_bin_total" not in text
        with pytest.raises(eb.MonitorError, match=r"has no counts of machines:1 \(no edgebench_monitor_info for "
                                                  r"model 'machines'\): is this server edgebench's, with drift "
                                                  r"counters on\?"):
            eb.monitor("machines", f"http://127.0.0.1:{port}/metrics", store=machines_store)
    finally:
        stop_server(process)


def test_the_report_is_json_and_charts_use_the_notebook_theme(machines_store, machines_server):
    send(machines_server, "machines", readings(400, np.random.default_rng(6), shifted=True))
    report = eb.monitor("machines", f"http://127.0.0.1:{machines_server}/metrics", store=machines_store)
    data = json.loads(report.to_json())
    assert data["model"] == "machines:1" and data["windows"][0]["rows"] == 400
    assert {f["name"] for f in data["windows"][0]["features"]} == {
        "temperature", "vibration", "pressure", "humidity", "rpm", "machine"}
    drifted = [f["name"] for f in data["windows"][0]["features"] if f["drifted"]]
    assert set(drifted) == SHIFTED - {"classes"}, drifted
    html = report.html()
    assert "var(--jp-brand-color1" in html and "var(--jp-warn-color1" in html


@pytest.mark.docker
def test_prometheus_scrapes_the_image_and_its_spool_survives_the_stop(engine, built, image_store, digits,
                                                                      prometheus, tmp_path):
    import contextlib
    import uuid

    from edgebench.engine import run_limited
    from edgebench.image.tester import _wait_ready, free_port

    port = free_port()
    spool = tmp_path / "spool"  # the site's volume: the image's root stays read-only
    spool.mkdir()
    spool.chmod(0o777)
    container = run_limited(engine, built.id, memory=512 * 2**20, cpuset=None, network="host",
                            name=f"edgebench-test-{uuid.uuid4().hex[:12]}", labels={"org.edgebench.test": "monitor"},
                            environment={"EDGEBENCH_PORT": str(port), "EDGEBENCH_SPOOL_DIR": "/var/lib/edgebench/spool",
                                         "EDGEBENCH_SPOOL_SECONDS": "1"},
                            volumes={str(spool): {"bind": "/var/lib/edgebench/spool", "mode": "rw"}})
    try:
        ready, message = _wait_ready(container, port, 60, "512m")
        assert ready, message
        url = prometheus([f"127.0.0.1:{port}"])
        x = digits[0][1000:1300].astype(np.float32)
        sent = 0
        for start in range(0, len(x), 30):
            body = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [30, 64],
                                           "data": x[start:start + 30].reshape(-1).tolist()}]}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/digits-rf/infer", body,
                                             {"Content-Type": "application/json"})
            with urllib.request.urlopen(request) as answer:
                assert answer.status == 200
            sent += 30
        time.sleep(2.5)
        report = eb.monitor("digits-rf:1", url, window="30s", windows=1, store=image_store)
        # increase() extrapolates to the window's edges: ~1.5 scrape intervals more than the seconds sampled
        assert 300 <= report.windows[0].rows <= 300 * (4 + 1.5) / 4
        container.stop(timeout=20)  # SIGTERM: the server spools its last counts
        last = json.loads((spool / "spool.jsonl").read_text().splitlines()[-1])
        assert last["rows"] == sent == 300 and last["model"] == "digits-rf"
        assert last["sha256"] == image_store.get("digits-rf:1").sha256
        unwritable = run_limited(engine, built.id, memory=512 * 2**20, cpuset=None, network="host",
                                 name=f"edgebench-test-{uuid.uuid4().hex[:12]}",
                                 labels={"org.edgebench.test": "monitor"},
                                 environment={"EDGEBENCH_PORT": str(free_port()), "EDGEBENCH_SPOOL_DIR": "/tmp/spool"})
        assert unwritable.wait(timeout=60)["StatusCode"] == 1
        assert ("cannot write the drift spool in /tmp/spool: Read-only file system; mount a writable volume there"
                in unwritable.logs().decode())
        unwritable.remove(force=True)
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)
