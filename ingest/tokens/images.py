"""Image input tokens, from the detail level and the image's size, per OpenAI's vision guide.

The size is read from a data URL's header bytes (PNG, JPEG, GIF, WebP) without decoding the
image. A remote URL's size is unknown: the guide's 1024x1024 example size is used and flagged.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct

# (base tokens, tokens per 512px tile) for tile-priced models; most specific prefix first.
_TILE_MODELS: tuple[tuple[str, int, int], ...] = (
    ("gpt-4o-mini", 2833, 5667),
    ("computer-use", 65, 129),
    ("gpt-5", 70, 140),
    ("o1", 75, 150),
    ("o3", 75, 150),
    ("gpt-4o", 85, 170),
    ("gpt-4.1", 85, 170),
    ("gpt-4.5", 85, 170),
    ("gpt-4", 85, 170),
)
# 32px-patch models and their multipliers.
_PATCH_MODELS: tuple[tuple[str, float], ...] = (
    ("gpt-4.1-mini", 1.62),
    ("gpt-4.1-nano", 2.46),
    ("gpt-5-mini", 1.62),
    ("gpt-5-nano", 2.46),
    ("o4-mini", 1.72),
)
DEFAULT_SIZE = (1024, 1024)
_MAX_HEADER_B64 = 1 << 18  # decode at most 256 KiB of base64 looking for a JPEG frame header


def _model_key(model: str | None) -> str:
    from .models import base_model

    return base_model(model or "gpt-4o")


def image_tokens(url: str | None, detail: str, model: str | None) -> tuple[int, list[str]]:
    flags: list[str] = []
    m = _model_key(model)
    size = image_size_from_data_url(url) if url and url.startswith("data:") else None
    if size is None:
        flags.append("image_size_unknown")
        size = DEFAULT_SIZE
    if detail not in ("low", "high"):
        flags.append("image_detail_auto")
    for prefix, mult in _PATCH_MODELS:
        if m.startswith(prefix):
            return math.ceil(_patches(*size) * mult), flags
    base, tile = 85, 170
    for prefix, b, t in _TILE_MODELS:
        if m.startswith(prefix):
            base, tile = b, t
            break
    else:
        flags.append("image_model_unknown")
    if detail == "low":
        return base, flags
    return base + tile * _tiles(*size), flags


def _tiles(width: int, height: int) -> int:
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        s = 2048 / max(w, h)
        w, h = w * s, h * s
    if min(w, h) > 768:
        s = 768 / min(w, h)
        w, h = w * s, h * s
    return math.ceil(w / 512) * math.ceil(h / 512)


def _patches(w: int, h: int) -> int:
    raw = math.ceil(w / 32) * math.ceil(h / 32)
    if raw <= 1536:
        return raw
    r = math.sqrt(32 * 32 * 1536 / (w * h))
    w2, h2 = w * r, h * r
    r2 = min(math.floor(w2 / 32) / (w2 / 32), math.floor(h2 / 32) / (h2 / 32))
    return min(1536, math.ceil(w2 * r2 / 32) * math.ceil(h2 * r2 / 32))


def image_size_from_data_url(url: str) -> tuple[int, int] | None:
    comma = url.find(",")
    if comma < 0 or ";base64" not in url[:comma]:
        return None
    payload = url[comma + 1 : comma + 1 + _MAX_HEADER_B64]
    payload = payload[: len(payload) - len(payload) % 4]
    try:
        head = base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        return None
    return image_size(head)


def image_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from the first bytes of a PNG, GIF, WebP or JPEG file."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        w, h = struct.unpack(">II", head[16:24])
        return w, h
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        w, h = struct.unpack("<HH", head[6:10])
        return w, h
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        chunk = head[12:16]
        if chunk == b"VP8X":
            w = int.from_bytes(head[24:27], "little") + 1
            h = int.from_bytes(head[27:30], "little") + 1
            return w, h
        if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
            w, h = struct.unpack("<HH", head[26:30])
            return w & 0x3FFF, h & 0x3FFF
        if chunk == b"VP8L" and head[20] == 0x2F:
            bits = int.from_bytes(head[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        return None
    if head[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(head):
            if head[i] != 0xFF:
                i += 1
                continue
            marker = head[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = struct.unpack(">H", head[i + 2 : i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h, w = struct.unpack(">HH", head[i + 5 : i + 9])
                return w, h
            i += 2 + length
    return None
