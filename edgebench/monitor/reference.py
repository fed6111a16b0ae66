"""The drift reference a model card carries (card version 2): fixed bins per input feature from the export sample
(deciles inside the sample's range, plus below-range, above-range and missing bins; text columns by value), the
reference counts of the held-out rows in those bins, the predicted-class distribution and a histogram of the top
probability, and PSI/JS thresholds calibrated for a few window sizes so that unshifted windows rarely alarm.

At most ``MAX_FEATURES`` features are monitored (the most variable ones); the card says how many of how many.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..serve.monitor import bin_rows, bins_of, class_counts, confidence_counts
from .stats import calibrate

MAX_FEATURES = 64
MAX_VALUES = 20  # text columns: the most frequent values get a bin each, the rest share "other"
WINDOW_SIZES = (100, 300, 1000, 3000)
CONFIDENCE_EDGES = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]
QUANTILES = np.linspace(0.1, 0.9, 9)
REFERENCE_VERSION = 1


def reference(sample: Mapping[str, np.ndarray], held_out: Mapping[str, np.ndarray] | None,
              outputs: Mapping[str, np.ndarray] | None, classes: list[Any] | None) -> dict[str, Any]:
    """Build the reference: bins from ``sample``, counts from ``held_out`` (else the sample, and the card says so),
    class and confidence counts from ``outputs`` (the exported model's answers on those same rows)."""
    candidates = []
    for name, array in sample.items():
        columns = array.reshape(array.shape[0], -1)
        for index in range(columns.shape[1]):
            column = columns[:, index]
            if column.dtype.kind in "fiub":
                values = column.astype(np.float64)
                spread = float(np.nanstd(values)) if np.isfinite(values).any() else 0.0
                candidates.append((spread, name, index, _numeric(values)))
            else:
                candidates.append((float("inf"), name, index, _categorical(column)))
    total = len(candidates)
    kept = sorted(candidates, key=lambda c: -c[0])[:MAX_FEATURES]
    kept.sort(key=lambda c: (list(sample).index(c[1]), c[2]))  # back in the model's own order
    features = []
    for _, name, index, spec in kept:
        label = name if sample[name].reshape(sample[name].shape[0], -1).shape[1] == 1 else f"{name}[{index}]"
        features.append({"name": label, "input": name, "column": index, **spec})
    counted = held_out if held_out is not None else sample
    ref: dict[str, Any] = {"version": REFERENCE_VERSION, "features": features}
    counts = bin_rows(ref, dict(counted))
    ref.update({
        "counts": counts.tolist(),
        "rows": int(next(iter(counted.values())).shape[0]),
        "counted_from": "held-out rows" if held_out is not None else "the export sample (no held-out rows given)",
        "monitored": len(features), "of": total,
        "note": (f"the {len(features)} most variable of {total} features are monitored" if total > len(features)
                 else f"all {total} features are monitored"),
    })
    if outputs is not None and classes is not None and "label" in outputs:
        ref["classes"] = {"labels": [c.item() if hasattr(c, "item") else c for c in classes]}
        ref["classes"]["counts"] = class_counts(ref, outputs["label"]).tolist()
    if outputs is not None and "probabilities" in outputs:
        ref["confidence"] = {"edges": CONFIDENCE_EDGES}
        ref["confidence"]["counts"] = confidence_counts(ref, outputs["probabilities"]).tolist()
    ref["thresholds"] = calibrate([row[:bins_of(f)] for row, f in zip(counts, features, strict=True)],
                                  WINDOW_SIZES)
    return ref


def _numeric(values: np.ndarray) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"kind": "numeric", "edges": [], "range": [0.0, 0.0]}
    edges = np.unique(np.quantile(finite, QUANTILES))
    low, high = float(finite.min()), float(finite.max())
    edges = edges[(edges > low) & (edges < high)]  # an edge at the minimum would leave an empty first bin
    return {"kind": "numeric", "edges": [float(e) for e in edges], "range": [low, high]}


def _categorical(column: np.ndarray) -> dict[str, Any]:
    values = [v.decode() if isinstance(v, bytes) else str(v) for v in column.reshape(-1)]
    common = [v for v, _ in Counter(v for v in values if v not in ("", "nan", "None")).most_common(MAX_VALUES)]
    return {"kind": "categorical", "values": sorted(common)}
