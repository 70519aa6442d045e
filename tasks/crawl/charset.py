"""Bytes to text for fetched pages: the declared charset when it fits, else detection.

Order: the HTTP header's charset, else a `<meta charset>` in the first 4 KB, else UTF-8. If
more than 1 in 1000 characters come out invalid, charset-normalizer detects the encoding;
among its candidates about as clean as its best, windows-1252 wins (the WHATWG default for
undeclared legacy pages, which short texts otherwise lose to look-alike code pages). Invalid
bytes become U+FFFD; nothing here raises on any input.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.I)
CHAOS_MARGIN = 0.1


def _codec(name: str | None) -> str | None:
    """The Python codec for a charset label, None if unknown."""
    try:
        return codecs.lookup(name).name if name else None
    except LookupError:
        return None


def detected_text(body: bytes) -> str | None:
    """`body` decoded with the encoding charset-normalizer finds, None if it finds none."""
    matches = list(charset_normalizer.from_bytes(body))
    if not matches:
        return None
    best = min(match.chaos for match in matches)
    clean = [m for m in matches if m.chaos <= best + CHAOS_MARGIN]
    western = [m for m in clean if _codec(m.encoding) == "cp1252"]
    return str((western or clean)[0])


def decode_body(body: bytes, charset: str | None) -> str:
    """`body` as text, `charset` being the HTTP header's (or None); see the module notes."""
    meta = META_CHARSET.search(body[:4096])
    codec = _codec(charset) or _codec(meta.group(1).decode("ascii") if meta else None) or "utf-8"
    text = body.decode(codec, errors="replace")
    if text.count("\ufffd") * 1000 <= len(text):
        return text
    return detected_text(body) or text
