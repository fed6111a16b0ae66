"""The loop: drift that persists runs notebooks/retrain.ipynb headless with the report; what it trains goes
through the gates, and nothing is published when one fails."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import edgebench as eb

from .load import frame, labels, readings, spool_windows

RETRAIN = Path(__file__).resolve().parents[2] / "notebooks" / "retrain.ipynb"


@pytest.fixture
def drifted(store, machines_store, tmp_path):
    """machines:1 in the test's store, a spool whose last two windows drifted, and recent labelled rows."""
    card = machines_store.get("machines:1")
    store.add_version(machines_store.model_path(card).read_bytes(), card)
    rng = np.random.default_rng(21)
    spool = spool_windows(card, tmp_path / "spool", readings(600, rng, True), readings(600, rng, True))
    recent = readings(1500, rng, shifted=True)
    csv = tmp_path / "recent.csv"
    frame({**recent, "label": labels(recent)}).to_csv(csv, index=False)
    return spool, csv


def cli(*args, home):
    return subprocess.run([sys.executable, "-m", "edgebench", "--home", str(home), *args], capture_output=True,
                          text=True, timeout=600)


def test_persisting_drift_retrains_a_new_version_through_the_gates(store, drifted, tmp_path):
    spool, csv = drifted
    report = eb.monitor("machines", spool, window="1000s", windows=2)
    assert report.drift and "vibration" in report.alarms
    run = eb.on_drift(report, RETRAIN, output_dir=tmp_path / "run",
                      parameters={"data": str(csv), "estimator": "logistic_regression", "devices": ["rpi4-1gb"],
                                  "containers": False})
    assert run.passed, run.results
    assert run.gates == {"parity": True, "same_inputs": True, "slo": True}
    assert run.results["retraining"] == "machines:1" and run.results["model"] == "machines:2"
    assert set(run.results["drift"]) == set(report.alarms)
    retrained = store.get("machines:2")
    assert retrained.metadata["retrained_from"] == "machines:1" and retrained.monitoring is not None
    # the new reference is the shifted world: the same rows no longer look like drift against it
    again = eb.monitor("machines:2", spool_windows(retrained, tmp_path / "after", *(readings(600, np.random.default_rng(
        22), True) for _ in range(2))), window="1000s", windows=2)
    assert not again.drift, again.alarms
    saved = json.loads((tmp_path / "run" / "drift-report.json").read_text())
    assert saved["alarms"] == report.alarms and "DRIFT in" in Path(run.report).read_text()


def test_a_failing_gate_keeps_the_report_and_publishes_nothing(store, drifted, registries, tmp_path):
    spool, csv = drifted
    repository = f"{registries['open']}/edge/machines-retrained"
    done = cli("monitor", "machines", "--source", str(spool), "--window", "1000s", "--on-drift", str(RETRAIN),
               "-p", "data", str(csv), "-p", "slo_p99_ms", "0.00001", "-p", "devices", '["rpi4-1gb"]',
               "-p", "registry", repository, home=store.home)
    assert done.returncode == 1, done.stderr
    assert "machines:1: DRIFT in " in done.stderr and "a gate failed" in done.stderr
    (folder,) = (store.home / "runs").glob("*-drift")
    assert json.loads((folder / "drift-report.json").read_text())["drift"] is True
    results = json.loads((folder / "results.json").read_text())
    assert results["gates"]["slo"] is False and "published" not in results
    with urllib.request.urlopen(f"http://{registries['open']}/v2/_catalog?n=1000") as answer:
        assert "edge/machines-retrained" not in json.loads(answer.read())["repositories"]
    assert [r.status for r in store.runs("machines", step="monitor")] == ["drift"]


def test_a_retrain_notebook_whose_cell_raises_keeps_the_report(store, drifted, tmp_path):
    spool, _ = drifted
    report = eb.monitor("machines", spool, window="1000s", windows=2)
    with pytest.raises(eb.NotebookError) as caught:
        eb.on_drift(report, RETRAIN, output_dir=tmp_path / "run", parameters={"data": str(tmp_path / "none.csv")})
    assert "notebook retrain.ipynb failed in cell" in str(caught.value) and "none.csv" in str(caught.value)
    assert json.loads((tmp_path / "run" / "drift-report.json").read_text())["model"] == "machines:1"
    assert [c.version for c in store.list("machines")] == [1]


def test_drift_without_a_retrain_notebook_exits_1_with_the_report(store, drifted):
    spool, _ = drifted
    done = cli("monitor", "machines", "--source", str(spool), "--window", "1000s", "--json", home=store.home)
    assert done.returncode == 1
    data = json.loads(done.stdout)
    assert data["drift"] is True and "vibration" in data["alarms"] and len(data["windows"]) == 2
