"""A small ``multipart/form-data`` parser over a body that is already in memory.

Why not python-multipart: the runtime takes the audio as one ``bytes`` object anyway, and
the body is capped (``grpc.max_message_bytes``) before we get here, so streaming parsing buys
nothing. This is a single forward scan with ``bytes.find`` (C speed) and one copy per part.
Handles quoted and unquoted boundaries, preambles and epilogues, CRLF or bare-LF header
lines, and RFC 5987 ``filename*=UTF-8''...`` names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from .openai_errors import bad_request

_PARAM = re.compile(r';\s*([A-Za-z0-9_.*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


@dataclass(slots=True)
class Part:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str = ""

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def header_params(value: str) -> tuple[str, dict[str, str]]:
    """``form-data; name="file"; filename="a.wav"`` → ("form-data", {...})."""
    head, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAM.finditer(";" + rest):
        key, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        if key.endswith("*"):  # RFC 5987: charset'lang'percent-encoded
            charset, _, encoded = raw.partition("'")
            _, _, encoded = encoded.partition("'")
            try:
                raw = unquote(encoded, encoding=charset or "utf-8")
            except LookupError:
                raw = unquote(encoded)
            key = key[:-1]
        params[key] = raw
    return head.strip().lower(), params


def boundary_of(content_type: str) -> bytes:
    kind, params = header_params(content_type)
    boundary = params.get("boundary")
    if kind != "multipart/form-data" or not boundary:
        raise bad_request("Invalid Content-Type header (expected multipart/form-data with a boundary).")
    return boundary.encode("latin-1")


def parse_form(body: bytes, content_type: str) -> dict[str, Part]:
    """Form fields by name (the first of repeated names wins)."""
    boundary = boundary_of(content_type)
    delimiter = b"--" + boundary
    pos = body.find(delimiter)
    if pos < 0:
        raise bad_request("Malformed multipart body: no boundary found.")
    pos += len(delimiter)
    parts: dict[str, Part] = {}
    while True:
        if body.startswith(b"--", pos):
            return parts  # the closing delimiter
        line_end = body.find(b"\n", pos)
        if line_end < 0:
            break
        start = line_end + 1
        end = body.find(b"\n" + delimiter, start)
        if end < 0:
            break
        next_pos = end + 1 + len(delimiter)
        if end > start and body[end - 1] == 13:  # CR
            end -= 1
        head_end = body.find(b"\r\n\r\n", start, end)
        gap = 4
        if head_end < 0:
            head_end, gap = body.find(b"\n\n", start, end), 2
        if head_end < 0:
            if start == end:  # an empty part: no headers, no data
                pos = next_pos
                continue
            break
        part = _part(body[start:head_end].decode("utf-8", errors="replace"), body[head_end + gap:end])
        if part is not None and part.name not in parts:
            parts[part.name] = part
        pos = next_pos
    raise bad_request("Malformed multipart body: missing the closing boundary.")


def _part(head: str, data: bytes) -> Part | None:
    name = None
    filename = None
    content_type = ""
    for line in head.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "content-disposition":
            _, params = header_params(value)
            name = params.get("name")
            filename = params.get("filename")
        elif key == "content-type":
            content_type = value.strip()
    if name is None:
        return None
    return Part(name, data, filename, content_type)
