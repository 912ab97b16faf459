"""A tiny reader of the text matplotlib writes into a PDF (no pdftotext on the project machines).

Content streams are Flate-compressed; each text run is a ``(...) Tj`` string or a ``[(...) n
(...)] TJ`` array whose strings, joined, are the run. Characters outside the font's 8-bit
encoding (≥, ✓, –) are drawn as glyph objects, not text, so only the rest can be read back.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

_RUN = re.compile(rb"\[((?:[^\]\\]|\\.)*)\]\s*TJ|\(((?:[^)\\]|\\.)*)\)\s*Tj", re.S)
_STRING = re.compile(rb"\(((?:[^)\\]|\\.)*)\)", re.S)
_ESCAPE = re.compile(rb"\\([nrtbf()\\]|[0-7]{1,3})")
_NAMED = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _unescape(s: bytes) -> bytes:
    def one(m: re.Match) -> bytes:
        c = m.group(1)
        if c[:1].isdigit():
            return bytes([int(c, 8)])
        return _NAMED.get(c, c)

    return _ESCAPE.sub(one, s)


def _streams(data: bytes):
    """(dictionary, raw bytes) of every stream, found by plain search (a regex over the
    embedded montage image takes seconds)."""
    pos = 0
    while (i := data.find(b"stream", pos)) >= 0:
        if data[i - 3 : i] == b"end":
            pos = i + 6
            continue
        start = i + 6 + (2 if data[i + 6 : i + 8] == b"\r\n" else 1)
        end = data.find(b"endstream", start)
        if end < 0:
            return
        head = data[data.rfind(b"obj", 0, i) : i]
        yield head, data[start:end].rstrip(b"\r\n")
        pos = end + 9


def pdf_text_runs(path: Path) -> list[str]:
    """Every text run of the PDF at ``path``, in content-stream order."""
    runs = []
    for head, raw in _streams(Path(path).read_bytes()):
        if b"/Image" in head:
            continue
        try:
            content = zlib.decompress(raw)
        except zlib.error:
            continue
        for array, single in _RUN.findall(content):
            parts = _STRING.findall(array) if array else [single]
            runs.append(b"".join(_unescape(p) for p in parts).decode("latin-1"))
    return runs
