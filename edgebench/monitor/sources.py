"""Where the counts come from: a Prometheus that scrapes the sites (its HTTP API), a live ``/metrics`` endpoint
(parsed with prometheus_client's parser), or what a cut-off site spooled and a person carried back. Each gives
windows of counts in the card's bins, oldest first."""

from __future__ import annotations

import io
import itertools
import json
import re
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.card import ModelCard
from ..core.errors import InvalidInputError, MonitorError
from ..serve.monitor import SPOOL, bins_of

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(window: str | float | int) -> float:
    """``"1h"``, ``"30m"``, ``"90s"``, ``"2d"`` or a number of seconds."""
    if isinstance(window, int | float) and not isinstance(window, bool) and window > 0:
        return float(window)
    match = _DURATION.match(str(window).strip())
    if not match or float(match[1]) <= 0:
        raise InvalidInputError(f"window {window!r} is not a duration like 90s, 30m, 1h or 2d")
    return float(match[1]) * _UNITS[match[2]]


@dataclass
class Counts:
    """The counts of one window (or since a start), in the card's bins."""

    start: float | None
    end: float
    rows: int
    bins: np.ndarray  # features x bins (padded)
    classes: np.ndarray | None
    confidence: np.ndarray | None

    def minus(self, earlier: Counts) -> Counts:
        return Counts(earlier.end, self.end, self.rows - earlier.rows, self.bins - earlier.bins,
                      None if self.classes is None or earlier.classes is None else self.classes - earlier.classes,
                      None if self.confidence is None or earlier.confidence is None
                      else self.confidence - earlier.confidence)


def empty(card: ModelCard) -> Counts:
    assert card.monitoring is not None
    features = card.monitoring["features"]
    width = max(bins_of(f) for f in features)
    classes = card.monitoring.get("classes")
    confidence = card.monitoring.get("confidence")
    return Counts(None, time.time(), 0, np.zeros((len(features), width), dtype=np.int64),
                  np.zeros(len(classes["labels"]) + 1, dtype=np.int64) if classes else None,
                  np.zeros(len(confidence["edges"]) + 1, dtype=np.int64) if confidence else None)


def _fill(card: ModelCard, counts: Counts, name: str, labels: dict[str, str], value: float) -> None:
    """Put one sample of edgebench's metric families into ``counts``."""
    assert card.monitoring is not None
    ref = card.monitoring
    if name == "edgebench_monitor_rows":
        counts.rows += int(value)
    elif name == "edgebench_input_bin":
        index = {f["name"]: i for i, f in enumerate(ref["features"])}
        if labels.get("feature") in index:
            counts.bins[index[labels["feature"]], int(labels["bin"])] += round(value)
    elif name == "edgebench_prediction" and counts.classes is not None:
        names = [*map(str, ref["classes"]["labels"]), "(other)"]
        if labels.get("class") in names:
            counts.classes[names.index(labels["class"])] += round(value)
    elif name == "edgebench_confidence" and counts.confidence is not None:
        lows = [f"{x:g}" for x in [0.0, *ref["confidence"]["edges"]]]
        if labels.get("bucket") in lows:
            counts.confidence[lows.index(labels["bucket"])] += round(value)


def _identity_check(card: ModelCard, found: dict[str, str] | None, where: str) -> None:
    if found is None:
        raise MonitorError(f"{where} has no counts of {card.ref} (no edgebench_monitor_info for model "
                           f"{card.name!r}): is this server edgebench's, with drift counters on?", source=where)
    if found.get("sha256") != card.sha256:
        raise MonitorError(f"{where} counts model bytes {found.get('sha256', '?')[:12]}... (version "
                           f"{found.get('version')}), not {card.ref} ({card.sha256[:12]}...): its bins would not "
                           "match; monitor the version it runs", source=where)


def from_metrics(url: str, card: ModelCard) -> list[Counts]:
    """One window: the counts since the server started (a live endpoint keeps no history)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = _get(url, "a /metrics endpoint")
    counts = empty(card)
    identity = None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.labels.get("model") != card.name or sample.labels.get("version") != str(card.version):
                    continue
                if sample.name == "edgebench_monitor_info":
                    identity = sample.labels
                name = sample.name.removesuffix("_total")
                _fill(card, counts, name, sample.labels, sample.value)
    except ValueError as exc:
        raise MonitorError(f"{url} is not Prometheus text: {exc}", source=url) from None
    _identity_check(card, identity, url)
    return [counts]


def from_prometheus(url: str, card: ModelCard, window: float, windows: int, end: float | None = None
                    ) -> list[Counts]:
    """``windows`` consecutive windows of ``window`` seconds ending at ``end`` (now), from a Prometheus HTTP API:
    ``increase()`` of the counters summed over every site that reports this model version."""
    end = end or time.time()
    selector = f'model="{card.name}",version="{card.version}"'
    info = _query(url, f'edgebench_monitor_info{{{selector}}}', end)
    identities = [r["metric"] for r in info]
    if not identities:
        _identity_check(card, None, url)
    if not any(m.get("sha256") == card.sha256 for m in identities):
        _identity_check(card, identities[0], url)
    found = []
    for k in range(windows, 0, -1):
        at = end - (k - 1) * window
        counts = empty(card)
        counts.start, counts.end = at - window, at
        span = f"{int(window)}s"
        for metric, by in (("edgebench_monitor_rows_total", ""), ("edgebench_input_bin_total", "feature, bin"),
                           ("edgebench_prediction_total", "class"), ("edgebench_confidence_total", "bucket")):
            group = f" by ({by})" if by else ""
            for row in _query(url, f"sum{group} (increase({metric}{{{selector}}}[{span}]))", at):
                _fill(card, counts, metric.removesuffix("_total"), row["metric"], float(row["value"][1]))
        found.append(counts)
    return found


def _query(url: str, promql: str, at: float) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"})
    text = _get(f"{url.rstrip('/')}/api/v1/query?{query}", "a Prometheus HTTP API", url)
    try:
        data = json.loads(text)
    except ValueError:
        raise MonitorError(f"{url} is not a Prometheus HTTP API (its answer is not JSON)", source=url) from None
    if data.get("status") != "success":
        raise MonitorError(f"{url} refused the query {promql!r}: {data.get('error')}", source=url)
    return list(data["data"]["result"])


def _get(url: str, what: str, shown: str | None = None) -> str:
    """The body at ``url``; errors name ``shown`` (the address the user gave), and the status or reason."""
    shown = shown or url
    try:
        with urllib.request.urlopen(url, timeout=15) as answer:
            return str(answer.read().decode())
    except urllib.error.HTTPError as exc:
        raise MonitorError(f"{shown} answered HTTP {exc.code} to {url.removeprefix(shown.rstrip('/'))}: is it "
                           f"{what}?", source=shown) from None
    except (urllib.error.URLError, OSError) as exc:
        raise MonitorError(f"{shown} is unreachable ({getattr(exc, 'reason', exc)}): check the address",
                           source=shown) from None


# -- spools carried back from cut-off sites -------------------------------------------------------------------


def read_spool(path: str | Path) -> list[dict[str, Any]]:
    """The snapshots of a spool: a ``spool.jsonl``, a folder holding one, or an export tar."""
    source = Path(path)
    try:
        if source.is_dir():
            text = (source / SPOOL).read_text()
        elif tarfile.is_tarfile(source):
            with tarfile.open(source) as tar:
                member = tar.extractfile(SPOOL)
                if member is None:
                    raise KeyError(SPOOL)
                text = member.read().decode()
        else:
            text = source.read_text()
    except (OSError, KeyError, tarfile.TarError) as exc:
        raise MonitorError(f"{source} is not a spool (spool.jsonl, its folder, or `edgebench monitor export` "
                           f"output): {exc}", source=str(source)) from None
    snapshots = []
    for line in text.splitlines():
        try:
            snapshots.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a crash
    if not snapshots:
        raise MonitorError(f"{source} holds no snapshot yet", source=str(source))
    return snapshots


def from_spool(path: str | Path, card: ModelCard, window: float, windows: int) -> list[Counts]:
    """Windows of ``window`` seconds back from the last snapshot (cumulative snapshots subtracted)."""
    snapshots = read_spool(path)
    mine = [s for s in snapshots if s.get("sha256") == card.sha256]
    if not mine:
        last = snapshots[-1]
        raise MonitorError(f"{path} holds counts of {last.get('model')}:{last.get('version')} (model bytes "
                           f"{str(last.get('sha256'))[:12]}...), not {card.ref}: monitor the version that site ran",
                           source=str(path))

    def at(t: float) -> Counts:
        before = [s for s in mine if s["time"] <= t]
        if not before:
            zero = empty(card)
            zero.end = t
            return zero
        s = before[-1]
        return Counts(None, s["time"], s["rows"], np.asarray(s["bins"], dtype=np.int64),
                      np.asarray(s["classes"]) if s.get("classes") else None,
                      np.asarray(s["confidence"]) if s.get("confidence") else None)

    end = mine[-1]["time"]
    edges = [end - k * window for k in range(windows, -1, -1)]
    return [at(b).minus(at(a)) for a, b in itertools.pairwise(edges)]


def _labels(snapshot: dict[str, Any]) -> str:
    return f'model="{snapshot["model"]}",version="{snapshot["version"]}"'


def export_spool(spool: str | Path, out: str | Path) -> dict[str, Any]:
    """What a person carries back from a cut-off site: the spool, and the same counts in OpenMetrics text for
    ``promtool tsdb create-blocks-from openmetrics`` (to backfill the hub's Prometheus)."""
    source = Path(spool)
    snapshots = read_spool(source)
    target = Path(out)
    if not target.parent.is_dir():
        raise InvalidInputError(f"folder {target.parent} does not exist", path=str(target))
    lines = ["# TYPE edgebench_monitor_info gauge"]
    lines += [f'edgebench_monitor_info{{{_labels(s)},sha256="{s["sha256"]}"}} 1 {s["time"]:.3f}' for s in snapshots]
    lines.append("# TYPE edgebench_monitor_rows counter")
    lines += [f'edgebench_monitor_rows_total{{{_labels(s)}}} {s["rows"]} {s["time"]:.3f}' for s in snapshots]
    lines.append("# TYPE edgebench_input_bin counter")
    for s in snapshots:
        names = s.get("features") or [str(i) for i in range(len(s["bins"]))]
        for name, row in zip(names, s["bins"], strict=True):
            feature = name.replace("\\", "\\\\").replace('"', '\\"')
            lines += [f'edgebench_input_bin_total{{{_labels(s)},feature="{feature}",bin="{b}"}} {c} {s["time"]:.3f}'
                      for b, c in enumerate(row)]
    lines.append("# EOF")
    spool_bytes = "".join(json.dumps(s, separators=(",", ":")) + "\n" for s in snapshots).encode()
    with tarfile.open(target, "w") as tar:
        for name, data in ((SPOOL, spool_bytes), ("openmetrics.txt", ("\n".join(lines) + "\n").encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return {"archive": str(target), "snapshots": len(snapshots), "rows": snapshots[-1]["rows"],
            "model": f"{snapshots[-1]['model']}:{snapshots[-1]['version']}", "bytes": target.stat().st_size}
