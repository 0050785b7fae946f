"""Image codecs of the digital baseline (GNU Radio-free): an image -> at most `budget` bytes
-> an image, through Pillow.

- `jpeg`: baseline JPEG (Pillow/libjpeg, standard Huffman tables, 4:2:0). The receiver knows
  the image size, so everything up to the entropy-coded scan (SOI, JFIF, quantisation and
  Huffman tables, frame and scan headers, about 600 bytes at 32x32) is rebuilt there from the
  quality alone and is NOT sent: the payload is one quality byte and the scan data.
- `webp`: lossy WebP (libwebp, method 6). The RIFF and chunk headers and the VP8 key frame's
  start code and dimensions (27 bytes) are rebuilt at the receiver; the rest is sent.

`encode(image, codec, budget)` tries every quality 1-100 (an exhaustive search: the size is not
monotone in the quality) and keeps the highest whose payload fits; None where none fits.
`encode_best(image, "auto", budget)` takes, per image, the codec whose result is closer.
`decode(payload, codec, shape)` inverts it; a payload it cannot parse raises CodecError.
"""

import io
import struct
from functools import lru_cache
from typing import Optional, Tuple

import numpy as np

CODECS = ("jpeg", "webp")
CHOICES = ("auto",) + CODECS   # auto: per image, the codec whose image at the budget is closer (MSE)
QUALITIES = range(1, 101)


class CodecError(ValueError):
    """A payload that does not decode to an image of the expected shape."""


def _pil_image(image: np.ndarray):
    from PIL import Image
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"need a uint8 image (H, W, 1 or 3), got {image.dtype} {image.shape}")
    return Image.fromarray(image[..., 0] if image.shape[2] == 1 else image)


def _save(img, codec: str, quality: int) -> bytes:
    buf = io.BytesIO()
    if codec == "jpeg":
        img.save(buf, "JPEG", quality=quality, optimize=False, progressive=False, subsampling="4:2:0")
    elif codec == "webp":
        img.save(buf, "WEBP", quality=quality, method=6, lossless=False, exact=False)
    else:
        raise ValueError(f"unknown codec {codec!r} (expected one of {CODECS})")
    return buf.getvalue()


# ---- JPEG: the scan only
def _jpeg_split(data: bytes) -> Tuple[bytes, bytes]:
    """(header through the SOS segment, entropy-coded scan without EOI)."""
    sos = data.find(b"\xff\xda")
    if sos < 0 or not data.endswith(b"\xff\xd9"):
        raise CodecError("not a baseline JPEG stream")
    (length,) = struct.unpack(">H", data[sos + 2:sos + 4])
    return data[:sos + 2 + length], data[sos + 2 + length:-2]


@lru_cache(maxsize=512)
def _jpeg_header(shape: Tuple[int, int, int], quality: int) -> bytes:
    """The header Pillow writes for any image of this shape and quality (the tables depend on
    the quality only; the frame header on the shape)."""
    return _jpeg_split(_save(_pil_image(np.zeros(shape, np.uint8)), "jpeg", quality))[0]


# ---- WebP: the VP8 frame without the fixed parts
_VP8_START = b"\x9d\x01\x2a"


def _webp_strip(data: bytes, shape) -> bytes:
    if data[:4] != b"RIFF" or data[8:16] != b"WEBPVP8 ":
        raise CodecError("not a simple lossy WebP stream")
    (size,) = struct.unpack("<I", data[16:20])
    vp8 = data[20:20 + size]
    if vp8[3:6] != _VP8_START or struct.unpack("<HH", vp8[6:10]) != (shape[1], shape[0]):
        raise CodecError("unexpected VP8 frame header")
    return vp8[:3] + vp8[10:]


def _webp_rebuild(payload: bytes, shape) -> bytes:
    if len(payload) < 4:
        raise CodecError("WebP payload too short")
    vp8 = payload[:3] + _VP8_START + struct.pack("<HH", shape[1], shape[0]) + payload[3:]
    chunk = b"VP8 " + struct.pack("<I", len(vp8)) + vp8 + (b"\0" if len(vp8) % 2 else b"")
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def payload_at(image: np.ndarray, codec: str, quality: int) -> bytes:
    """The bytes sent for `image` at `quality`."""
    data = _save(_pil_image(image), codec, quality)
    if codec == "jpeg":
        return bytes([quality]) + _jpeg_split(data)[1]
    return _webp_strip(data, image.shape)


@lru_cache(maxsize=8192)
def _sizes(codec: str, shape: Tuple[int, ...], pixels: bytes) -> Tuple[int, ...]:
    """The payload size at every quality of QUALITIES (cached: a sweep asks for one image at
    many budgets)."""
    image = np.frombuffer(pixels, np.uint8).reshape(shape)
    return tuple(len(payload_at(image, codec, quality)) for quality in QUALITIES)


def encode(image: np.ndarray, codec: str, budget: int) -> Optional[Tuple[bytes, int]]:
    """(payload, quality) at the highest quality whose payload has <= `budget` bytes; None
    where not even quality 1 fits."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r} (expected one of {CODECS})")
    _pil_image(image)   # the shape and dtype checks
    sizes = _sizes(codec, image.shape, np.ascontiguousarray(image).tobytes())
    fits = [quality for quality, size in zip(QUALITIES, sizes) if size <= budget]
    if not fits:
        return None
    payload = payload_at(image, codec, fits[-1])
    return payload, fits[-1]


def encode_best(image: np.ndarray, choice: str, budget: int) -> Optional[Tuple[bytes, int, str]]:
    """(payload, quality, codec) of `choice` at the budget (encode()); for "auto" the codec whose
    decoded image has the smaller squared error (WebP's headers cost more than JPEG's scan at
    the smallest budgets, where only JPEG fits). None where nothing fits."""
    if choice not in CHOICES:
        raise ValueError(f"unknown codec {choice!r} (expected one of {CHOICES})")
    best, best_err = None, None
    for name in (CODECS if choice == "auto" else (choice,)):
        fit = encode(image, name, budget)
        if fit is None:
            continue
        if choice != "auto":
            return fit + (name,)
        err = float(np.mean((decode(fit[0], name, image.shape).astype(np.float64) - image) ** 2))
        if best_err is None or err < best_err:
            best, best_err = fit + (name,), err
    return best


def decode(payload: bytes, codec: str, shape) -> np.ndarray:
    """The image (uint8, `shape`) a payload encodes; CodecError where it does not parse."""
    from PIL import Image
    shape = tuple(int(v) for v in shape)
    if codec == "jpeg":
        if len(payload) < 1 or not 1 <= payload[0] <= 100:
            raise CodecError("JPEG payload without a quality byte")
        data = _jpeg_header(shape, payload[0]) + payload[1:] + b"\xff\xd9"
    elif codec == "webp":
        data = _webp_rebuild(payload, shape)
    else:
        raise ValueError(f"unknown codec {codec!r} (expected one of {CODECS})")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            out = np.asarray(img.convert("L" if shape[2] == 1 else "RGB"))
    except (OSError, SyntaxError, ValueError) as exc:   # what Pillow raises on a corrupt stream
        raise CodecError(f"{codec} payload does not decode: {exc}") from None
    out = out.reshape(out.shape[:2] + (-1,))
    if out.shape != shape:
        raise CodecError(f"{codec} payload decodes to {out.shape}, expected {shape}")
    return out
