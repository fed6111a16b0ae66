"""Parity: how far the ONNX model's outputs are from the original model's, and whether that is acceptable.

Two kinds of output are compared. *Label* outputs (class labels, inlier/outlier flags) must be equal: the report
gives the share of rows that agree. *Value* outputs (probabilities, regression values, scores) are compared with
``numpy.isclose`` semantics: a row passes when ``|onnx - reference| <= atol + rtol * |reference|``.

ONNX models from scikit-learn compute in float32 where scikit-learn uses float64, so a row that sits on a
decision boundary (two classes with almost equal probability, a score near zero, a tie of tree votes) can change
label. Such rows are counted as *float32 rows* and reported, never hidden; the default tolerance does not forgive
them, the user decides (``Tolerance(min_label_agreement=0.99)`` or ``allow_mismatch=True``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from html import escape
from typing import Any, Literal

import numpy as np

from . import render

OutputKind = Literal["label", "values"]

#: A decision margin (top-two probability gap, or |score|) this small is within float32 rounding of the boundary.
FLOAT32_MARGIN = 1e-5


@dataclass(frozen=True)
class Tolerance:
    """Parity tolerances. Defaults: ``atol=1e-4``, ``rtol=1e-3`` on values, every label equal."""

    atol: float = 1e-4
    rtol: float = 1e-3
    min_label_agreement: float = 1.0

    def __post_init__(self) -> None:
        from .numbers import number

        for key in ("atol", "rtol"):
            number(getattr(self, key), f"tolerance {key}", at_least=0)
        number(self.min_label_agreement, "tolerance min_label_agreement", at_least=0, at_most=1)


@dataclass(frozen=True)
class OutputParity:
    """Parity of one output over all compared rows."""

    name: str
    kind: OutputKind
    passed: bool
    mismatched_rows: int
    label_agreement: float | None = None
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    worst_row: int | None = None
    mismatch_rows_sample: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ParityReport:
    """Outcome of comparing the ONNX model with the model it came from.

    ``rows`` counts the sample rows and ``held_out_rows`` the extra rows; row indices count the sample first,
    then the held-out rows. ``float32_rows`` counts label mismatches on rows whose decision margin in the
    original model is below :data:`FLOAT32_MARGIN`: rows that float32 rounding decides.
    """

    rows: int
    held_out_rows: int
    outputs: list[OutputParity]
    tolerance: Tolerance
    passed: bool
    float32_rows: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def label_agreement(self) -> float | None:
        values = [o.label_agreement for o in self.outputs if o.label_agreement is not None]
        return min(values) if values else None

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    def summary(self) -> str:
        parts = [f"parity {self.verdict} on {self.rows + self.held_out_rows} rows"]
        for o in self.outputs:
            if o.kind == "label":
                parts.append(f"{o.name}: {o.label_agreement:.2%} agree")
            else:
                parts.append(f"{o.name}: max abs diff {o.max_abs_diff:.3g}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParityReport:
        return cls(
            rows=data["rows"],
            held_out_rows=data["held_out_rows"],
            outputs=[OutputParity(**o) for o in data["outputs"]],
            tolerance=Tolerance(**data["tolerance"]),
            passed=data["passed"],
            float32_rows=data.get("float32_rows", 0),
            notes=list(data.get("notes", [])),
        )

    def _repr_html_(self) -> str:
        def show(value: float | None, percent: bool = False) -> str:
            return "-" if value is None else f"{value:.2%}" if percent else f"{value:.3g}"

        rows = [
            (o.name, o.kind, show(o.label_agreement, percent=True), show(o.max_abs_diff), show(o.max_rel_diff),
             "-" if o.worst_row is None else o.worst_row, o.mismatched_rows, "pass" if o.passed else "fail")
            for o in self.outputs
        ]
        notes = "".join(f"<li>{escape(n)}</li>" for n in self.notes)
        t = self.tolerance
        return (
            f"<div><p>Parity {render.verdict(self.passed)} on {self.rows} sample rows and {self.held_out_rows} "
            f"held-out rows (atol {t.atol:g}, rtol {t.rtol:g}, labels {t.min_label_agreement:.0%})</p>"
            + render.table(
                ["output", "kind", "label agreement", "max abs diff", "max rel diff", "worst row", "mismatches",
                 "verdict"],
                rows,
            )
            + (f"<ul>{notes}</ul>" if notes else "")
            + "</div>"
        )


def compare(
    reference: dict[str, np.ndarray],
    onnx: dict[str, np.ndarray],
    kinds: dict[str, OutputKind],
    tolerance: Tolerance,
    *,
    rows: int,
    held_out_rows: int = 0,
    margins: dict[str, np.ndarray] | None = None,
) -> ParityReport:
    """Compare outputs name by name; ``reference`` and ``onnx`` hold one array per output, rows first.

    ``margins`` gives, per label output, each row's decision margin in the original model (gap between the
    two most likely classes, or the absolute score), used to recognise float32 boundary effects.
    """
    results: list[OutputParity] = []
    float32_rows = 0
    notes: list[str] = []
    for name, kind in kinds.items():
        ref = np.asarray(reference[name])
        got = np.asarray(onnx[name]).reshape(ref.shape) if np.size(onnx[name]) == ref.size else onnx[name]
        if got.shape != ref.shape:
            results.append(OutputParity(name, kind, False, ref.shape[0] if ref.ndim else 1))
            notes.append(f"output {name!r} has shape {got.shape} in ONNX but {ref.shape} in the original model")
            continue
        n = ref.shape[0] if ref.ndim else 1
        if kind == "label":
            equal = (ref == got).reshape(n, -1).all(axis=1)
            bad = np.flatnonzero(~equal)
            agreement = float(equal.mean()) if n else 1.0
            if margins is not None and name in margins and bad.size:
                explained = int((np.asarray(margins[name]).reshape(-1)[bad] <= FLOAT32_MARGIN).sum())
                float32_rows += explained
                if explained:
                    notes.append(
                        f"{explained} of {bad.size} rows where {name!r} differs lie within {FLOAT32_MARGIN:g} of "
                        "the original model's decision boundary: float32 rounding in ONNX decides them"
                    )
            results.append(
                OutputParity(
                    name, kind, agreement >= tolerance.min_label_agreement, int(bad.size),
                    label_agreement=agreement,
                    worst_row=int(bad[0]) if bad.size else None,
                    mismatch_rows_sample=[int(i) for i in bad[:10]],
                )
            )
        else:
            ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
            diff = np.abs(got64 - ref64).reshape(n, -1)
            rel = diff / np.maximum(np.abs(ref64).reshape(n, -1), np.finfo(np.float32).tiny)
            within = diff <= tolerance.atol + tolerance.rtol * np.abs(ref64).reshape(n, -1)
            bad = np.flatnonzero(~within.all(axis=1))
            per_row = diff.max(axis=1) if diff.size else np.zeros(n)
            results.append(
                OutputParity(
                    name, kind, bad.size == 0, int(bad.size),
                    max_abs_diff=float(diff.max()) if diff.size else 0.0,
                    max_rel_diff=float(rel.max()) if rel.size else 0.0,
                    worst_row=int(np.argmax(per_row)) if n else None,
                    mismatch_rows_sample=[int(i) for i in bad[:10]],
                )
            )
    return ParityReport(
        rows=rows,
        held_out_rows=held_out_rows,
        outputs=results,
        tolerance=tolerance,
        passed=all(r.passed for r in results),
        float32_rows=float32_rows,
        notes=notes,
    )
