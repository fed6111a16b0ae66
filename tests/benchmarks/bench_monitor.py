"""Monitoring benchmark, all measured in one run:

1. server throughput with drift counters on vs off (digits, 64 features; machines, 6 inputs), one row per
   request, 1 and 8 clients, rounds interleaved (wrk on the other core);
2. false alarms over 1,000 unshifted windows: edgebench's rule (chi-square + Holm, calibrated PSI, two windows)
   next to the common rule of thumb "PSI > 0.1 in any feature";
3. detection delay, in requests (one row each), for a 0.25, 0.5 and 1 standard deviation shift of one of 20
   features, per window size, for both rules;
4. spool size per day (one snapshot a minute), digits and machines;
5. with a Docker Engine: time from persistent drift to a retrained, tested image (notebooks/retrain.ipynb).

Run from the repository root: .venv/bin/python -m tests.benchmarks.bench_monitor   (wrk: apt-get install wrk)
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

import edgebench as eb
from edgebench.monitor import judge, stats
from edgebench.monitor.sources import Counts
from edgebench.serve.monitor import Monitor, bin_rows
from tests.benchmarks.bench_serve import edgebench_server

FEATURES = 20
NAIVE_PSI = 0.1


def model_dir(store: eb.Store, card: eb.ModelCard, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(store.model_path(card), folder / "model.onnx")
    (folder / "card.json").write_text(card.to_json())
    return folder


def throughput(name: str, folder: Path, body: dict, rounds: int = 5) -> None:
    path = folder.parent / f"{name}-body.json"
    path.write_text(json.dumps(body))
    results: dict[str, dict[int, list[float]]] = {"on": {1: [], 8: []}, "off": {1: [], 8: []}}
    for _ in range(rounds):
        for mode in ("off", "on"):
            for clients, measured in edgebench_server(folder, path, "--monitor", mode, model=name).items():
                results[mode][clients].append(measured["rps"])
    for clients in (1, 8):
        on, off = np.median(results["on"][clients]), np.median(results["off"][clients])
        print(f"  {name}, {clients} client(s): {off:7.0f} req/s off, {on:7.0f} req/s on: on/off = {on / off:.3f} "
              f"(medians of {rounds} interleaved rounds)")


def twenty_features(store: eb.Store, rng: np.random.Generator) -> eb.ModelCard:
    x = rng.normal(size=(6000, FEATURES))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    return eb.export_model(LogisticRegression().fit(x[:1000], y[:1000]), x[:500], "twenty", held_out=x[1000:],
                           store=store)


def counts(card: eb.ModelCard, rows: np.ndarray) -> Counts:
    return Counts(None, 0.0, len(rows), bin_rows(card.monitoring, {"X": rows.astype(np.float32)}), None, None)


def naive(card: eb.ModelCard, window: Counts) -> bool:
    reference = np.asarray(card.monitoring["counts"], dtype=np.float64)
    return bool((stats.psi(reference, window.bins) > NAIVE_PSI).any())


def false_alarms(card: eb.ModelCard, rng: np.random.Generator, size: int, n: int = 1000) -> tuple[int, int, int]:
    windows = [counts(card, rng.normal(size=(size, FEATURES))) for _ in range(n + 1)]
    ours = sum(judge(card, windows[k - 1:k + 1], "bench", 1.0).drift for k in range(1, n + 1))
    single = sum(bool(judge(card, [w], "bench", 1.0).windows[0].drifted) for w in windows[1:])
    return ours, single, sum(naive(card, w) for w in windows[1:])


def delay(card: eb.ModelCard, rng: np.random.Generator, size: int, shift: float, repeats: int = 10,
          limit: int = 60) -> tuple[float, float]:
    """Median rows from the shift's start to the first alarm (edgebench's rule, the naive one); inf: none in
    ``limit`` windows."""
    ours, theirs = [], []
    for _ in range(repeats):
        previous = counts(card, rng.normal(size=(size, FEATURES)))  # the last unshifted window
        found_ours = found_naive = None
        for k in range(1, limit + 1):
            rows = rng.normal(size=(size, FEATURES))
            rows[:, 7] += shift
            window = counts(card, rows)
            if found_ours is None and judge(card, [previous, window], "bench", 1.0).drift:
                found_ours = k * size
            if found_naive is None and naive(card, window):
                found_naive = k * size
            if found_ours and found_naive:
                break
            previous = window
        ours.append(found_ours or float("inf"))
        theirs.append(found_naive or float("inf"))
    return float(np.median(ours)), float(np.median(theirs))


def spool_per_day(card: eb.ModelCard, feeds: dict[str, np.ndarray], folder: Path) -> float:
    monitor = Monitor(card.to_dict(), str(folder))
    rows = len(next(iter(feeds.values())))
    for _ in range(60):  # an hour of snapshots, each after new rows
        monitor.observe(feeds, {}, rows)
        monitor.save()
    return (folder / "spool.jsonl").stat().st_size / 60 * 1440


def retrain_to_tested_image(home: Path) -> None:
    from edgebench.engine import engine_available
    from tests.monitor.load import frame, labels, readings, spool_windows

    ok, why = engine_available()
    if not ok:
        print(f"  skipped: {why}")
        return
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    store = eb.Store(home)
    rng = np.random.default_rng(3)
    train, held_out = readings(3000, rng), readings(2000, rng)
    numeric = [c for c in train if c != "machine"]
    model = Pipeline([("prep", ColumnTransformer([("num", StandardScaler(), numeric),
                                                  ("cat", OneHotEncoder(handle_unknown="ignore"), ["machine"])])),
                      ("clf", LogisticRegression(max_iter=500))]).fit(frame(train), labels(train))
    card = eb.export_model(model, frame(train).iloc[:500], "machines", held_out=frame(held_out), store=store)
    spool = spool_windows(card, home / "spool", readings(600, rng, True), readings(600, rng, True))
    recent = readings(3000, rng, shifted=True)
    (home / "recent.csv").write_text(frame({**recent, "label": labels(recent)}).to_csv(index=False))
    started = time.perf_counter()
    report = eb.monitor("machines", spool, window="1000s", store=store)
    judged = time.perf_counter() - started
    run = eb.on_drift(report, Path("notebooks/retrain.ipynb"), store=store,
                      parameters={"data": str(home / "recent.csv"), "estimator": "logistic_regression",
                                  "devices": ["rpi4-1gb"], "platforms": ["linux/amd64"]})
    total = time.perf_counter() - started
    print(f"  drift judged in {judged:.2f} s; retrained, exported, benched, built, tested and archived "
          f"{run.results.get('model')} in {total:.1f} s in all (gates {run.gates})")


def main() -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        store = eb.Store(tmp_path / "store")
        from sklearn.datasets import load_digits
        from sklearn.ensemble import RandomForestClassifier

        from tests.monitor.load import frame, labels, readings

        x, y = load_digits(return_X_y=True)
        digits = eb.export_model(RandomForestClassifier(n_estimators=100, random_state=0).fit(x, y), x[:200],
                                 "digits-rf", held_out=x[200:], store=store)
        train = readings(3000, rng)
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        numeric = [c for c in train if c != "machine"]
        machines = eb.export_model(Pipeline([
            ("prep", ColumnTransformer([("num", StandardScaler(), numeric),
                                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["machine"])])),
            ("clf", LogisticRegression(max_iter=500))]).fit(frame(train), labels(train)),
            frame(train).iloc[:500], "machines", held_out=frame(readings(2000, rng)), store=store)

        print("1. throughput, drift counters off vs on (one row per request)")
        if shutil.which("wrk"):
            throughput("digits-rf", model_dir(store, digits, tmp_path / "digits"),
                       {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 64], "data": x[5].tolist()}]})
            one = readings(1, rng)
            throughput("machines", model_dir(store, machines, tmp_path / "machines"), {"inputs": [
                {"name": k, "datatype": "BYTES" if v.dtype == object else "FP32", "shape": [1, 1],
                 "data": [str(v[0])] if v.dtype == object else [float(v[0])]} for k, v in one.items()]})
        else:
            print("  skipped: wrk is needed (apt-get install wrk)")

        twenty = twenty_features(store, rng)
        print(f"2. false alarms over 1,000 unshifted windows, {FEATURES} features")
        for size in (100, 300, 1000):
            ours, single, theirs = false_alarms(twenty, rng, size)
            print(f"  {size:5d} rows/window: edgebench {ours} alarms ({single} single-window flags); "
                  f"PSI > {NAIVE_PSI} rule {theirs}")

        print(f"3. detection delay in requests (1 row each), one of {FEATURES} features shifted; median of 10")
        for size in (100, 300, 1000):
            for shift in (0.25, 0.5, 1.0):
                ours, theirs = delay(twenty, rng, size, shift)
                print(f"  {size:5d} rows/window, {shift:4.2f} sd: edgebench {ours:8.0f}, PSI > {NAIVE_PSI} rule "
                      f"{theirs:8.0f}")

        print("4. spool size per day (a snapshot a minute, cap 16 MiB by default)")
        for name, card, feeds in (("digits-rf", digits, {"X": x[:50].astype(np.float32)}),
                                  ("machines", machines, {k: (v.astype(str) if v.dtype == object else
                                                              v.astype(np.float32)).reshape(-1, 1)
                                                          for k, v in readings(50, rng).items()})):
            per_day = spool_per_day(card, feeds, tmp_path / f"spool-{name}")
            print(f"  {name}: {per_day / 2**20:.2f} MiB/day ({card.monitoring['monitored']} features), "
                  f"{16 * 2**20 / per_day:.0f} days before thinning starts")

        print("5. persistent drift to a retrained, tested image")
        retrain_to_tested_image(tmp_path / "retrain")


if __name__ == "__main__":
    sys.exit(main())
