"""The server's binning, checked value by value against the definition of the bins."""

from __future__ import annotations

import numpy as np

from edgebench.serve.monitor import bin_rows, bins_of


def by_definition(value, feature):
    """Below the range 0; inside, 1 + how many edges are <= value; above the range k+2; missing k+3."""
    low, high = feature["range"]
    k = len(feature["edges"])
    if np.isnan(value):
        return k + 3
    if value < low:
        return 0
    if value > high:
        return k + 2
    return 1 + sum(e <= value for e in feature["edges"])


def test_numeric_and_text_bins_match_their_definition(rng):
    features = [
        {"name": "a", "input": "X", "column": 0, "kind": "numeric", "edges": [0.5, 1.0, 2.0], "range": [0.0, 3.0]},
        {"name": "b", "input": "X", "column": 2, "kind": "numeric", "edges": [], "range": [1.0, 1.0]},
        {"name": "c", "input": "Y", "column": 0, "kind": "numeric", "edges": [-1.0], "range": [-2.0, 2.0]},
        {"name": "d", "input": "T", "column": 0, "kind": "categorical", "values": ["lathe", "press"]},
    ]
    a = np.concatenate([[0.0, 0.5, 1.0, 2.0, 3.0, -0.1, 3.1, np.nan, np.inf, -np.inf], rng.uniform(-1, 4, 200)])
    n = len(a)
    x = np.column_stack([a, rng.normal(size=n), rng.choice([0.5, 1.0, 1.5, np.nan], n)]).astype(np.float32)
    y = rng.uniform(-3, 3, (n, 1))
    t = rng.choice(["lathe", "press", "mill", "", "None"], (n, 1)).astype(object)
    got = bin_rows({"features": features}, {"X": x, "Y": y, "T": t})
    width = max(bins_of(f) for f in features)
    want = np.zeros((4, width), dtype=np.int64)
    for row in range(n):
        for i, value in enumerate((x[row, 0], x[row, 2], y[row, 0])):
            want[i, by_definition(float(value), features[i])] += 1
        word = t[row, 0]
        want[3, 3 if word in ("", "None") else {"lathe": 0, "press": 1}.get(word, 2)] += 1
    assert np.array_equal(got, want)
    assert want[:, :].sum(axis=1).tolist() == [n] * 4
