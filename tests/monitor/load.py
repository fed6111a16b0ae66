"""A bounded load for drift tests and benchmarks: machine readings as a site would send them, unshifted (the
held-out distribution) or shifted (one mean moved, out-of-range values, missing machine names, changed priors)."""

from __future__ import annotations

import http.client
import json
import time

import numpy as np

MEANS = {"temperature": 60.0, "vibration": 0.2, "pressure": 3.0, "humidity": 40.0, "rpm": 1500.0}
SDS = {"temperature": 10.0, "vibration": 0.05, "pressure": 0.4, "humidity": 8.0, "rpm": 120.0}
MACHINES = ("press", "lathe", "mill")
#: what ``readings(shifted=True)`` changes, and so what monitoring must flag (classes follow temperature)
SHIFTED = {"temperature", "vibration", "pressure", "machine", "classes"}


def readings(n: int, rng: np.random.Generator, shifted: bool = False) -> dict[str, np.ndarray]:
    """``n`` rows as columns: five numeric readings and the machine's kind."""
    cols: dict[str, np.ndarray] = {k: rng.normal(MEANS[k], SDS[k], n) for k in MEANS}
    cols["machine"] = rng.choice(MACHINES, n).astype(object)
    if shifted:
        cols["temperature"] = cols["temperature"] + 1.5 * SDS["temperature"]  # hotter: more of class 1
        cols["vibration"] = cols["vibration"] + 1.0 * SDS["vibration"]  # a worn bearing
        broken = rng.random(n) < 0.15
        cols["pressure"] = np.where(broken, 40.0, cols["pressure"])  # a sensor stuck far out of range
        cols["machine"] = np.where(rng.random(n) < 0.2, "", cols["machine"]).astype(object)  # names not sent
    return cols


def labels(cols: dict[str, np.ndarray]) -> np.ndarray:
    return ((cols["temperature"] > MEANS["temperature"]) ^ (cols["machine"] == "mill")).astype(int)


def frame(cols: dict[str, np.ndarray]):
    import pandas as pd

    return pd.DataFrame(cols)


def body(cols: dict[str, np.ndarray], start: int, stop: int) -> bytes:
    inputs = []
    for name, values in cols.items():
        part = values[start:stop]
        text = part.dtype == object
        inputs.append({"name": name, "datatype": "BYTES" if text else "FP32", "shape": [len(part), 1],
                       "data": [str(v) for v in part] if text else part.astype(np.float32).tolist()})
    return json.dumps({"inputs": inputs}).encode()


def send(port: int, model: str, cols: dict[str, np.ndarray], batch: int = 20, rows_per_second: float = 0.0) -> int:
    """POST ``cols`` in batches (paced when ``rows_per_second``); every answer must be 200. Rows sent."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    n = len(next(iter(cols.values())))
    started = time.monotonic()
    try:
        for start in range(0, n, batch):
            connection.request("POST", f"/v2/models/{model}/infer", body(cols, start, start + batch),
                               {"Content-Type": "application/json"})
            answer = connection.getresponse()
            text = answer.read()
            if answer.status != 200:
                raise AssertionError(f"HTTP {answer.status}: {text[:300]!r}")
            if rows_per_second:
                ahead = (start + batch) / rows_per_second - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    finally:
        connection.close()
    return n


def spool_windows(card, folder, *windows):
    """A spool as a site writes it, one cumulative snapshot per window of 1000 s (times set, so each window holds
    exactly its rows): ``monitor(..., window="1000s")`` reads them back."""
    from edgebench.serve.monitor import Monitor

    site = Monitor(card.to_dict())
    lines = []
    for k, cols in enumerate(windows, start=1):
        served = {c: (v.astype(str) if v.dtype == object else v.astype(np.float32)).reshape(len(v), -1)
                  for c, v in cols.items()}
        site.observe(served, {}, len(next(iter(cols.values()))))
        lines.append(json.dumps({**site.snapshot(), "time": 1000.0 * k}))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spool.jsonl").write_text("\n".join(lines) + "\n")
    return folder
