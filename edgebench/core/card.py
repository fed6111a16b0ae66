"""The model card: everything later steps need to know about a stored model, as plain JSON.

Tensors are described with the Open Inference Protocol's datatypes (``FP32``, ``INT64``, ``BYTES``...) and
shapes with ``-1`` for a variable dimension, so that a card can be compared directly with what an inference
server reports. Golden samples are V2 tensors too: a test can send ``golden[i].inputs`` unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from html import escape
from typing import Any

from ..serve.tensors import from_json_tensor as array
from ..serve.tensors import to_json_tensor as tensor
from ..serve.tensors import v2_datatype
from . import render
from .parity import ParityReport

__all__ = ["CARD_VERSION", "GoldenSample", "ModelCard", "TensorSpec", "array", "tensor", "v2_datatype"]

#: 2 adds ``monitoring`` (the drift reference); cards of version 1 still load, with no reference.
CARD_VERSION = 2


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: list[int]


@dataclass(frozen=True)
class GoldenSample:
    """Inputs with the outputs the exported model gave for them on the host (V2 tensors)."""

    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]


@dataclass(frozen=True)
class ModelCard:
    """A stored model version. ``parity`` is None for ONNX files imported without their original model."""

    name: str
    version: int
    sha256: str
    created: str
    source: str
    estimator: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opset: dict[str, int]
    versions: dict[str, str]
    size_bytes: int
    parity: ParityReport | None
    golden: list[GoldenSample]
    metadata: dict[str, Any] = field(default_factory=dict)
    card_version: int = CARD_VERSION
    monitoring: dict[str, Any] | None = None  # drift reference (edgebench.monitor.reference); None before v2

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def with_version(self, version: int) -> ModelCard:
        return replace(self, version=version)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        fields = dict(data)
        fields["inputs"] = [TensorSpec(**t) for t in data["inputs"]]
        fields["outputs"] = [TensorSpec(**t) for t in data["outputs"]]
        fields["parity"] = ParityReport.from_dict(data["parity"]) if data.get("parity") else None
        fields["golden"] = [GoldenSample(**g) for g in data["golden"]]
        return cls(**fields)

    def _repr_html_(self) -> str:
        specs = [("input", t.name, t.datatype, t.shape) for t in self.inputs]
        specs += [("output", t.name, t.datatype, t.shape) for t in self.outputs]
        parity = self.parity._repr_html_() if self.parity else "<p>Parity: not checked (imported ONNX)</p>"
        opsets = ", ".join(f"{k} {v}" for k, v in sorted(self.opset.items()))
        return (
            f"<div><h4>{escape(self.ref)}</h4><p>{escape(self.estimator)}, {self.size_bytes / 1024:.1f} KiB, "
            f"needs opsets {escape(opsets)}, sha256 <code>{self.sha256[:12]}</code></p>"
            + render.table(["", "name", "datatype", "shape"], specs)
            + parity
            + (f"<p>Drift reference: {escape(self.monitoring['note'])}, counted from "
               f"{escape(self.monitoring['counted_from'])}</p>" if self.monitoring else
               "<p>No drift reference (a card from before version 2: export again to monitor it)</p>")
            + "</div>"
        )
