"""int8 variants: dynamic quantization (weights int8, activations quantized at run time), or static with
calibration rows, for models with matrix operators. The variant is stored as ``NAME-int8`` with its parity
against the float model."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..core.card import ModelCard, array
from ..core.errors import BenchError
from ..core.parity import Tolerance, compare
from ..store import Store

#: int8 changes values by design; labels must still agree on 99% of rows, values within 0.05.
INT8_TOLERANCE = Tolerance(atol=0.05, rtol=0.05, min_label_agreement=0.99)


def quantize(card: ModelCard, store: Store, method: Literal["dynamic", "static"] = "dynamic",
             rows: dict[str, np.ndarray] | None = None) -> ModelCard:
    """Quantize the stored float model; returns the stored int8 card (parity against the float model)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.calibrate import CalibrationDataReader

    from ..export import import_onnx

    source = store.model_path(card)
    graph_ops = {n.op_type for n in onnx.load(str(source)).graph.node}
    if not graph_ops & {"MatMul", "Gemm", "Conv"}:
        raise BenchError(
            f"{card.ref} has no matrix operators (it uses {sorted(graph_ops)[:6]}): int8 quantization does "
            "not apply", model=card.ref,
        )
    feeds = rows or _golden_rows(card)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "int8.onnx"
        if method == "dynamic":
            quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
        elif method == "static":

            class Rows(CalibrationDataReader):  # type: ignore[misc]
                def __init__(self) -> None:
                    n = next(iter(feeds.values())).shape[0]
                    self.items: Iterator[dict[str, Any]] = iter(
                        [{k: v[i : i + 1] for k, v in feeds.items()} for i in range(n)])

                def get_next(self) -> dict[str, Any] | None:
                    return next(self.items, None)

            quantize_static(str(source), str(target), Rows(), weight_type=QuantType.QInt8,
                            activation_type=QuantType.QUInt8)
        else:
            raise BenchError(f"unknown quantization method {method!r}: use 'dynamic' or 'static'")
        report = _parity(source, target, feeds, card)
        stored = import_onnx(target, feeds, f"{card.name}-int8", store=store, parity=report,
                             metadata={"quantized_from": card.ref, "method": method})
    return stored


def _golden_rows(card: ModelCard) -> dict[str, np.ndarray]:
    return {name: np.concatenate([array(t) for g in card.golden for t in g.inputs if t["name"] == name])
            for name in [t.name for t in card.inputs]}


def _parity(float_path: Path, int8_path: Path, feeds: dict[str, np.ndarray], card: ModelCard) -> Any:
    import onnxruntime as ort

    def run(path: Path) -> dict[str, np.ndarray]:
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds), strict=True))

    reference, got = run(float_path), run(int8_path)
    kinds = {t.name: ("values" if t.datatype.startswith("FP") else "label") for t in card.outputs}
    n = next(iter(feeds.values())).shape[0]
    return compare(reference, got, kinds, INT8_TOLERANCE, rows=n)
