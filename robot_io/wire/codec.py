"""openpi's wire format: msgpack maps whose numpy arrays travel as tagged maps, and never pickle.
Shared by the policy server (model/serve.py) and its client (robot_io/wire/remote_policy.py).

Matches `openpi_client/msgpack_numpy.py` (Physical-Intelligence/openpi, packages/openpi-client):

    array  -> {b"__ndarray__": True, b"data": <raw bytes, C order>, b"dtype": "<f4", b"shape": [d0, d1, ...]}
    scalar -> {b"__npgeneric__": True, b"data": <python number>, b"dtype": "<f4"}

(the tag keys are msgpack bin, so they decode as bytes; the dtype is numpy's `dtype.str`).
openpi's own decoder trusts what it receives; this one checks every array before building it:
only bool / int / uint / float dtypes (object, void, structured, complex, datetime and string arrays
are refused, so nothing can ever reach pickle), a shape of non-negative ints, and a byte count that
matches the shape. Any problem raises ProtocolError with a message meant for the client.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

NDARRAY_TAG = b"__ndarray__"
NPGENERIC_TAG = b"__npgeneric__"
DATA, DTYPE, SHAPE = b"data", b"dtype", b"shape"
ALLOWED_DTYPE_KINDS = ("b", "i", "u", "f")  # bool, signed int, unsigned int, float
MAX_NDIM = 32  # numpy's own limit on array dimensions


class ProtocolError(ValueError):
    """A message that is not valid openpi msgpack (or holds an array we refuse to build)."""


def packb(obj: Any) -> bytes:
    """Python/numpy values -> msgpack bytes in openpi's format; arrays of a refused dtype raise TypeError."""
    return msgpack.packb(obj, default=_encode)


def unpackb(data: bytes) -> Any:
    """msgpack bytes -> Python values with numpy arrays (read-only views on `data`); raises ProtocolError."""
    try:
        return msgpack.unpackb(data, object_hook=_decode, raw=False, strict_map_key=True)
    except ProtocolError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as err:  # ExtraData, FormatError, StackError are ValueErrors
        raise ProtocolError(f"not a valid msgpack message: {err}") from err


def _encode(obj: Any) -> dict[bytes, Any]:
    if isinstance(obj, (np.ndarray, np.generic)):
        _check_dtype(obj.dtype)
    if isinstance(obj, np.ndarray):
        return {NDARRAY_TAG: True, DATA: obj.tobytes(), DTYPE: obj.dtype.str, SHAPE: list(obj.shape)}
    if isinstance(obj, np.generic):
        return {NPGENERIC_TAG: True, DATA: obj.item(), DTYPE: obj.dtype.str}
    raise TypeError(f"cannot send a {type(obj).__name__} (only msgpack types and numpy arrays)")


def _decode(obj: dict[Any, Any]) -> Any:
    if NDARRAY_TAG in obj:
        return _decode_array(obj)
    if NPGENERIC_TAG in obj:
        return _decode_scalar(obj)
    return obj


def _decode_array(obj: dict[Any, Any]) -> np.ndarray:
    dtype = _parse_dtype(obj.get(DTYPE))
    shape = obj.get(SHAPE)
    if not isinstance(shape, (list, tuple)) or len(shape) > MAX_NDIM:
        raise ProtocolError(f"array shape must be a list of at most {MAX_NDIM} ints, got {shape!r}")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ProtocolError(f"array shape must hold non-negative ints, got {shape!r}")
    data = obj.get(DATA)
    if not isinstance(data, bytes):
        raise ProtocolError(f"array data must be msgpack bin, got {type(data).__name__}")
    expected = math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise ProtocolError(f"array of shape {list(shape)} and dtype {dtype.str} needs {expected} bytes, got {len(data)}")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _decode_scalar(obj: dict[Any, Any]) -> np.generic:
    dtype = _parse_dtype(obj.get(DTYPE))
    value = obj.get(DATA)
    if not isinstance(value, (bool, int, float)):
        raise ProtocolError(f"numpy scalar data must be a number, got {type(value).__name__}")
    try:
        return dtype.type(value)
    except (OverflowError, ValueError) as err:
        raise ProtocolError(f"numpy scalar {value!r} does not fit {dtype.str}: {err}") from err


def _parse_dtype(text: Any) -> np.dtype:
    if not isinstance(text, str):
        raise ProtocolError(f"array dtype must be a string like '<f4', got {type(text).__name__}")
    try:
        dtype = np.dtype(text)
    except (TypeError, ValueError) as err:
        raise ProtocolError(f"unknown array dtype {text!r}") from err
    _check_dtype(dtype, ProtocolError)
    return dtype


def _check_dtype(dtype: np.dtype, error: type[Exception] = TypeError) -> None:
    if dtype.kind not in ALLOWED_DTYPE_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise error(f"arrays of dtype {dtype.str!r} are refused: only bool, int, uint and float arrays travel (no pickle)")
