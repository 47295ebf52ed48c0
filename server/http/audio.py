"""POST /v1/audio/transcriptions (multipart) and /v1/audio/speech (streamed audio bytes).

Transcriptions: ``file`` (its extension tells the runtime the format; unknown → sniffed),
``model``, ``language``, ``prompt``, ``user``, ``response_format`` ``json`` (default,
``{"text"}``) or ``text`` (``text/plain``). Timestamped formats (``verbose_json``, ``srt``,
``vtt``) need segment data the runtime does not return: 400.

Speech: ``{model, input, voice, response_format, speed}``. The status line goes out with the
first audio chunk, so provider errors keep their status; then bytes are streamed as the
provider sends them (chunked, ``Content-Type`` of the runtime's encoding). A failure after
that cuts the connection: a truncated chunked body is the only honest signal left.
"""

from __future__ import annotations

from engine.errors import InvokeError

from .call import Call, text_field
from .multipart import parse_form
from .openai_errors import bad_request

_TRANSCRIBE_FIELDS = {"audio": "file", "format": "file"}
_SPEECH_FIELDS = {"text": "input", "encoding": "response_format", "voice": "voice"}
_TEXT_FORMATS = ("json", "text")


async def transcriptions(call: Call) -> None:
    form = parse_form(call.body, call.header(b"content-type") or "")
    model = form.get("model")
    target = call.target(model.text() if model else None)
    call.fields = _TRANSCRIBE_FIELDS
    file = form.get("file")
    if file is None or file.filename is None:
        raise bad_request("Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
    fmt = form["response_format"].text() if "response_format" in form else "json"
    if fmt not in _TEXT_FORMATS:
        raise bad_request(f"response_format '{fmt}' is not supported here; use 'json' or 'text'.",
                          param="response_format", code="unsupported_value")
    name = file.filename
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    text = await call.runtime.transcribe(
        target, file.data, ext,
        form["language"].text() if "language" in form else "",
        form["prompt"].text() if "prompt" in form else "",
        form["user"].text() if "user" in form else "",
    )
    if fmt == "text":
        await call.send_bytes((text + "\n").encode(), b"text/plain; charset=utf-8")
    else:
        await call.send_json({"text": text})


def _voice(raw: object) -> str:
    if isinstance(raw, dict):
        raw = raw.get("id")
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise bad_request("voice must be a string or an object with an id", param="voice")
    return raw


async def speech(call: Call) -> None:
    body = call.json()
    target = call.target(body.get("model"))
    call.fields = _SPEECH_FIELDS
    text = body.get("input")
    if not isinstance(text, str) or not text:
        raise bad_request("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    if body.get("stream_format") not in (None, "audio"):
        raise bad_request("only stream_format 'audio' is supported", param="stream_format")
    fmt = body.get("response_format") or ""
    if not isinstance(fmt, str):
        raise bad_request("response_format must be a string", param="response_format")
    speed = body.get("speed")
    if speed is not None and (not isinstance(speed, (int, float)) or isinstance(speed, bool)):
        raise bad_request("speed must be a number", param="speed")
    user = text_field(body, "user")
    chunks = call.runtime.synthesize(target, text, _voice(body.get("voice")), fmt,
                                     float(speed) if speed is not None else None, user)
    try:
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            raise InvokeError("The provider returned no audio", provider=target.provider) from None
        await call.start(first.mime_type.encode() or b"application/octet-stream")
        await call.write(first.data)
        async for chunk in chunks:
            await call.write(chunk.data)
        await call.end()
    finally:
        await chunks.aclose()
