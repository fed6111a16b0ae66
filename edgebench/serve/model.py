"""One ONNX model behind the server: its metadata as V2 clients see it, and checked inference."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .tensors import V2_BY_ONNX

PLATFORM = "onnxruntime_onnx"


@dataclass(frozen=True)
class TensorMeta:
    name: str
    datatype: str
    shape: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


class Model:
    """An onnxruntime session with a name and version, from ``model.onnx`` (+ ``card.json``) in a folder.

    ``threads`` sets onnxruntime's intra-op pool explicitly: its default is sized from the host's physical
    cores and ignores cgroup CPU limits.
    """

    def __init__(self, onnx_path: str | Path, card: dict[str, Any] | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        start = time.perf_counter()
        card = card or {}
        self.card = card
        path = Path(onnx_path)
        self.name: str = card.get("name") or path.stem
        self.version: str = str(card.get("version", 1))
        self.sha256: str | None = card.get("sha256")  # of the ONNX file: what sites report to a health gate
        self.threads = threads
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0" if threads == 1 else "1")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [_meta(i) for i in self.session.get_inputs()]
        self.outputs = [_meta(o) for o in self.session.get_outputs()]
        self.inputs_by_name = {t.name: t for t in self.inputs}
        self.output_names = [t.name for t in self.outputs]
        self.batchable = all(t.shape[:1] == [-1] and -1 not in t.shape[1:] for t in self.inputs + self.outputs)
        self.load_seconds = time.perf_counter() - start

    @classmethod
    def from_dir(cls, folder: str | Path, threads: int = 1) -> Model:
        folder = Path(folder)
        card_path = folder / "card.json"
        card = json.loads(card_path.read_text()) if card_path.exists() else None
        return cls(folder / "model.onnx", card, threads)

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": PLATFORM,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            **({"parameters": {"sha256": self.sha256}} if self.sha256 else {}),
        }

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        names = outputs or self.output_names
        return dict(zip(names, self.session.run(names, feeds), strict=True))


def _meta(node: Any) -> TensorMeta:
    shape = [d if isinstance(d, int) and d >= 0 else -1 for d in (node.shape or [])]
    return TensorMeta(node.name, V2_BY_ONNX.get(node.type, node.type), shape)
