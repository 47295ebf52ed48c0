"""multipart/form-data parsing (for audio uploads and other file endpoints)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    headers: dict[str, str]
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@dataclass
class MultipartForm:
    parts: list[Part]

    def get(self, name: str) -> Part | None:
        return next((p for p in self.parts if p.name == name), None)

    def value(self, name: str, default: str | None = None) -> str | None:
        p = self.get(name)
        return p.text if p is not None else default

    def values(self, name: str) -> list[str]:
        return [p.text for p in self.parts if p.name == name]

    def names(self) -> list[str]:
        return [p.name for p in self.parts]


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``form-data; name="a"; filename="b.wav"`` into ("form-data", {...})."""
    items: list[str] = []
    cur, quoted, i = "", False, 0
    while i < len(value):
        ch = value[i]
        if ch == '"':
            quoted = not quoted
        elif ch == "\\" and quoted and i + 1 < len(value):
            i += 1
            ch = value[i]
        elif ch == ";" and not quoted:
            items.append(cur)
            cur = ""
            i += 1
            continue
        cur += ch
        i += 1
    items.append(cur)
    params: dict[str, str] = {}
    for item in items[1:]:
        k, _, v = item.strip().partition("=")
        params[k.strip().lower()] = v.strip().strip('"')
    if "filename*" in params and "filename" not in params:  # RFC 5987: utf-8''name
        params["filename"] = unquote(params["filename*"].split("''", 1)[-1])
    return items[0].strip().lower(), params


def parse_multipart(body: bytes, content_type: str) -> MultipartForm:
    kind, params = _header_params(content_type)
    if kind != "multipart/form-data" or not params.get("boundary"):
        raise ValueError(f"not multipart/form-data: {content_type!r}")
    delim = b"--" + params["boundary"].encode("latin-1")
    parts: list[Part] = []
    pos = body.find(delim)
    if pos < 0:
        raise ValueError("multipart boundary not found")
    while True:
        pos += len(delim)
        if body[pos:pos + 2] == b"--":
            break  # closing delimiter
        head_end = body.find(b"\r\n\r\n", pos)
        nxt = body.find(b"\r\n" + delim, pos)
        if head_end < 0 or nxt < 0:
            raise ValueError("truncated multipart body")
        headers: dict[str, str] = {}
        for line in body[pos:head_end].split(b"\r\n"):
            if b":" in line:
                k, _, v = line.decode("utf-8", "replace").partition(":")
                headers[k.strip().lower()] = v.strip()
        _, disp = _header_params(headers.get("content-disposition", ""))
        parts.append(Part(name=disp.get("name", ""), filename=disp.get("filename"),
                          content_type=headers.get("content-type"), headers=headers,
                          data=body[head_end + 4:nxt]))
        pos = nxt + 2
    return MultipartForm(parts)
