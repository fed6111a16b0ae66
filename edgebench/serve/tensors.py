"""Open Inference Protocol datatypes and tensors <-> numpy. Needs numpy only: the server and the model card
share this one table."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

NUMPY_BY_V2: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_,
}
V2_BY_NUMPY = {np.dtype(v).name: k for k, v in NUMPY_BY_V2.items() if k != "BYTES"}
V2_BY_ONNX = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64", "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32",
    "tensor(int64)": "INT64", "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


_V2_BY_DTYPE: dict[np.dtype[Any], str] = {}


def v2_datatype(dtype: np.dtype[Any]) -> str:
    """The V2 datatype of a numpy dtype; text and Python objects are ``BYTES``."""
    found = _V2_BY_DTYPE.get(dtype)
    if found is None:
        found = _V2_BY_DTYPE[dtype] = "BYTES" if dtype.kind in "USO" else V2_BY_NUMPY[dtype.name]
    return found


def numpy_dtype(datatype: str) -> np.dtype[Any]:
    return np.dtype(NUMPY_BY_V2[datatype])


def to_json_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    """A V2 JSON tensor: flattened row-major data, text as str."""
    datatype = v2_datatype(array.dtype)
    flat = array.reshape(-1)
    data = [x.decode() if isinstance(x, bytes) else str(x) for x in flat] if datatype == "BYTES" else flat.tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def from_json_tensor(tensor: dict[str, Any]) -> np.ndarray:
    """The numpy array of a V2 JSON tensor (``data`` flat or nested)."""
    return np.asarray(tensor["data"], dtype=numpy_dtype(tensor["datatype"])).reshape(tensor["shape"])


def to_binary(array: np.ndarray) -> bytes:
    """Raw bytes as the binary tensor extension sends them: little-endian; BYTES as 4-byte length + bytes."""
    if array.dtype.kind in "USO":
        parts = []
        for item in array.reshape(-1):
            raw = item if isinstance(item, bytes) else str(item).encode()
            parts.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def from_binary_bytes(raw: bytes, count: int) -> np.ndarray:
    """Decode ``count`` length-prefixed BYTES elements; raises ValueError when the lengths do not add up."""
    items, offset = [], 0
    for _ in range(count):
        if offset + 4 > len(raw):
            raise ValueError("BYTES data ends inside an element length")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise ValueError("BYTES element runs past the end of its data")
        items.append(raw[offset : offset + length].decode("utf-8", "replace"))
        offset += length
    if offset != len(raw):
        raise ValueError(f"BYTES data holds {len(raw) - offset} bytes after its {count} elements")
    return np.asarray(items, dtype=object)
