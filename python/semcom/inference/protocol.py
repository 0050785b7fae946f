"""Wire format of the inference side process (no pickle anywhere).

A request or reply is a ZeroMQ multipart message:

    frame 0   protocol version, b"semcom/1"
    frame 1   JSON header (UTF-8 object)
    frame 2+  raw little-endian arrays, one frame each, described in header["arrays"]
              as {"name", "dtype", "shape"} in frame order

Request header: {"op", "id", "model"?, "receiver"?, "params"?: {...}, "arrays": [...]}.
Reply header:   {"ok": true, "id", "result"?: {...}, "arrays": [...]}
            or  {"ok": false, "id", "error": {"code", "message"}}.

`unpack` is total: whatever the frames hold, it returns or raises ProtocolError. Every
limit is checked before the work it guards (bracket depth before json.loads recurses,
sizes before numpy reshapes).
"""

import json
import math
import re

import numpy as np

VERSION = b"semcom/1"
DTYPES = {"uint8": "<u1", "float32": "<f4", "complex64": "<c8"}
MAX_HEADER_BYTES = 64 * 1024
MAX_DEPTH = 16          # JSON nesting; requests need 4, the info reply 7
MAX_ARRAYS = 8
MAX_DIMS = 4
MAX_NAME = 64           # characters in an array name
MAX_ID = 128            # characters in a string request id
MAX_INT = 2 ** 63       # JSON integers beyond 64 bits are refused

# Escapes first, then strings without escapes: two linear passes (a single string pattern
# with escapes backtracks quadratically on a header of many escaped quotes).
_ESCAPE = re.compile(rb"\\.", re.S)
_STRING = re.compile(rb'"[^"]*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


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


def json_depth(raw: bytes) -> int:
    """Deepest bracket nesting of JSON text, strings skipped (no parsing, no recursion)."""
    text = _STRING.sub(b"", _ESCAPE.sub(b"", raw))
    brackets = np.frombuffer(text.translate(None, _NOT_BRACKETS), np.uint8)
    if not brackets.size:
        return 0
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def _no_constant(name):
    raise ProtocolError("bad_json", f"header holds {name}, which is not JSON")


def _bounded_int(text):
    if len(text) > 20 or abs(int(text)) >= MAX_INT:
        raise ProtocolError("bad_json", f"header holds an integer beyond 64 bits ({text[:24]}...)")
    return int(text)


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf
        raise ProtocolError("bad_json", f"header holds {text[:24]}, beyond a float")
    return value


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_header(raw: bytes, max_depth: int = MAX_DEPTH) -> dict:
    """The JSON object of a header frame; ProtocolError for anything else."""
    if len(raw) > MAX_HEADER_BYTES:
        raise ProtocolError("bad_header", f"header over {MAX_HEADER_BYTES} bytes")
    depth = json_depth(raw)
    if depth > max_depth:
        raise ProtocolError("bad_header", f"header nested {depth} deep, more than {max_depth}")
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_no_constant,
                            parse_int=_bounded_int, parse_float=_finite_float)
    except ProtocolError:
        raise
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise ProtocolError("bad_json", f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_header", "header must be a JSON object")
    request_id = header.get("id")
    if not (request_id is None or (is_int(request_id) and abs(request_id) < MAX_INT)
            or (isinstance(request_id, str) and len(request_id) <= MAX_ID)):
        header.pop("id")  # so that the error reply does not echo it
        raise ProtocolError("bad_header", f"'id' must be null, an integer or a string of <= {MAX_ID} characters")
    return header


def _array(spec, data: bytes, max_bytes: int, seen) -> tuple:
    """(name, array) of one array spec and its frame."""
    if not isinstance(spec, dict):
        raise ProtocolError("bad_header", "each array needs a name, dtype and shape")
    name, dtype, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or name in seen:
        raise ProtocolError("bad_header", f"array names must be distinct strings of 1 to {MAX_NAME} characters")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ProtocolError("bad_dtype", f"array {name!r}: dtype {dtype!r:.40} not in {sorted(DTYPES)}")
    if (not isinstance(shape, list) or len(shape) > MAX_DIMS
            or not all(is_int(d) and 0 <= d <= max_bytes for d in shape)):
        raise ProtocolError("bad_shape", f"array {name!r}: shape must be a list of <= {MAX_DIMS} "
                                         f"sizes from 0 to {max_bytes}")
    itemsize = np.dtype(DTYPES[dtype]).itemsize
    # The sizes other than 0 must fit the byte limit too: with a 0 among them the byte count
    # below passes for any product, which numpy could not reshape.
    if math.prod(d for d in shape if d) * itemsize > max_bytes:
        raise ProtocolError("too_large", f"array {name!r}: shape {shape} exceeds the limit of {max_bytes} bytes")
    if math.prod(shape) * itemsize != len(data):
        raise ProtocolError("bad_shape", f"array {name!r}: {len(data)} bytes do not hold {dtype} {shape}")
    array = np.frombuffer(data, dtype=DTYPES[dtype]).reshape(shape)
    if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
        raise ProtocolError("not_finite", f"array {name!r} holds NaN or Inf")
    return name, array


def unpack(frames, max_bytes: int, max_depth: int = MAX_DEPTH) -> tuple:
    """(header, {name: array}) of a message; ProtocolError for anything malformed."""
    if not isinstance(frames, (list, tuple)) or len(frames) < 2:
        raise ProtocolError("not_multipart", "expected a multipart message: version, JSON header, arrays")
    if len(frames) > 2 + MAX_ARRAYS:
        raise ProtocolError("bad_header", f"{len(frames)} frames: at most {MAX_ARRAYS} arrays")
    frames = [bytes(f) for f in frames]
    total = sum(len(f) for f in frames)
    if total > max_bytes:
        raise ProtocolError("too_large", f"message of {total} bytes exceeds the limit of {max_bytes}")
    if frames[0] != VERSION:
        raise ProtocolError("bad_version", f"protocol version {frames[0][:32]!r} is not {VERSION!r}")
    header = parse_header(frames[1], max_depth)
    specs = header.get("arrays", [])
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise ProtocolError("bad_header", f"'arrays' must be a list of at most {MAX_ARRAYS}")
    if len(specs) != len(frames) - 2:
        raise ProtocolError("bad_header", f"header describes {len(specs)} arrays, message has {len(frames) - 2}")
    arrays = {}
    for spec, data in zip(specs, frames[2:]):
        name, array = _array(spec, data, max_bytes, arrays)
        arrays[name] = array
    return header, arrays


def error_reply(request_id, code: str, message: str) -> list:
    return pack({"ok": False, "id": request_id, "error": {"code": code, "message": message}})
