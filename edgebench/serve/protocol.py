"""Inference requests and responses of the Open Inference Protocol, JSON and the binary tensor extension.

Every problem with a request raises :class:`RequestError` with the HTTP status and a message that names the
input, the value and what was expected, so that a user can fix the request.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .model import Model, TensorMeta
from .tensors import NUMPY_BY_V2, from_binary_bytes, numpy_dtype, to_binary, to_json_tensor

HEADER_LENGTH = "inference-header-content-length"


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class InferRequest:
    id: str | None
    feeds: dict[str, np.ndarray]
    outputs: list[str] | None
    binary_outputs: set[str] = field(default_factory=set)

    @property
    def rows(self) -> int:
        return int(next(iter(self.feeds.values())).shape[0]) if self.feeds else 0


def decode(body: bytes, header_length: str | None, model: Model) -> InferRequest:
    """Parse and check an inference request against the model's inputs and outputs."""
    if header_length is not None:
        try:
            split = int(header_length)
        except ValueError:
            raise RequestError(
                400, f"Inference-Header-Content-Length must be a number, got {header_length!r}"
            ) from None
        if not 0 < split <= len(body):
            raise RequestError(
                400, f"Inference-Header-Content-Length is {split} but the body has only {len(body)} bytes"
            )
        head, binary = body[:split], memoryview(body)[split:]
    else:
        head, binary = body, memoryview(b"")
    try:
        request = json.loads(head)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise RequestError(400, "request body nests too deeply to parse: send tensors as flat data lists") from None
    if not isinstance(request, dict):
        raise RequestError(400, "request body must be a JSON object with an 'inputs' list")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError(400, "request needs a non-empty 'inputs' list")
    feeds: dict[str, np.ndarray] = {}
    offset = 0
    for item in inputs:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise RequestError(400, "each input must be an object with a 'name'")
        meta = model.inputs_by_name.get(item["name"])
        if meta is None:
            raise RequestError(
                400, f"unknown input {item['name']!r}; model {model.name!r} takes {sorted(model.inputs_by_name)}"
            )
        if meta.name in feeds:
            raise RequestError(400, f"input {meta.name!r} is given twice")
        array, offset = _input(item, meta, binary, offset)
        feeds[meta.name] = array
    if offset != len(binary):
        raise RequestError(
            400, f"binary data is {len(binary)} bytes but the inputs' binary_data_size add up to {offset}"
        )
    missing = [name for name in model.inputs_by_name if name not in feeds]
    if missing:
        raise RequestError(400, f"missing input {missing}; model {model.name!r} takes {sorted(model.inputs_by_name)}")
    rows = {a.shape[0] for a in feeds.values() if a.ndim}
    if len(rows) > 1:
        raise RequestError(400, f"inputs have different numbers of rows: {sorted(rows)}")
    outputs, binary_outputs = _outputs(request, model)
    request_id = request.get("id")
    return InferRequest(str(request_id) if request_id is not None else None, feeds, outputs, binary_outputs)


def _input(item: dict[str, Any], meta: TensorMeta, binary: memoryview, offset: int) -> tuple[np.ndarray, int]:
    name, datatype, shape = meta.name, item.get("datatype"), item.get("shape")
    if datatype not in NUMPY_BY_V2:
        raise RequestError(400, f"input {name!r} has datatype {datatype!r}; the model takes {meta.datatype}")
    if datatype != meta.datatype:
        raise RequestError(400, f"input {name!r} has datatype {datatype}; the model takes {meta.datatype}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise RequestError(400, f"input {name!r} needs a 'shape' list of whole numbers >= 0, got {shape!r}")
    if len(shape) != len(meta.shape) or any(m not in (-1, d) for m, d in zip(meta.shape, shape, strict=True)):
        raise RequestError(400, f"input {name!r} has shape {shape}; the model takes {meta.shape} (-1: any size)")
    count = math.prod(shape)
    params = item.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise RequestError(
                400, f"input {name!r} has binary_data_size {size!r} but only {len(binary) - offset} binary bytes "
                "are left in the body",
            )
        raw = bytes(binary[offset : offset + size])
        offset += size
        if datatype == "BYTES":
            try:
                flat = from_binary_bytes(raw, count)
            except ValueError as exc:
                raise RequestError(400, f"input {name!r}: {exc}") from None
        else:
            dtype = numpy_dtype(datatype).newbyteorder("<")
            if size != count * dtype.itemsize:
                raise RequestError(
                    400, f"input {name!r} has shape {shape} ({count} x {datatype}, {count * dtype.itemsize} bytes) "
                    f"but binary_data_size {size}",
                )
            flat = np.frombuffer(raw, dtype=dtype)
    else:
        if "data" not in item:
            raise RequestError(400, f"input {name!r} has neither 'data' nor parameters.binary_data_size")
        flat = _json_data(name, datatype, item["data"])
        if flat.size != count:
            raise RequestError(400, f"input {name!r} has {flat.size} values but shape {shape} needs {count}")
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        bad = flat[~np.isfinite(flat)][0]
        raise RequestError(400, f"input {name!r} holds {bad}; the model takes finite numbers only")
    return flat.reshape(shape), offset


def _json_data(name: str, datatype: str, data: Any) -> np.ndarray:
    if not isinstance(data, list):
        raise RequestError(400, f"input {name!r} 'data' must be a list, got {type(data).__name__}")
    try:
        if datatype == "BYTES":
            flat = np.asarray(data, dtype=object).reshape(-1)
            if not all(isinstance(x, str) for x in flat):
                raise ValueError("BYTES data must hold strings")
            return flat
        raw = np.asarray(data)
        if raw.dtype.kind not in "biuf":
            raise ValueError(f"{datatype} data must hold numbers")
        dtype = numpy_dtype(datatype)
        if raw.dtype.kind == "f" and dtype.kind in "iub" and raw.size and np.any(raw != np.round(raw)):
            raise ValueError(f"{datatype} data must hold whole numbers")
        return raw.astype(dtype).reshape(-1)
    except RecursionError:
        raise RequestError(400, f"input {name!r} 'data' nests too deeply: send a flat list") from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise RequestError(
            400, f"input {name!r} has data that is not a flat or nested list of {datatype}: {exc}"
        ) from None


def _outputs(request: dict[str, Any], model: Model) -> tuple[list[str] | None, set[str]]:
    params = request.get("parameters") or {}
    all_binary = isinstance(params, dict) and params.get("binary_data_output") is True
    asked = request.get("outputs")
    if asked is None:
        return None, set(model.output_names) if all_binary else set()
    if not isinstance(asked, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in asked):
        raise RequestError(400, "'outputs' must be a list of objects with a 'name'")
    names, binary = [], set()
    for o in asked:
        if o["name"] not in model.output_names:
            raise RequestError(400, f"unknown output {o['name']!r}; model {model.name!r} has {model.output_names}")
        names.append(o["name"])
        output_params = o.get("parameters") or {}
        if all_binary or (isinstance(output_params, dict) and output_params.get("binary_data") is True):
            binary.add(o["name"])
    return names, binary


def encode(model: Model, request: InferRequest, results: dict[str, np.ndarray]) -> tuple[bytes, dict[str, str]]:
    """The response body and extra headers; binary outputs follow the JSON header."""
    outputs, blobs = [], []
    for name, array in results.items():
        if name in request.binary_outputs:
            raw = to_binary(array)
            blobs.append(raw)
            meta = to_json_tensor(name, array[:0])
            del meta["data"]
            meta["shape"] = list(array.shape)
            meta["parameters"] = {"binary_data_size": len(raw)}
            outputs.append(meta)
        else:
            outputs.append(to_json_tensor(name, array))
    response: dict[str, Any] = {"model_name": model.name, "model_version": model.version, "outputs": outputs}
    if request.id is not None:
        response["id"] = request.id
    head = json.dumps(response, separators=(",", ":")).encode()
    if not blobs:
        return head, {}
    return head + b"".join(blobs), {"Inference-Header-Content-Length": str(len(head))}
