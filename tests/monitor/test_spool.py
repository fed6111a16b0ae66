"""Cut-off sites: the server spools its counts, a restart neither loses nor repeats any, `edgebench monitor
export` writes what a person carries back, and the hub reads it directly or backfills Prometheus with promtool."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import urllib.parse
import urllib.request

import numpy as np
import pytest

import edgebench as eb
from edgebench.monitor.sources import read_spool
from edgebench.serve.monitor import Monitor, bin_rows

from ..helpers import tool
from ..serve.conftest import start_server, stop_server
from .load import readings, send


def _cli(*args, home):
    return subprocess.run([sys.executable, "-m", "edgebench", "--home", str(home), *args], capture_output=True,
                          text=True, timeout=120)


def _as_served(cols):
    """The arrays the server bins: float32 columns [n, 1], text as str."""
    return {k: (v.astype(str) if v.dtype == object else v.astype(np.float32)).reshape(-1, 1) for k, v in cols.items()}


@pytest.fixture(scope="module")
def carried(machines_dir, machines_store, tmp_path_factory):
    """Two server runs on one spool (a restart between), exported with the CLI: (archive, rows sent, bins)."""
    folder = tmp_path_factory.mktemp("site")
    spool = folder / "spool"
    rng = np.random.default_rng(11)
    first, second = readings(500, rng), readings(300, rng, shifted=True)
    for cols in (first, second):
        process, port = start_server(machines_dir, "--spool-dir", str(spool), "--spool-seconds", "0.2")
        try:
            send(port, "machines", cols, batch=25)
        finally:
            stop_server(process)  # SIGTERM: the last counts reach the spool
    card = machines_store.get("machines:1")
    want = sum(bin_rows(card.monitoring, _as_served(c)) for c in (first, second))
    archive = folder / "plant-7-spool.tar"
    done = _cli("monitor", "export", "--spool", str(spool), "--out", str(archive), "--json",
                home=machines_store.home)
    assert done.returncode == 0, done.stderr
    return archive, 800, want, json.loads(done.stdout)


def test_a_restart_in_the_middle_loses_and_repeats_nothing(carried):
    archive, sent, want, made = carried
    assert made["rows"] == sent and made["model"] == "machines:1" and made["snapshots"] >= 2
    last = read_spool(archive)[-1]
    assert last["rows"] == sent
    assert np.array_equal(np.asarray(last["bins"]), want)  # exactly the rows sent, bin by bin
    assert last["features"][-1] == "machine"
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["openmetrics.txt", "spool.jsonl"]


def test_the_hub_reads_the_carried_spool_directly(carried, machines_store):
    archive, sent, _, _ = carried
    report = eb.monitor("machines", archive, window="1d", windows=1, store=machines_store)
    assert report.windows[0].rows == sent and report.windows[0].judged
    assert "vibration" in report.windows[0].drifted  # the second run's rows were shifted


def test_promtool_backfills_a_prometheus_from_the_export(carried, prometheus, tmp_path):
    promtool = tool("promtool", "scripts/services.sh installs Debian's prometheus (promtool comes with it)")
    archive, sent, want, _ = carried
    with tarfile.open(archive) as tar:
        tar.extract("openmetrics.txt", tmp_path, filter="data")
    data = tmp_path / "tsdb"
    done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(tmp_path / "openmetrics.txt"),
                           str(data)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    url = prometheus([], data=data)
    at = read_spool(archive)[-1]["time"]
    query = urllib.parse.urlencode({"query": 'edgebench_monitor_rows_total{model="machines"}', "time": at})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}") as answer:
        result = json.loads(answer.read())["data"]["result"]
    assert [float(r["value"][1]) for r in result] == [sent]
    query = urllib.parse.urlencode({"query": 'sum(edgebench_input_bin_total{model="machines",feature="machine"})',
                                    "time": at})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}") as answer:
        assert float(json.loads(answer.read())["data"]["result"][0]["value"][1]) == want[-1].sum() == sent


def test_the_spool_stays_under_its_cap_and_keeps_the_latest_counts(machines_store, tmp_path):
    card = machines_store.get("machines:1").to_dict()
    monitor = Monitor(card, str(tmp_path), spool_seconds=3600, spool_max_bytes=10_000)
    rng = np.random.default_rng(3)
    for _ in range(60):
        cols = _as_served(readings(10, rng))
        monitor.observe(cols, {}, 10)
        monitor.save()
    monitor.save()  # no new row: no new snapshot
    size = (tmp_path / "spool.jsonl").stat().st_size
    snapshots = read_spool(tmp_path)
    assert size <= 10_000 + len(json.dumps(snapshots[-1])) + 1
    assert snapshots[-1]["rows"] == 600 and len(snapshots) < 60
    assert [s["rows"] for s in snapshots] == sorted({s["rows"] for s in snapshots})  # cumulative, in order
    again = Monitor(card, str(tmp_path))  # a restart resumes from the last snapshot
    assert again.rows == 600 and np.array_equal(again.bins, monitor.bins)
