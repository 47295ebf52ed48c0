"""Tencent Cloud ASR flash recognition on the wire: signing, formats, replies. No I/O here.

**Request.** ``POST https://asr.cloud.tencent.com/asr/flash/v1/{appid}?{query}`` with the raw audio
as the body (``application/octet-stream``). Every parameter travels in the query string.

**Signature** (the ASR "v1" signature, not TC3):

1. sort the query parameters by name (byte order) and join them as ``name=value`` with ``&``,
   values as they are (not percent-encoded);
2. the string to sign is ``"POST" + host + path + "?" + that query``, e.g.
   ``POSTasr.cloud.tencent.com/asr/flash/v1/1259220000?convert_num_mode=1&engine_type=16k_zh&...``
   (``appid`` is in the path, never in the query);
3. ``Authorization: <base64(HMAC-SHA1(SecretKey, string to sign))>`` -- the bare value, no scheme.

``timestamp`` (Unix seconds) is part of the query, so a request is only good for a few minutes
(the server refuses a clock skew of more than about three minutes with ``code`` 4002, the same
code as a wrong key). Sources: Dify's ``tencent/speech2text/flash_recognizer.py`` and Tencent's
flash-recognition samples; the values we send are plain ASCII, so the encoded URL and the signed
text agree.

``host`` is the host the request really goes to: ``asr.cloud.tencent.com``, or the host (and port)
of the ``tencent_asr_endpoint`` credential, which replaces the scheme and host only (a proxy or a
test server); the path stays ``/asr/flash/v1/{appid}``.

**Reply.** ``{"code": 0, "message": "success", "request_id", "audio_duration", "flash_result":
[{"channel_id", "text", "sentence_list": [...]}]}``; the texts of all channels are joined with
``\\n`` in channel order (empty channels left out). Errors come back with **HTTP 200** and a
non-zero ``code``: 4002 is an authentication failure (wrong SecretId/SecretKey/AppID, or a
timestamp out of the window) → InvokeAuthorizationError, whose message never repeats the vendor
text (it may quote the SecretId); 4003 (service not enabled for the AppID) →
InvokeAuthorizationError; 4004 / 4005 (no free quota left / account in arrears) and 4006
(concurrency limit) → InvokeRateLimitError; 5000 and up → InvokeServerUnavailableError; any other
code (4001 bad parameter, 4007 audio that does not decode as ``voice_format``, ...) →
InvokeBadRequestError with the code and message. The table beyond 4002 follows Tencent's ASR
error list [K].
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import quote, urlsplit

from engine.adapter import CallContext
from engine.errors import (
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
    RuntimeFault,
    bad_request,
)
from providers.kit.audio import sniff_format

from .options import TencentASROptions

DEFAULT_ENDPOINT = "https://asr.cloud.tencent.com"
PATH_PREFIX = "/asr/flash/v1/"
# request format (file extension) -> Tencent voice_format; Tencent decodes nothing else
VOICE_FORMATS = {
    "wav": "wav", "pcm": "pcm", "mp3": "mp3", "mpeg": "mp3", "mpga": "mp3", "m4a": "m4a", "mp4": "m4a",
    "aac": "aac", "amr": "amr", "ogg": "ogg-opus", "oga": "ogg-opus", "opus": "ogg-opus", "speex": "speex",
    "silk": "silk",
}
_MAX_MESSAGE = 300


# ---- signing ---------------------------------------------------------------------------------


def options(ctx: CallContext) -> TencentASROptions:
    return cast(TencentASROptions, ctx.options)


def endpoint(ctx: CallContext) -> tuple[str, str]:
    """(scheme, host[:port]) to call: the override credential, else the runtime default."""
    o = options(ctx)
    name = o.endpoint_credential
    raw = str(ctx.credentials.get(name) or "").strip() or (o.base_url or DEFAULT_ENDPOINT)
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/") or parts.query \
            or parts.fragment or "@" in parts.netloc:
        raise bad_request(f"credentials.{name}", "must be a scheme and host only, e.g. https://asr.cloud.tencent.com")
    return parts.scheme, parts.netloc.lower()


def path_for(app_id: str) -> str:
    return PATH_PREFIX + quote(app_id, safe="")


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{name}={params[name]}" for name in sorted(params))


def string_to_sign(host: str, path: str, params: Mapping[str, str]) -> str:
    return f"POST{host}{path}?{canonical_query(params)}"


def signature(secret_key: str, text: str) -> str:
    digest = hmac.new(secret_key.encode("utf-8"), text.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_url(scheme: str, host: str, app_id: str, params: Mapping[str, str], secret_key: str) -> tuple[str, str]:
    """(url, Authorization value) of one request."""
    path = path_for(app_id)
    query = "&".join(f"{name}={quote(str(params[name]), safe='')}" for name in sorted(params))
    return f"{scheme}://{host}{path}?{query}", signature(secret_key, string_to_sign(host, path, params))


# ---- audio formats ---------------------------------------------------------------------------


def detect_format(audio: bytes) -> str:
    """The format from magic bytes (Tencent's extra formats first), or "" when unknown."""
    head = audio[:16]
    if head.startswith(b"#!AMR"):
        return "amr"
    if head.startswith((b"#!SILK", b"\x02#!SILK")):
        return "silk"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:  # ADTS: sync + layer 00
        return "aac"
    return sniff_format(audio)


def _allowed(props: dict[str, Any]) -> list[str]:
    raw = props.get("supported_file_extensions") or ""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return [str(x).strip().lower().lstrip(".") for x in items if str(x).strip()]


def voice_format(audio: bytes, fmt: str, props: dict[str, Any]) -> str:
    """Tencent's ``voice_format`` for the request's format (given, else sniffed)."""
    fmt = (fmt or "").strip().lower().lstrip(".") or detect_format(audio)
    if not fmt:
        raise bad_request("format", "could not detect the audio format; give it explicitly (wav, mp3, m4a, ...)")
    allowed = _allowed(props)
    if fmt not in VOICE_FORMATS or (allowed and fmt not in allowed):
        names = ", ".join(allowed or VOICE_FORMATS)
        raise bad_request("format", f"unsupported audio format '{fmt}'; supported: {names}")
    return VOICE_FORMATS[fmt]


# ---- replies ---------------------------------------------------------------------------------


def code_error(code: int, message: str) -> RuntimeFault:
    """A non-zero ``code`` of a reply (always under HTTP 200)."""
    text = f"Tencent ASR error {code}: {message[:_MAX_MESSAGE]}".rstrip(": ")
    if code in (4002, 4003):
        return InvokeAuthorizationError()  # the vendor text may quote the SecretId
    if code in (4004, 4005, 4006):
        return InvokeRateLimitError(text)
    if code >= 5000:
        return InvokeServerUnavailableError(text)
    return InvokeBadRequestError(text)


def _channel(result: dict[str, Any]) -> int:
    channel = result.get("channel_id")
    return channel if isinstance(channel, int) else 0


def transcript(body: dict[str, Any]) -> str:
    """The text of a reply: raises the mapped error for a non-zero code."""
    code = body.get("code")
    if not isinstance(code, int):
        raise InvokeError("The provider's response has no numeric code")
    if code != 0:
        raise code_error(code, str(body.get("message") or ""))
    results = body.get("flash_result")
    if not isinstance(results, list):
        raise InvokeError("The provider returned no flash_result")
    channels = [r for r in results if isinstance(r, dict)]
    channels.sort(key=_channel)
    return "\n".join(str(r.get("text")) for r in channels if r.get("text"))
