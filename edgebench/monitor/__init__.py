"""Monitor models at the sites: drift from counts in the card's bins, read from a Prometheus that scrapes the
sites, a live ``/metrics`` endpoint, or a spool a cut-off site carried back; and the loop that runs a retrain
notebook when drift persists.

Per window and feature: chi-square test of homogeneity against the reference counts (Holm-corrected across
features), PSI and Jensen-Shannon distance as effect sizes, out-of-range and missing shares; the predicted-class
and confidence distributions the same way. A feature drifts in a window when it is significant and its PSI is above
the threshold calibrated at export for that window size; an alarm needs the same feature drifting in the last two
windows. A window with fewer than five rows per bin is too small to judge: said, never an alarm.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from ..core import render
from ..core.card import ModelCard
from ..core.errors import InvalidInputError, MonitorError
from ..serve.monitor import bins_of
from ..store import Store, open_store
from . import stats
from .sources import Counts, export_spool, from_metrics, from_prometheus, from_spool, seconds

__all__ = ["DriftReport", "FeatureDrift", "WindowDrift", "export_spool", "last_report", "monitor", "on_drift"]

ALPHA = 0.05
ROWS_PER_BIN = 5
PERSIST = 2


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    p: float
    p_adjusted: float
    psi: float
    js: float
    out_of_range: float
    missing: float
    drifted: bool
    reference: list[float]  # shares per bin
    window: list[float]


@dataclass(frozen=True)
class WindowDrift:
    start: float | None
    end: float
    rows: int
    judged: bool
    reason: str
    features: list[FeatureDrift] = field(default_factory=list)
    classes: dict[str, Any] | None = None
    confidence: dict[str, Any] | None = None

    @property
    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]


@dataclass(frozen=True)
class DriftReport:
    """Drift of one model version over consecutive windows, oldest first; ``alarms`` are the features (and
    ``classes`` / ``confidence``) that drifted in the last ``PERSIST`` windows."""

    model: str
    source: str
    window_seconds: float
    windows: list[WindowDrift]
    alarms: list[str]
    thresholds: dict[str, float]
    note: str

    @property
    def drift(self) -> bool:
        return bool(self.alarms)

    def summary(self) -> str:
        last = self.windows[-1]
        if not last.judged:
            return f"{self.model}: no verdict: {last.reason}"
        if self.alarms:
            return (f"{self.model}: DRIFT in {', '.join(self.alarms)} (significant and above the calibrated effect "
                    f"in the last {PERSIST} windows)")
        seen = last.drifted
        return f"{self.model}: no drift" + (f" (one window only: {', '.join(seen)})" if seen else "")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drift": self.drift, "summary": self.summary()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftReport:
        """The report as ``to_dict`` wrote it (as the store keeps it)."""
        windows = [WindowDrift(**{**w, "features": [FeatureDrift(**f) for f in w["features"]]})
                   for w in data["windows"]]
        return cls(data["model"], data["source"], data["window_seconds"], windows, data["alarms"],
                   data["thresholds"], data["note"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def _repr_html_(self) -> str:
        return self.html()

    def html(self) -> str:
        """The report with a chart per drifted feature (reference vs window shares per bin), theme-aware."""
        last = self.windows[-1]
        rows = [(f.name, f"{f.p_adjusted:.2g}", f"{f.psi:.3f}", f"{f.js:.3f}", f"{f.out_of_range:.1%}",
                 f"{f.missing:.1%}", "drift" if f.drifted else "-")
                for f in sorted(last.features, key=lambda f: -f.psi)[:12]]
        charts = "".join(_chart(f) for f in last.features if f.name in self.alarms or f.drifted)
        verdict = render.verdict(not self.drift, "drift" if self.drift else "no drift") if last.judged else \
            render.verdict(None)
        return (f"<div class='eb-drift'><p>{verdict} {escape(self.summary())}</p>"
                f"<p>{len(self.windows)} window(s) of {self.window_seconds:g} s from {escape(self.source)}; last "
                f"window {last.rows} rows; thresholds for that size: PSI {self.thresholds.get('psi', 0):.3f}</p>"
                + render.table(["feature", "p (Holm)", "PSI", "JS", "out of range", "missing", ""], rows)
                + charts + f"<p>{escape(self.note)}</p></div>")


def _chart(feature: FeatureDrift, width: int = 320, height: int = 80) -> str:
    """Bars of reference and window shares per bin, in SVG, colored by the notebook's theme variables."""
    n = len(feature.reference)
    step = width / max(n, 1)
    top = max(max(feature.reference), max(feature.window), 1e-9)
    bars = []
    for i, (r, w) in enumerate(zip(feature.reference, feature.window, strict=True)):
        x = i * step
        for k, (value, color) in enumerate(((r, "var(--jp-brand-color1, #1976d2)"),
                                            (w, "var(--jp-warn-color1, #f57c00)"))):
            h = value / top * (height - 12)
            bars.append(f'<rect x="{x + k * step / 2:.1f}" y="{height - h:.1f}" width="{step / 2 - 1:.1f}" '
                        f'height="{h:.1f}" fill="{color}"><title>bin {i}: {value:.1%}</title></rect>')
    return (f'<figure style="margin:4px 0"><svg width="{width}" height="{height}" role="img" '
            f'aria-label="{escape(feature.name)}: reference and window shares per bin">{"".join(bars)}</svg>'
            f"<figcaption style='color:var(--jp-ui-font-color1, inherit)'>{escape(feature.name)}: reference "
            f"(blue) and window (orange), PSI {feature.psi:.3f}</figcaption></figure>")


def monitor(model: str, source: str | os.PathLike[str], *, window: str | float = "1h", windows: int = PERSIST,
            store: Store | str | None = None) -> DriftReport:
    """Judge drift of ``model`` (NAME or NAME:VERSION) from ``source``: ``http(s)://...`` (a Prometheus, or a
    server's ``/metrics`` when the URL ends so), or a spool (``spool.jsonl``, its folder, or an export .tar).
    The report is stored with the model version (step ``monitor``)."""
    store = open_store(store)
    card = store.get(model)
    if card.monitoring is None:
        raise MonitorError(f"{card.ref} has no drift reference (its card is version {card.card_version}, from "
                           "before monitoring): export the model again with held-out rows (eb.export_model(..., "
                           "held_out=X_holdout)) and deploy that version", model=card.ref)
    span = seconds(window)
    if isinstance(windows, bool) or not isinstance(windows, int) or windows < 1:
        raise InvalidInputError(f"windows must be a whole number >= 1, got {windows!r}")
    text = str(source)
    if text.startswith(("http://", "https://")):
        counts = from_metrics(text, card) if text.rstrip("/").endswith("/metrics") else \
            from_prometheus(text, card, span, windows)
    else:
        counts = from_spool(text, card, span, windows)
    report = judge(card, counts, text, span)
    store.record_run("monitor", card.name, card.version, {"source": text, "window": span, "windows": windows},
                     "drift" if report.drift else "passed", report.to_dict())
    return report


def judge(card: ModelCard, windows: list[Counts], source: str, span: float) -> DriftReport:
    """The statistics of each window against the card's reference, and the alarms."""
    assert card.monitoring is not None
    ref = card.monitoring
    judged = [_window(ref, w) for w in windows]
    persist = judged[-PERSIST:]
    alarms = []
    if len(persist) == PERSIST and all(w.judged for w in persist):
        names = [f.name for f in persist[-1].features]
        alarms = [n for n in names if all(n in w.drifted for w in persist)]
        for part in ("classes", "confidence"):
            if all((getattr(w, part) or {}).get("drifted") for w in persist):
                alarms.append(part)
    last_rows = judged[-1].rows
    note = (f"{ref['note']}; reference counted from {ref['counted_from']} ({ref['rows']} rows)"
            + ("" if len(judged) >= PERSIST else f"; an alarm needs {PERSIST} windows, this source gave "
               f"{len(judged)}"))
    return DriftReport(card.ref, source, span, judged, alarms, stats.threshold(ref["thresholds"], max(last_rows, 1)),
                       note)


def _window(ref: dict[str, Any], counts: Counts) -> WindowDrift:
    features = ref["features"]
    widest = max(bins_of(f) for f in features)
    if counts.rows < ROWS_PER_BIN * min(widest, 13):
        return WindowDrift(counts.start, counts.end, counts.rows, False,
                           f"{counts.rows} rows in the window: too few to judge (at least "
                           f"{ROWS_PER_BIN * min(widest, 13)}, {ROWS_PER_BIN} per bin)")
    limit = stats.threshold(ref["thresholds"], counts.rows)
    reference = np.asarray(ref["counts"], dtype=np.float64)
    results = []
    for i, feature in enumerate(features):
        width = bins_of(feature)
        r, w = reference[i, :width], counts.bins[i, :width].astype(np.float64)
        _, p, _ = stats.chi_square(r, w)
        results.append((feature, r, w, p))
    adjusted = stats.holm(np.array([p for *_, p in results]))
    found = []
    for (feature, r, w, p), p_adj in zip(results, adjusted, strict=True):
        psi, js = float(stats.psi(r, w)), float(stats.js_distance(r, w))
        total = max(w.sum(), 1.0)
        categorical = feature["kind"] == "categorical"
        out = float(w[-2] / total) if categorical else float((w[0] + w[-2]) / total)  # "other", or outside
        missing = float(w[-1] / total)
        found.append(FeatureDrift(feature["name"], float(p), float(p_adj), psi, js, out, missing,
                                  bool(p_adj < ALPHA and psi > limit["psi"]),
                                  (r / max(r.sum(), 1.0)).round(4).tolist(), (w / total).round(4).tolist()))
    return WindowDrift(counts.start, counts.end, counts.rows, True, "judged", found,
                       _distribution(ref.get("classes"), counts.classes, limit),
                       _distribution(ref.get("confidence"), counts.confidence, limit))


def _distribution(reference: dict[str, Any] | None, window: np.ndarray | None, limit: dict[str, float]
                  ) -> dict[str, Any] | None:
    if reference is None or window is None or window.sum() == 0:
        return None
    r = np.asarray(reference["counts"], dtype=np.float64)
    w = np.asarray(window, dtype=np.float64)[: len(r)]
    _, p, _ = stats.chi_square(r, w)
    psi = float(stats.psi(r, w))
    return {"p": p, "psi": psi, "drifted": bool(p < ALPHA and psi > limit["psi"]),
            "reference": (r / max(r.sum(), 1.0)).round(4).tolist(), "window": (w / w.sum()).round(4).tolist()}


def last_report(name: str, store: Store | str | None = None) -> DriftReport | None:
    """The newest drift report stored for model ``name`` (any version), or None."""
    found = open_store(store).runs(name.partition(":")[0], step="monitor", limit=1)
    return DriftReport.from_dict(found[0].outputs) if found and found[0].outputs else None


# -- the loop ------------------------------------------------------------------------------------------------


def on_drift(report: DriftReport, notebook: str | os.PathLike[str], *, output_dir: str | os.PathLike[str] | None = None,
             parameters: dict[str, Any] | None = None, store: Store | str | None = None) -> Any:
    """Run ``notebook`` headless (papermill) with the drift report and window as parameters. What it trains goes
    through the usual gates inside the notebook; a failing notebook raises NotebookError with its report kept."""
    from ..runs import run_notebook

    store = open_store(store)
    folder = Path(output_dir) if output_dir else store.home / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-drift"
    folder.mkdir(parents=True, exist_ok=True)
    saved = folder / "drift-report.json"
    saved.write_text(report.to_json())
    params = {"model": report.model.partition(":")[0], "drift_report": str(saved),
              "window": f"{report.window_seconds:g}s", **(parameters or {})}
    return run_notebook(notebook, params, output_dir=folder, store=store)
