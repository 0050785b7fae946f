"""Wire format of the inference side process (no pickle anywhere).

A request or reply is a ZeroMQ multipart message:

    frame 0   protocol version, b"semcom/1"
    frame 1   JSON header (UTF-8 object)
    frame 2+  raw little-endian arrays, one frame each, described in header["arrays"]
              as {"name", "dtype", "shape"} in frame order

Request header: {"op", "id", "model"?, "receiver"?, "params"?: {...}, "arrays": [...]}.
Reply header:   {"ok": true, "id", "result"?: {...}, "arrays": [...]}
            or  {"ok": false, "id", "error": {"code", "message"}}.
"""

import json
import math

import numpy as np

VERSION = b"semcom/1"
DTYPES = {"uint8": "<u1", "float32": "<f4", "complex64": "<c8"}
MAX_HEADER_BYTES = 64 * 1024
MAX_ARRAYS = 8
MAX_DIMS = 4


class ProtocolError(ValueError):
    """A malformed message; `code` is the machine-readable reason."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def pack(header: dict, arrays=()) -> list:
    """Frames of a message: version, JSON header (with "arrays" filled in), array bytes."""
    header = dict(header)
    header["arrays"] = []
    frames = []
    for name, array in arrays:
        array = np.asarray(array)
        dtype = next((k for k, v in DTYPES.items() if np.dtype(v) == array.dtype.newbyteorder("<")), None)
        if dtype is None:
            raise ValueError(f"array {name!r}: dtype {array.dtype} cannot be sent")
        header["arrays"].append({"name": name, "dtype": dtype, "shape": list(array.shape)})
        frames.append(np.ascontiguousarray(array, dtype=DTYPES[dtype]).tobytes())
    return [VERSION, json.dumps(header).encode()] + frames


def unpack(frames, max_bytes: int) -> tuple:
    """(header, {name: array}) of a message; ProtocolError for anything malformed."""
    if not isinstance(frames, (list, tuple)) or len(frames) < 2:
        raise ProtocolError("not_multipart", "expected a multipart message: version, JSON header, arrays")
    frames = [bytes(f) for f in frames]
    total = sum(len(f) for f in frames)
    if total > max_bytes:
        raise ProtocolError("too_large", f"message of {total} bytes exceeds the limit of {max_bytes}")
    if frames[0] != VERSION:
        raise ProtocolError("bad_version", f"protocol version {frames[0][:32]!r} is not {VERSION!r}")
    if len(frames[1]) > MAX_HEADER_BYTES:
        raise ProtocolError("bad_header", f"header over {MAX_HEADER_BYTES} bytes")
    try:
        header = json.loads(frames[1].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError("bad_json", f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_header", "header must be a JSON object")
    specs = header.get("arrays", [])
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise ProtocolError("bad_header", f"'arrays' must be a list of at most {MAX_ARRAYS}")
    if len(specs) != len(frames) - 2:
        raise ProtocolError("bad_header", f"header describes {len(specs)} arrays, message has {len(frames) - 2}")
    arrays = {}
    for spec, data in zip(specs, frames[2:]):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ProtocolError("bad_header", "each array needs a name, dtype and shape")
        name, dtype, shape = spec["name"], spec.get("dtype"), spec.get("shape")
        if dtype not in DTYPES:
            raise ProtocolError("bad_dtype", f"array {name!r}: dtype {dtype!r} not in {sorted(DTYPES)}")
        if (not isinstance(shape, list) or len(shape) > MAX_DIMS
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
            raise ProtocolError("bad_shape", f"array {name!r}: shape must be a list of <= {MAX_DIMS} sizes >= 0")
        itemsize = np.dtype(DTYPES[dtype]).itemsize
        if math.prod(shape) * itemsize != len(data):
            raise ProtocolError("bad_shape", f"array {name!r}: {len(data)} bytes do not hold {dtype} {shape}")
        array = np.frombuffer(data, dtype=DTYPES[dtype]).reshape(shape)
        if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            raise ProtocolError("not_finite", f"array {name!r} holds NaN or Inf")
        arrays[name] = array
    return header, arrays


def error_reply(request_id, code: str, message: str) -> list:
    return pack({"ok": False, "id": request_id, "error": {"code": code, "message": message}})
