"""Export: a fitted scikit-learn model, or an ONNX file made elsewhere, becomes a stored model with a card.

``export_model`` reads like its steps: check the estimator, prepare the sample, convert with skl2onnx, run
both models, compare (parity), build the card, store it. Nothing is stored unless every step succeeds (or the
user allows a parity mismatch); a failed parity is still recorded as a step run with its report.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .core.card import GoldenSample, ModelCard, TensorSpec, tensor, v2_datatype
from .core.errors import ExportError, InvalidInputError, ParityError, SampleError, first_line
from .core.names import validate_name
from .core.parity import OutputKind, ParityReport, Tolerance, compare
from .monitor.reference import reference as drift_reference
from .ortsession import session
from .serve.tensors import V2_BY_ONNX, numpy_dtype
from .store import Store, now, open_store

#: Opsets written into every exported model: ONNX 17 runs on onnxruntime >= 1.12 (2022), which covers the
#: runtimes found on Raspberry Pi OS and JetPack 5; ``ai.onnx.ml`` 3 is the tree-ensemble operator set of
#: the same releases.
DEFAULT_OPSET: dict[str, int] = {"": 17, "ai.onnx.ml": 3}
GOLDEN_ROWS = 5
SUPPORTED = (
    "scikit-learn classifiers, regressors and outlier detectors (such as IsolationForest), and Pipelines of "
    "them with preprocessing (scalers, PCA, OneHotEncoder, ColumnTransformer) that skl2onnx can convert"
)


def export_model(
    model: Any,
    sample: Any,
    name: str,
    *,
    held_out: Any = None,
    tolerance: Tolerance | None = None,
    allow_mismatch: bool = False,
    opset: Mapping[str, int] | None = None,
    metadata: Mapping[str, Any] | None = None,
    golden_rows: int = GOLDEN_ROWS,
    store: Store | str | os.PathLike[str] | None = None,
) -> ModelCard:
    """Convert a fitted scikit-learn estimator or Pipeline to ONNX, check parity, and store it.

    Parameters
    ----------
    model : fitted estimator or Pipeline
    sample : 2-D numeric array, or a pandas DataFrame for mixed columns
        Rows used to infer the input schema, check parity and make golden samples.
    name : str
        Model name (lowercase letters, digits, ``.``, ``_``, ``-``).
    held_out : optional, same form as ``sample``
        Extra rows compared in the parity check only.
    tolerance : Tolerance, optional
        Parity tolerances; see :class:`edgebench.Tolerance` for the defaults.
    allow_mismatch : bool
        Store the model even when parity fails (the failing report is kept in the card).
    opset : dict, optional
        Target opsets by domain; default :data:`DEFAULT_OPSET`.

    Returns
    -------
    ModelCard
        The stored card. Exporting identical ONNX bytes again returns the existing version.

    Examples
    --------
    >>> card = eb.export_model(clf, X_test[:200], name="digits-rf")  # doctest: +SKIP
    >>> card.parity.verdict  # doctest: +SKIP
    'pass'
    """
    validate_name(name)
    tolerance = tolerance if tolerance is not None else Tolerance()
    if not isinstance(tolerance, Tolerance):
        raise InvalidInputError(f"tolerance must be an edgebench.Tolerance, got {type(tolerance).__name__}")
    opset = dict(opset if opset is not None else DEFAULT_OPSET)
    meta = _metadata(metadata)
    estimator = _check_estimator(model)
    rows = _prepare(sample, "sample")
    extra = _prepare(held_out, "held_out") if held_out is not None else None
    if extra is not None and extra.specs != rows.specs:
        raise SampleError(
            f"held_out has columns {extra.describe()} but the sample has {rows.describe()}",
            model=name,
        )
    both = rows.concat(extra) if extra is not None else rows
    reference, kinds = _reference_outputs(model, estimator, both)
    onnx_bytes = _convert(model, estimator, rows, opset)
    session = _session(onnx_bytes, f"the ONNX model converted from {estimator}")
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, both.feeds), strict=True))
    missing = [k for k in kinds if k not in got]
    if missing:
        raise ExportError(f"the ONNX model of {estimator} has no output {missing}; it has {list(got)}")
    report = compare(
        reference, got, kinds, tolerance,
        rows=rows.n, held_out_rows=extra.n if extra is not None else 0,
        margins=_margins(reference),
    )
    monitoring = drift_reference(rows.feeds, extra.feeds if extra else None,
                           {k: v[rows.n:] for k, v in got.items()} if extra else got,
                           getattr(_final_estimator(model), "classes_", None))
    card = _card(name, "scikit-learn", estimator, onnx_bytes, session, rows, report, meta, golden_rows, monitoring)
    store = open_store(store)
    run_inputs = {
        "estimator": estimator, "rows": rows.n, "held_out_rows": report.held_out_rows, "opset": opset,
        "tolerance": report.tolerance.__dict__, "allow_mismatch": allow_mismatch,
    }
    if not report.passed and not allow_mismatch:
        store.record_run("export", name, None, run_inputs, "failed", {"parity": report.to_dict()})
        raise ParityError(_parity_message(name, report), report, model=name)
    stored, _ = store.add_version(onnx_bytes, card)
    store.record_run(
        "export", name, stored.version, run_inputs, "passed" if report.passed else "mismatch-allowed",
        {"sha256": stored.sha256, "parity": report.to_dict()},
    )
    return stored


def import_onnx(
    path: str | os.PathLike[str],
    sample: Any,
    name: str,
    *,
    metadata: Mapping[str, Any] | None = None,
    golden_rows: int = GOLDEN_ROWS,
    parity: ParityReport | None = None,
    store: Store | str | os.PathLike[str] | None = None,
) -> ModelCard:
    """Store an ONNX file made elsewhere (PyTorch, TensorFlow...), with golden samples computed from ``sample``.

    ``sample`` is an array for a model with one input, or a dict of arrays by input name. There is no original
    model to compare with, so the card's ``parity`` is None unless a report against a reference is given (an
    int8 variant carries its parity against the float model).
    """
    validate_name(name)
    meta = _metadata(metadata)
    file = Path(os.fspath(path))
    if not file.is_file():
        raise ExportError(f"ONNX file not found: {file}", path=str(file))
    onnx_bytes = file.read_bytes()
    session = _session(onnx_bytes, str(file))
    rows = _prepare_for_session(sample, session)
    try:
        session.run(None, rows.feeds)
    except Exception as exc:
        raise SampleError(f"the sample does not run through {file.name}: {first_line(exc)}", model=name) from exc
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    producer = " ".join(x for x in (proto.producer_name, proto.producer_version) if x) or "unknown producer"
    card = _card(name, "onnx", f"ONNX from {producer}", onnx_bytes, session, rows, parity, meta, golden_rows,
                 drift_reference(rows.feeds, None, None, None))
    store = open_store(store)
    stored, _ = store.add_version(onnx_bytes, card)
    store.record_run("import", name, stored.version, {"path": str(file), "rows": rows.n}, "passed",
                     {"sha256": stored.sha256})
    return stored


# -- samples ---------------------------------------------------------------------------------------------


@dataclass
class _Rows:
    """Sample rows in both forms: what the estimator takes and what the ONNX model takes."""

    for_model: Any
    feeds: dict[str, np.ndarray]
    specs: list[TensorSpec]

    @property
    def n(self) -> int:
        return int(next(iter(self.feeds.values())).shape[0])

    def describe(self) -> str:
        return ", ".join(f"{s.name} {s.datatype}{s.shape}" for s in self.specs)

    def concat(self, other: _Rows) -> _Rows:
        if hasattr(self.for_model, "iloc"):
            import pandas as pd

            model_rows = pd.concat([self.for_model, other.for_model], ignore_index=True)
        else:
            model_rows = np.concatenate([self.for_model, other.for_model])
        feeds = {k: np.concatenate([v, other.feeds[k]]) for k, v in self.feeds.items()}
        return _Rows(model_rows, feeds, self.specs)

    def head(self, k: int) -> dict[str, np.ndarray]:
        return {name: feed[:k] for name, feed in self.feeds.items()}


def _prepare(sample: Any, label: str) -> _Rows:
    """Validate a sample for a scikit-learn model and build its ONNX inputs (float32 for every number)."""
    if sample is None:
        raise SampleError(f"{label} is missing: pass a few rows of the training data (2-D array or DataFrame)")
    if _is_dataframe(sample):
        return _prepare_frame(sample, label)
    try:
        x = np.asarray(sample)
    except Exception as exc:
        raise SampleError(f"{label} cannot be read as an array: {first_line(exc)}") from exc
    if x.dtype.kind in "USO":
        raise SampleError(
            f"{label} holds text (dtype {x.dtype}) where the model expects numbers; for mixed text and number "
            "columns pass a pandas DataFrame"
        )
    if x.dtype.kind not in "biuf":
        raise SampleError(f"{label} has dtype {x.dtype}; edgebench takes numeric samples (bool, int, float)")
    if x.ndim != 2:
        raise SampleError(
            f"{label} has shape {x.shape}; it must be 2-D (rows x features), e.g. X[:100] or x.reshape(1, -1)"
        )
    _check_rows(x.shape[0], label)
    _check_finite(x, label)
    feed = x.astype(np.float32)
    return _Rows(x, {"X": feed}, [TensorSpec("X", "FP32", [-1, x.shape[1]])])


def _prepare_frame(frame: Any, label: str) -> _Rows:
    _check_rows(len(frame), label)
    feeds: dict[str, np.ndarray] = {}
    specs = []
    for column in frame.columns:
        if not isinstance(column, str):
            raise SampleError(f"{label} column {column!r} has a non-text name; ONNX inputs need text names")
        values = frame[column].to_numpy()
        if values.dtype.kind in "biuf":
            _check_finite(values.reshape(-1, 1), f"{label} column {column!r}")
            feeds[column] = values.astype(np.float32).reshape(-1, 1)
        else:
            if frame[column].isna().any():
                row = int(np.flatnonzero(frame[column].isna().to_numpy())[0])
                raise SampleError(f"{label} column {column!r} has a missing value at row {row}")
            feeds[column] = values.astype(str).astype(object).reshape(-1, 1)
        specs.append(TensorSpec(column, v2_datatype(feeds[column].dtype), [-1, 1]))
    return _Rows(frame, feeds, specs)


def _prepare_for_session(sample: Any, session: Any) -> _Rows:
    """Match a sample to an ONNX session's inputs: names, dtypes and fixed dimensions."""
    inputs = session.get_inputs()
    expected = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs)
    if not isinstance(sample, Mapping):
        if len(inputs) != 1:
            raise SampleError(f"the model has {len(inputs)} inputs ({expected}): pass a dict of arrays by name")
        sample = {inputs[0].name: sample}
    unknown = sorted(set(sample) - {i.name for i in inputs})
    missing = [i.name for i in inputs if i.name not in sample]
    if unknown or missing:
        raise SampleError(f"sample inputs {sorted(sample)} do not match the model's inputs ({expected})")
    feeds = {}
    for inp in inputs:
        if inp.type not in V2_BY_ONNX:
            raise SampleError(f"input {inp.name!r} has type {inp.type}, which edgebench cannot feed yet")
        want = numpy_dtype(V2_BY_ONNX[inp.type])
        x = np.asarray(sample[inp.name])
        if want.kind == "O":
            x = x.astype(str).astype(object)
        elif x.dtype.kind not in "biuf":
            raise SampleError(f"input {inp.name!r} expects {inp.type} but the sample holds {x.dtype}")
        else:
            _check_finite(x, f"input {inp.name!r}")
            x = x.astype(want)
        shape = [d if isinstance(d, int) else -1 for d in inp.shape]
        if x.ndim != len(shape) or any(d != -1 and d != s for d, s in zip(shape, x.shape, strict=True)):
            raise SampleError(f"input {inp.name!r} expects shape {shape} but the sample has {list(x.shape)}")
        _check_rows(x.shape[0] if x.ndim else 0, f"input {inp.name!r}")
        feeds[inp.name] = x
    specs = [TensorSpec(i.name, v2_datatype(feeds[i.name].dtype), _shape(i.shape)) for i in inputs]
    return _Rows(None, feeds, specs)


def _check_rows(n: int, label: str) -> None:
    if n == 0:
        raise SampleError(f"{label} has no rows: pass at least one row (more rows give a stronger parity check)")


def _check_finite(x: np.ndarray, label: str) -> None:
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        row, col = (int(i[0]) for i in np.nonzero(~np.isfinite(x.reshape(x.shape[0], -1)))[:2])
        value = x.reshape(x.shape[0], -1)[row, col]
        raise SampleError(
            f"{label} has {value} at row {row}, column {col}: the exported model takes finite numbers only; "
            "impute or drop such rows first"
        )


def _is_dataframe(x: Any) -> bool:
    return hasattr(x, "columns") and hasattr(x, "iloc") and hasattr(x, "dtypes")


# -- estimator -------------------------------------------------------------------------------------------


def _check_estimator(model: Any) -> str:
    """Return a short description of ``model`` once it is known to be a fitted scikit-learn estimator."""
    from sklearn.base import is_classifier, is_outlier_detector, is_regressor
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    kind = type(model).__name__
    if not hasattr(model, "fit"):
        raise ExportError(f"expected a fitted scikit-learn estimator or Pipeline, got {kind}", estimator=kind)
    if not hasattr(model, "predict"):
        raise ExportError(
            f"{_describe(model)} has no predict method (a transformer?); edgebench exports {SUPPORTED}",
            estimator=kind,
        )
    description = _describe(model)
    try:
        check_is_fitted(model)
    except NotFittedError as exc:
        raise ExportError(
            f"{description} is not fitted: call .fit(X, y) before exporting", estimator=description
        ) from exc
    except (TypeError, AttributeError):  # scikit-learn >= 1.6 needs __sklearn_tags__, which BaseEstimator gives
        raise ExportError(
            f"{description} is not a scikit-learn estimator (it does not derive from sklearn.base.BaseEstimator); "
            f"edgebench exports {SUPPORTED}", estimator=description,
        ) from None
    if not (is_classifier(model) or is_regressor(model) or is_outlier_detector(model)):
        raise ExportError(
            f"{description} is neither a classifier, a regressor nor an outlier detector; edgebench exports "
            f"{SUPPORTED}",
            estimator=description,
        )
    return description


def _describe(model: Any) -> str:
    steps = getattr(model, "steps", None)
    if steps:
        return f"{type(model).__name__}({', '.join(_describe(step) for _, step in steps)})"
    return type(model).__name__


def _final_estimator(model: Any) -> Any:
    steps = getattr(model, "steps", None)
    return _final_estimator(steps[-1][1]) if steps else model


def _reference_outputs(model: Any, estimator: str, rows: _Rows) -> tuple[dict[str, Any], dict[str, OutputKind]]:
    """Outputs of the original model, named as skl2onnx names the ONNX outputs, and how to compare each."""
    from sklearn.base import is_classifier, is_outlier_detector

    try:
        if is_classifier(model):
            ref: dict[str, Any] = {"label": model.predict(rows.for_model)}
            kinds: dict[str, OutputKind] = {"label": "label"}
            if hasattr(model, "predict_proba"):
                ref["probabilities"] = model.predict_proba(rows.for_model)
                kinds["probabilities"] = "values"
        elif is_outlier_detector(model):
            ref = {"label": model.predict(rows.for_model), "scores": model.decision_function(rows.for_model)}
            kinds = {"label": "label", "scores": "values"}
        else:
            ref = {"variable": model.predict(rows.for_model)}
            kinds = {"variable": "values"}
    except Exception as exc:
        raise SampleError(
            f"{estimator} rejected the sample: {first_line(exc)}", estimator=estimator
        ) from exc
    return ref, kinds


def _margins(reference: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per-row decision margin of the original model: top-two probability gap, or |score|."""
    if "probabilities" in reference:
        p = np.sort(np.asarray(reference["probabilities"], dtype=np.float64), axis=1)
        return {"label": p[:, -1] - p[:, -2] if p.shape[1] > 1 else np.abs(p[:, -1] - 0.5)}
    if "scores" in reference:
        return {"label": np.abs(np.asarray(reference["scores"], dtype=np.float64)).reshape(-1)}
    return {}


def _convert(model: Any, estimator: str, rows: _Rows, opset: dict[str, int]) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    initial_types = [
        (s.name, (StringTensorType if s.datatype == "BYTES" else FloatTensorType)([None, *s.shape[1:]]))
        for s in rows.specs
    ]
    final = _final_estimator(model)
    options = {id(final): {"zipmap": False}} if hasattr(final, "predict_proba") and hasattr(final, "classes_") else None
    try:
        proto = convert_sklearn(model, initial_types=initial_types, target_opset=opset, options=options)
    except Exception as exc:
        raise ExportError(
            f"cannot convert {estimator} to ONNX: {first_line(exc)} edgebench exports {SUPPORTED}",
            estimator=estimator,
        ) from exc
    proto.graph.name = type(final).__name__  # skl2onnx names graphs with a random uuid: keep bytes reproducible
    return bytes(proto.SerializeToString())


def _session(onnx_bytes: bytes, what: str) -> Any:
    try:
        return session(onnx_bytes, 1)
    except Exception as exc:
        raise ExportError(
            f"{what} is not a valid ONNX model (truncated, or not ONNX at all): {first_line(exc)}"
        ) from exc


# -- card ------------------------------------------------------------------------------------------------


def _card(
    name: str, source: str, estimator: str, onnx_bytes: bytes, session: Any, rows: _Rows,
    report: ParityReport | None, metadata: dict[str, Any], golden_rows: int,
    monitoring: dict[str, Any] | None = None,
) -> ModelCard:
    import hashlib

    import onnx

    if not isinstance(golden_rows, int) or golden_rows < 1:
        raise InvalidInputError(f"golden_rows must be a whole number >= 1, got {golden_rows!r}")
    proto = onnx.load_from_string(onnx_bytes)
    opset: dict[str, int] = {}
    for entry in proto.opset_import:
        opset[entry.domain or "ai.onnx"] = max(opset.get(entry.domain or "ai.onnx", 0), entry.version)
    head = rows.head(golden_rows)
    out_names = [o.name for o in session.get_outputs()]
    golden_outputs = dict(zip(out_names, session.run(None, head), strict=True))
    golden = [
        GoldenSample(
            inputs=[tensor(k, v[i : i + 1]) for k, v in head.items()],
            outputs=[tensor(k, v[i : i + 1]) for k, v in golden_outputs.items()],
        )
        for i in range(next(iter(head.values())).shape[0])
    ]
    outputs = [TensorSpec(o.name, V2_BY_ONNX.get(o.type, o.type), _shape(o.shape)) for o in session.get_outputs()]
    return ModelCard(
        name=name,
        version=0,
        sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        created=now(),
        source=source,
        estimator=estimator,
        inputs=list(rows.specs),
        outputs=outputs,
        opset=opset,
        versions=library_versions(),
        size_bytes=len(onnx_bytes),
        parity=report,
        golden=golden,
        metadata=metadata,
        monitoring=monitoring,
    )


def _shape(shape: Any) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in shape]


def library_versions() -> dict[str, str]:
    versions = {}
    for dist in ("edgebench", "onnx", "skl2onnx", "scikit-learn", "onnxruntime", "numpy"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def _metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        return dict(json.loads(json.dumps(dict(metadata))))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"metadata must be JSON-serialisable: {exc}") from exc


def _parity_message(name: str, report: ParityReport) -> str:
    details = []
    for o in report.outputs:
        if o.passed:
            continue
        if o.kind == "label":
            details.append(
                f"{o.name}: {o.label_agreement:.2%} of rows agree ({o.mismatched_rows} differ, first at row "
                f"{o.worst_row}; required {report.tolerance.min_label_agreement:.0%})"
            )
        else:
            details.append(
                f"{o.name}: max abs diff {o.max_abs_diff:.3g}, max rel diff {o.max_rel_diff:.3g} "
                f"(worst row {o.worst_row}; {o.mismatched_rows} rows outside atol {report.tolerance.atol:g}, "
                f"rtol {report.tolerance.rtol:g})"
            )
    details += report.notes
    return (
        f"parity failed for {name!r}: " + "; ".join(details) + ". Nothing was stored; pass allow_mismatch=True "
        "to store it anyway, or a looser edgebench.Tolerance"
    )
