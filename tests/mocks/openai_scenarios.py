"""Per-request edge cases for OpenAIMock (``mock.enqueue(...)``).

A Scenario is a bag of effects; combine with ``|`` so one request gets several, e.g.
``first_chunk_empty_choices() | truncate_after(3)``. Scenarios are consumed FIFO by the next request
whose path matches (``path=None`` matches any route; otherwise the request path must end with it, e.g.
``"/chat/completions"``).

"Response" effects replace the normal reply and are applied right after routing, before auth
(``rate_limit``, ``status``, ``raw_response``, ``raw_sse``). All other effects modify the normal reply,
after auth and request validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .sse import StreamStyle

RESPONSE_EFFECTS = ("rate_limit", "status", "raw_response", "raw_sse")


@dataclass
class Scenario:
    effects: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: str | None = None

    def __or__(self, other: Scenario) -> Scenario:
        return Scenario({**self.effects, **other.effects}, self.path or other.path)

    def on(self, path: str) -> Scenario:
        """Restrict to requests whose path ends with `path` (e.g. "/embeddings")."""
        return Scenario(dict(self.effects), path)

    def matches(self, path: str) -> bool:
        return self.path is None or path == self.path or path.endswith(self.path)

    def get(self, name: str) -> dict[str, Any] | None:
        return self.effects.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self.effects


NONE = Scenario()


def _one(name: str, path: str | None = None, **params: Any) -> Scenario:
    return Scenario({name: params}, path)


# ----------------------------------------------------------------------------- whole-response effects


def rate_limit(retry_after: float | str | None = 2, retry_after_ms: int | None = None,
               code: str = "rate_limit_exceeded", type: str = "requests", message: str | None = None,
               path: str | None = None) -> Scenario:
    """429 with OpenAI's JSON error, retry-after / retry-after-ms and x-ratelimit-* headers."""
    return _one("rate_limit", path, retry_after=retry_after, retry_after_ms=retry_after_ms, code=code,
                type=type, message=message)


def insufficient_quota(path: str | None = None) -> Scenario:
    """429 insufficient_quota (the SDK retries it; in practice it never succeeds). No retry-after."""
    return rate_limit(retry_after=None, code="insufficient_quota", type="insufficient_quota",
                      message="You exceeded your current quota, please check your plan and billing details.",
                      path=path)


def status(code: int, body: Any = "default", content_type: str | None = None,
           headers: dict[str, str] | None = None, html: bool = False, path: str | None = None) -> Scenario:
    """Any status. body: "default" (OpenAI-style for the code; 503 → empty), dict (JSON), str/bytes
    (sent as-is), None (empty). html=True sends an nginx-style HTML proxy error page."""
    return _one("status", path, code=code, body=body, content_type=content_type, headers=headers or {},
                html=html)


def html_error(code: int = 502, path: str | None = None) -> Scenario:
    return status(code, html=True, path=path)


def context_length_exceeded(path: str | None = None) -> Scenario:
    return status(400, body="context_length_exceeded", path=path)


def raw_response(status_code: int, headers: dict[str, str] | None = None, body: bytes | str = b"",
                 path: str | None = None) -> Scenario:
    """Send exactly this status/headers/body (Content-Length framed), plus x-request-id."""
    return _one("raw_response", path, status=status_code, headers=headers or {}, body=body)


def raw_sse(events: list[Any], done: bool = True, path: str | None = None) -> Scenario:
    """A 200 event stream of exactly these events (dicts are JSON-encoded; str/bytes sent as data),
    then `data: [DONE]` if done. Uses the mock's stream style."""
    return _one("raw_sse", path, events=list(events), done=done)


# ----------------------------------------------------------------------------- modifiers of the reply


def reply(content: str | None = None, tool_calls: list[dict[str, Any]] | None = None,
          finish_reason: str | None = None, refusal: str | None = None,
          reasoning_content: str | None = None, usage: dict[str, Any] | bool | None = None,
          path: str | None = None) -> Scenario:
    """Script the assistant's reply. tool_calls: [{"name": ..., "arguments": <str or dict>, "id"?: ...}].
    usage=False omits usage everywhere (as some compatible servers do); a dict overrides it."""
    return _one("reply", path, content=content, tool_calls=tool_calls, finish_reason=finish_reason,
                refusal=refusal, reasoning_content=reasoning_content, usage=usage)


def stream_error_after(n_chunks: int, message: str = "The server had an error while processing your request.",
                       type: str = "server_error", code: str | None = None, done: bool = False,
                       path: str | None = None) -> Scenario:
    """After n_chunks data events, send `data: {"error": {...}}` (still HTTP 200) and end the stream
    (with `[DONE]` only if done=True)."""
    return _one("stream_error_after", path, n=n_chunks, message=message, type=type, code=code, done=done)


def truncate_after(n_chunks: int, mid_line: bool = False, clean_eof: bool = False, rst: bool = False,
                   path: str | None = None) -> Scenario:
    """Stop after n_chunks data events without [DONE]. mid_line: also send the first half of the next
    `data:` line. clean_eof: finish the HTTP body properly (SSE-level truncation only); otherwise the
    connection is closed mid-body (rst=True: TCP reset). Non-streamed replies: half the body, then close."""
    return _one("truncate_after", path, n=n_chunks, mid_line=mid_line, clean_eof=clean_eof, rst=rst)


def slow_first_byte(seconds: float, headers_first: bool = False, path: str | None = None) -> Scenario:
    """Wait before the status line (or, with headers_first, after the headers, before the first event)."""
    return _one("slow_first_byte", path, seconds=seconds, headers_first=headers_first)


def slow_stream(interval: float, path: str | None = None) -> Scenario:
    """Sleep `interval` seconds between streamed events."""
    return _one("slow_stream", path, interval=interval)


def hang(send_headers: bool = True, max_seconds: float = 60.0, path: str | None = None) -> Scenario:
    """Send the 200 headers (or nothing) and then nothing until the client goes away."""
    return _one("hang", path, send_headers=send_headers, max_seconds=max_seconds)


def first_chunk_empty_choices(path: str | None = None) -> Scenario:
    """Azure style: a first chunk with `choices: []` and `prompt_filter_results`."""
    return _one("first_chunk_empty_choices", path)


def keepalive_comments_and_crlf(path: str | None = None) -> Scenario:
    """Use StreamStyle.chaotic() for this request (keep-alive comments, CRLF, split and coalesced)."""
    return stream_style(StreamStyle.chaotic(), path=path)


def stream_style(style: StreamStyle, path: str | None = None) -> Scenario:
    return _one("stream_style", path, style=style)


def finish_length(path: str | None = None) -> Scenario:
    """Cut the reply (content or tool arguments) in half and finish with "length"."""
    return _one("finish_length", path)


def content_filter(path: str | None = None) -> Scenario:
    """Cut the content in half and finish with "content_filter"."""
    return _one("content_filter", path)


def embeddings_out_of_order(path: str | None = "/embeddings") -> Scenario:
    """Return embeddings `data` in reverse index order."""
    return _one("embeddings_out_of_order", path)
