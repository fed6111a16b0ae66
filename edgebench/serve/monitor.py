"""Drift counters inside the server: per monitored input feature, how many rows fell in each of the card's fixed
bins; per predicted class; per confidence bucket. Counts only, no rows kept: they add up across time and sites.

The request path only keeps views of the request's monitored columns (at most 64, so an image model's pixels are
not held); rows are binned in batches of ``FLUSH_ROWS`` or when the counts are read: one searchsorted per feature
over every buffered row and one bincount (about 4 us per row for 64 features on this machine). With a spool folder
the counts are saved as cumulative snapshots (``spool.jsonl``) at an interval and at shutdown, and reloaded at
start, so a restart neither loses nor double counts; the file is kept under a size cap by thinning old snapshots
(they are cumulative, so any subset stays true).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

FLUSH_ROWS = 1024
SPOOL = "spool.jsonl"


def bins_of(feature: dict[str, Any]) -> int:
    """Bins of one feature: numeric, below-range + k inside + above-range + missing; text, values + other +
    missing."""
    if feature["kind"] == "categorical":
        return len(feature["values"]) + 2
    return len(feature["edges"]) + 4


class Binner:
    """The card's bins, prepared once. Numeric features are binned together (one comparison of a rows x features
    matrix against padded edges, one bincount); text features by dictionary."""

    def __init__(self, reference: dict[str, Any]) -> None:
        features = reference["features"]
        self.features = len(features)
        self.width = max(bins_of(f) for f in features)
        numeric = [i for i, f in enumerate(features) if f["kind"] != "categorical"]
        self.text = [(i, f["input"], f["column"], {v: k for k, v in enumerate(f["values"])})
                     for i, f in enumerate(features) if f["kind"] == "categorical"]
        by_input: dict[str, list[int]] = {}
        for i in numeric:
            by_input.setdefault(features[i]["input"], []).append(i)
        # input -> its monitored numeric columns (None: all of them, in order, so a request needs no copy)
        self.picks = {name: None if [features[i]["column"] for i in idx] == list(range(len(idx))) else
                      np.array([features[i]["column"] for i in idx]) for name, idx in by_input.items()}
        self.widths = {name: len(idx) for name, idx in by_input.items()}
        self.order = [i for idx in by_input.values() for i in idx]  # the numeric features, as ``columns`` gives them
        spec = [features[i] for i in self.order]
        # [low, edges..., just above high] with side="right": 0 below the range, 1..k+1 inside, k+2 above it
        self.edge_rows = [np.array([f["range"][0], *f["edges"], np.nextafter(f["range"][1], np.inf)]) for f in spec]
        self.above = np.array([len(f["edges"]) + 2 for f in spec], dtype=np.int64)
        self.offsets = np.arange(len(spec), dtype=np.int64) * self.width

    def columns(self, feeds: dict[str, np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The monitored columns of one request: numeric (rows x columns, per input) and each text column."""
        numeric = []
        for name, columns in self.picks.items():
            array = feeds[name].reshape(feeds[name].shape[0], -1)
            numeric.append(array if columns is None and array.shape[1] == self.widths[name] else
                           array[:, columns if columns is not None else slice(0, self.widths[name])])
        return numeric, [feeds[name].reshape(feeds[name].shape[0], -1)[:, column] for _, name, column, _ in self.text]

    def count(self, numeric: list[np.ndarray], text: list[np.ndarray]) -> np.ndarray:
        """Counts (features x bins, padded to the widest) of the rows given as ``columns`` returned them."""
        counts = np.zeros((self.features, self.width), dtype=np.int64)
        if numeric and numeric[0].shape[0]:
            columns = np.ascontiguousarray(np.hstack(numeric).T, dtype=np.float64)
            bins = np.empty(columns.shape, dtype=np.int64)
            for j, edges in enumerate(self.edge_rows):  # one searchsorted per feature, over every buffered row
                bins[j] = np.searchsorted(edges, columns[j], side="right")
            missing = np.isnan(columns)
            if missing.any():
                bins[missing] = np.broadcast_to(self.above[:, None] + 1, bins.shape)[missing]
            flat = np.bincount((bins + self.offsets[:, None]).ravel(), minlength=len(self.order) * self.width)
            counts[self.order] = flat.reshape(len(self.order), self.width)
        for (i, _, _, known), values in zip(self.text, text, strict=True):
            other, missing = len(known), len(known) + 1
            for value, n in zip(*_distinct(values), strict=True):
                word = value.decode() if isinstance(value, bytes) else str(value)
                counts[i, missing if word in ("", "nan", "None") else known.get(word, other)] += n
        return counts


def _distinct(values: np.ndarray) -> tuple[list[Any], list[int]]:
    """The distinct values of a column and how often each occurs (a loop over values, not rows)."""
    found: dict[Any, int] = {}
    for value in values.tolist():
        found[value] = found.get(value, 0) + 1
    return list(found), list(found.values())


def bin_rows(reference: dict[str, Any], feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Counts (features x bins, padded to the widest) of the rows in ``feeds``."""
    binner = Binner(reference)
    return binner.count(*binner.columns(feeds))


def class_counts(reference: dict[str, Any], labels: np.ndarray) -> np.ndarray:
    names = [str(c) for c in reference["classes"]["labels"]]
    index = {n: i for i, n in enumerate(names)}
    out = np.zeros(len(names) + 1, dtype=np.int64)  # the last: a class the reference never saw
    for label, n in zip(*_distinct(labels.reshape(-1)), strict=True):
        text = label.decode() if isinstance(label, bytes) else str(label)
        out[index.get(text, len(names))] += n
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
        self.binner = Binner(self.reference)
        # the buffered requests' monitored columns, per input and per text feature, and their outputs: arrays
        # appended to lists made once, so buffering creates no objects the garbage collector has to walk
        self.numeric: list[list[np.ndarray]] = [[] for _ in self.binner.picks]
        self.text: list[list[np.ndarray]] = [[] for _ in self.binner.text]
        self.labels: list[np.ndarray] = []
        self.probabilities: list[np.ndarray] = []
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
        """Note one request (cheap: its monitored columns are kept, binning happens in batches)."""
        numeric, text = self.binner.columns(feeds)
        for kept, array in zip(self.numeric, numeric, strict=True):
            kept.append(array)
        for kept, array in zip(self.text, text, strict=True):
            kept.append(array)
        if "label" in outputs:
            self.labels.append(outputs["label"])
        if "probabilities" in outputs:
            self.probabilities.append(outputs["probabilities"])
        self.buffered += rows
        if self.buffered >= FLUSH_ROWS:
            self.flush()
        if self.spool and time.monotonic() - self.last_spool >= self.spool_seconds:
            self.save()

    def flush(self) -> None:
        if not self.buffered:
            return
        numeric = [np.vstack(kept) for kept in self.numeric]
        text = [np.concatenate(kept) for kept in self.text]
        self.bins += self.binner.count(numeric, text)
        if self.classes is not None and self.labels:
            self.classes += class_counts(self.reference, np.concatenate(self.labels))
        if self.confidence is not None and self.probabilities:
            self.confidence += confidence_counts(self.reference, np.concatenate(self.probabilities))
        self.rows += self.buffered
        self.buffered = 0
        for kept in (*self.numeric, *self.text, self.labels, self.probabilities):
            kept.clear()

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
