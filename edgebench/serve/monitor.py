"""Drift counters inside the server: per monitored input feature, how many rows fell in each of the card's fixed
bins; per predicted class; per confidence bucket. Counts only, no rows kept: they add up across time and sites.

The request path only appends the request's arrays to a buffer; rows are binned in batches (numpy, one pass per
``FLUSH_ROWS`` rows or when the counts are read). With a spool folder the counts are saved as cumulative snapshots
(``spool.jsonl``) at an interval and at shutdown, and reloaded at start, so a restart neither loses nor double
counts; the file is kept under a size cap by thinning old snapshots (they are cumulative, so any subset stays true).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

FLUSH_ROWS = 256
SPOOL = "spool.jsonl"


def bin_numeric(values: np.ndarray, feature: dict[str, Any]) -> np.ndarray:
    """Bin indices of ``values`` (1-D): 0 below the reference range, 1..k inside, k+1 above, k+2 missing."""
    edges = np.asarray(feature["edges"], dtype=np.float64)
    low, high = feature["range"]
    x = values.astype(np.float64, copy=False)
    bins = np.searchsorted(edges, x, side="right") + 1
    inside = len(edges) + 1
    bins = np.where(x < low, 0, np.where(x > high, inside + 1, bins))
    return np.where(np.isnan(x), inside + 2, bins)


def bin_categorical(values: np.ndarray, feature: dict[str, Any]) -> np.ndarray:
    """Bin indices of text values: one per reference value, then "other", then missing (empty)."""
    known = {v: i for i, v in enumerate(feature["values"])}
    other, missing = len(known), len(known) + 1
    out = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        text = value.decode() if isinstance(value, bytes) else str(value)
        out[i] = missing if text in ("", "nan", "None") else known.get(text, other)
    return out


def bins_of(feature: dict[str, Any]) -> int:
    if feature["kind"] == "categorical":
        return len(feature["values"]) + 2
    return len(feature["edges"]) + 4


def bin_rows(reference: dict[str, Any], feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Counts (features x bins, padded to the widest) of the rows in ``feeds``."""
    features = reference["features"]
    width = max(bins_of(f) for f in features)
    counts = np.zeros((len(features), width), dtype=np.int64)
    for i, feature in enumerate(features):
        array = feeds[feature["input"]]
        column = array.reshape(array.shape[0], -1)[:, feature["column"]]
        bins = bin_categorical(column, feature) if feature["kind"] == "categorical" else bin_numeric(column, feature)
        counts[i] += np.bincount(bins, minlength=width)[:width]
    return counts


def class_counts(reference: dict[str, Any], labels: np.ndarray) -> np.ndarray:
    names = [str(c) for c in reference["classes"]["labels"]]
    index = {n: i for i, n in enumerate(names)}
    out = np.zeros(len(names) + 1, dtype=np.int64)  # the last: a class the reference never saw
    for label in labels.reshape(-1):
        text = label.decode() if isinstance(label, bytes) else str(label)
        out[index.get(text, len(names))] += 1
    return out


def confidence_counts(reference: dict[str, Any], probabilities: np.ndarray) -> np.ndarray:
    edges = np.asarray(reference["confidence"]["edges"])
    top = probabilities.reshape(probabilities.shape[0], -1).max(axis=1)
    return np.bincount(np.searchsorted(edges, top, side="right"), minlength=len(edges) + 1)[:len(edges) + 1]


class Monitor:
    """The counters of one model version, fed by the server and read by /metrics and the spool."""

    def __init__(self, card: dict[str, Any], spool: str | None = None, spool_seconds: float = 60.0,
                 spool_max_bytes: int = 16 * 2**20) -> None:
        self.reference = card["monitoring"]
        self.model, self.version, self.sha256 = card["name"], str(card["version"]), card["sha256"]
        features = self.reference["features"]
        self.bins = np.zeros((len(features), max(bins_of(f) for f in features)), dtype=np.int64)
        self.classes = np.zeros(len(self.reference["classes"]["labels"]) + 1, dtype=np.int64) \
            if self.reference.get("classes") else None
        self.confidence = np.zeros(len(self.reference["confidence"]["edges"]) + 1, dtype=np.int64) \
            if self.reference.get("confidence") else None
        self.rows = 0
        self.started = time.time()
        self.buffer: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = []
        self.buffered = 0
        self.spool = Path(spool) / SPOOL if spool else None
        self.spool_seconds, self.spool_max_bytes = spool_seconds, spool_max_bytes
        self.last_spool = time.monotonic()
        self.spooled_rows = -1
        self.spool_error = ""
        if self.spool:
            self.spool.parent.mkdir(parents=True, exist_ok=True)  # OSError here: the server says so and stops
            with self.spool.open("a"):
                pass
            self._resume()

    def observe(self, feeds: dict[str, np.ndarray], outputs: dict[str, np.ndarray], rows: int) -> None:
        """Note one request (cheap: binning happens in batches)."""
        self.buffer.append((feeds, outputs))
        self.buffered += rows
        if self.buffered >= FLUSH_ROWS:
            self.flush()
        if self.spool and time.monotonic() - self.last_spool >= self.spool_seconds:
            self.save()

    def flush(self) -> None:
        if not self.buffer:
            return
        batch, self.buffer, self.buffered = self.buffer, [], 0
        names = batch[0][0].keys()
        feeds = {n: np.concatenate([f[n] for f, _ in batch]) for n in names}
        self.bins += bin_rows(self.reference, feeds)
        self.rows += next(iter(feeds.values())).shape[0]
        outputs = [o for _, o in batch]
        if self.classes is not None and all("label" in o for o in outputs):
            self.classes += class_counts(self.reference, np.concatenate([o["label"] for o in outputs]))
        if self.confidence is not None and all("probabilities" in o for o in outputs):
            self.confidence += confidence_counts(self.reference, np.concatenate([o["probabilities"] for o in outputs]))

    # -- what leaves the server --------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        self.flush()
        return {"time": round(time.time(), 3), "model": self.model, "version": self.version, "sha256": self.sha256,
                "features": [f["name"] for f in self.reference["features"]], "rows": int(self.rows),
                "bins": self.bins.tolist(),
                "classes": self.classes.tolist() if self.classes is not None else None,
                "confidence": self.confidence.tolist() if self.confidence is not None else None}

    def render(self, labels: str) -> list[str]:
        """Prometheus text lines: bounded labels (feature and bin index, class, bucket), counters named _total."""
        self.flush()
        lines = ["# HELP edgebench_monitor_info The model version and card whose reference bins these counts use.",
                 "# TYPE edgebench_monitor_info gauge",
                 f'edgebench_monitor_info{{{labels},sha256="{self.sha256}"}} 1',
                 "# HELP edgebench_monitor_rows_total Rows counted for drift monitoring.",
                 "# TYPE edgebench_monitor_rows_total counter",
                 f"edgebench_monitor_rows_total{{{labels}}} {self.rows}",
                 "# HELP edgebench_input_bin_total Rows per monitored input feature and reference bin.",
                 "# TYPE edgebench_input_bin_total counter"]
        for feature, row in zip(self.reference["features"], self.bins, strict=True):
            name = feature["name"].replace("\\", "\\\\").replace('"', '\\"')
            lines += [f'edgebench_input_bin_total{{{labels},feature="{name}",bin="{b}"}} {int(c)}'
                      for b, c in enumerate(row[:bins_of(feature)])]
        if self.classes is not None:
            lines += ["# HELP edgebench_prediction_total Predictions per class (the last: a class the reference "
                      "never saw).", "# TYPE edgebench_prediction_total counter"]
            names = [*map(str, self.reference["classes"]["labels"]), "(other)"]
            lines += [f'edgebench_prediction_total{{{labels},class="{n}"}} {int(c)}'
                      for n, c in zip(names, self.classes, strict=True)]
        if self.confidence is not None:
            lines += ["# HELP edgebench_confidence_total Predictions per bucket of the top probability (the label "
                      "is the bucket's lower edge).", "# TYPE edgebench_confidence_total counter"]
            lows = [0.0, *self.reference["confidence"]["edges"]]
            lines += [f'edgebench_confidence_total{{{labels},bucket="{low:g}"}} {int(c)}'
                      for low, c in zip(lows, self.confidence, strict=True)]
        return lines

    # -- the spool: what a cut-off site keeps ------------------------------------------------------------------

    def save(self) -> None:
        """Append a cumulative snapshot to the spool (none while no row came since the last), keeping the file
        under its size cap."""
        if self.spool is None:
            return
        self.last_spool = time.monotonic()
        self.flush()
        if self.rows == self.spooled_rows:
            return
        self.spooled_rows = self.rows
        line = json.dumps(self.snapshot(), separators=(",", ":")) + "\n"
        try:
            with self.spool.open("a") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            if self.spool.stat().st_size > self.spool_max_bytes:
                self._thin()
        except OSError as exc:  # a full or lost disk must not fail requests; the counts stay and retry next time
            self.spooled_rows = -1
            if str(exc) != self.spool_error:
                self.spool_error = str(exc)
                print(f"edgebench-serve: cannot spool the drift counts to {self.spool}: {exc}; they are kept in "
                      "memory and /metrics", file=sys.stderr, flush=True)

    def _thin(self) -> None:
        """Halve the older half of the history (snapshots are cumulative: what is kept stays true)."""
        assert self.spool is not None
        lines = self.spool.read_text().splitlines(keepends=True)
        half = len(lines) // 2
        kept = lines[:half][::2] + lines[half:]
        tmp = self.spool.with_suffix(".tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, self.spool)

    def _resume(self) -> None:
        """Continue from the last snapshot of the same model bytes (a restart loses and repeats nothing)."""
        assert self.spool is not None
        try:
            lines = self.spool.read_text().splitlines()
        except FileNotFoundError:
            return
        for line in reversed(lines):
            try:
                last = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash
            if last.get("sha256") != self.sha256:
                return  # another model's counts: start from zero, keep the file
            self.rows = self.spooled_rows = int(last["rows"])
            self.bins = np.asarray(last["bins"], dtype=np.int64)
            if self.classes is not None and last.get("classes"):
                self.classes = np.asarray(last["classes"], dtype=np.int64)
            if self.confidence is not None and last.get("confidence"):
                self.confidence = np.asarray(last["confidence"], dtype=np.int64)
            return
