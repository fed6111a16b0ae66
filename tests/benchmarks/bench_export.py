"""Export benchmark: single-row latency of the exported ONNX model (onnxruntime, 1 thread) against
scikit-learn's predict, measured side by side in one run, and the wall time of export_model with parity.

Run from the repository root: .venv/bin/python -m tests.benchmarks.bench_export
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import onnxruntime as ort
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

import edgebench as eb
from tests.benchmarks._timing import interleaved, percentiles


def main(repeats: int = 400) -> None:
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, _ = train_test_split(x, y, test_size=0.25, random_state=0)
    models = {
        "RandomForestClassifier(100)": RandomForestClassifier(n_estimators=100, random_state=0),
        "MLPClassifier(64,)": MLPClassifier(hidden_layer_sizes=(64,), max_iter=400, random_state=0),
    }
    row64 = x_test[:1]
    row32 = row64.astype(np.float32)
    print(f"digits, single-row latency over {repeats} interleaved calls; onnxruntime {ort.__version__}, 1 thread")
    print(f"{'model':<28} {'export+parity s':>15} {'sklearn p50 ms':>15} {'onnx p50 ms':>12} {'speed-up':>9}")
    with tempfile.TemporaryDirectory() as home:
        store = eb.Store(home)
        for label, model in models.items():
            model.fit(x_train, y_train)
            start = time.perf_counter()
            card = eb.export_model(model, x_test[:200], label.split("(")[0].lower(), held_out=x_test[200:],
                                   store=store)
            export_s = time.perf_counter() - start
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            session = ort.InferenceSession(str(store.model_path(card)), options, providers=["CPUExecutionProvider"])
            times = interleaved(
                {"sklearn": lambda m=model: m.predict(row64), "onnx": lambda s=session: s.run(None, {"X": row32})},
                repeats,
            )
            sk, ox = percentiles(times["sklearn"]), percentiles(times["onnx"])
            print(f"{label:<28} {export_s:>15.2f} {sk['p50']:>15.3f} {ox['p50']:>12.3f} {sk['p50'] / ox['p50']:>8.1f}x")


if __name__ == "__main__":
    main()
