"""Store benchmark: `store check` (full and quick) and `store rebuild` on a store of 1,000 versions, next to the
floor for the same work (SQLite's own integrity check plus hashing every blob with hashlib, nothing else), with
the peak memory of each, measured in one run.

Run from the repository root: .venv/bin/python -m tests.benchmarks.bench_store [VERSIONS]
"""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.tree import DecisionTreeClassifier

import edgebench as eb


def fill(store: eb.Store, versions: int) -> None:
    """``versions`` versions over 10 names: a real exported card, each with its own small ONNX bytes."""
    x, y = load_digits(return_X_y=True)
    template = eb.export_model(DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y), x[:5], "seed",
                               store=store)
    onnx = store.model_path(template).read_bytes()
    for i in range(versions):
        data = onnx + f"-{i}".encode()  # distinct bytes, distinct sha256 (the check hashes, it does not parse ONNX)
        card = dataclasses.replace(template, name=f"model-{i % 10}", sha256=hashlib.sha256(data).hexdigest(),
                                   size_bytes=len(data))
        stored, _ = store.add_version(data, card)
        store.record_run("bench", stored.name, stored.version, {"devices": ["rpi4-1gb"]}, "passed", {"devices": []})


def measured(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall time of one call, then the Python heap's peak over a second call (tracemalloc slows what it traces)."""
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, result


def floor(store: eb.Store) -> int:
    db = sqlite3.connect(store.index_path)
    assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    db.close()
    count = 0
    for path in store.blob_files():
        hashlib.sha256(path.read_bytes()).hexdigest()
        count += 1
    return count


def main(versions: int = 1000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = eb.Store(Path(tmp) / "store")
        start = time.perf_counter()
        fill(store, versions)
        blobs = sum(p.stat().st_size for p in store.blob_files())
        print(f"filled {versions + 1} versions, {2 * (versions + 1)} blobs ({blobs / 2**20:.1f} MiB) in "
              f"{time.perf_counter() - start:.1f} s")
        rows = {}
        for _ in range(3):  # interleaved, best of three for time; memory is the same each time
            for label, fn in (("floor: quick_check + sha256 of every blob", lambda: floor(store)),
                              ("store check (full)", lambda: store.check()),
                              ("store check --quick", lambda: store.check(full=False))):
                seconds, peak, _ = measured(fn)
                best = rows.get(label, (float("inf"), 0))[0]
                rows[label] = (min(best, seconds), peak)
        report = store.check()
        assert report.ok, report.summary()
        store.index_path.write_bytes(b"")
        seconds, peak, rebuilt = measured(lambda: eb.Store(store.home).rebuild_index(force=True))
        rows["store rebuild (emptied index; then --force)"] = (seconds, peak)
        assert len(rebuilt.recovered) == versions + 1 and not rebuilt.not_recovered
        reference = rows["floor: quick_check + sha256 of every blob"][0]
        print(f"{'what':<48} {'seconds':>8} {'x floor':>8} {'peak MiB (Python)':>18}")
        for label, (seconds, peak) in rows.items():
            print(f"{label:<48} {seconds:>8.3f} {seconds / reference:>8.2f} {peak:>18.1f}")
        print(f"numpy {np.__version__}, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
