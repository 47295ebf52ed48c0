"""Qwen-TTS (qwen3-tts-flash, qwen-tts) over DashScope's native HTTP API, streamed.

``POST {base}/services/aigc/multimodal-generation/generation`` with ``X-DashScope-SSE: enable``::

    {"model": "qwen3-tts-flash", "input": {"text": "...", "voice": "Cherry"}}

    id:1
    event:result
    :HTTP_STATUS/200
    data:{"output":{"finish_reason":"null","audio":{"data":"<base64 PCM>","id":"audio_…","expires_at":…}},
          "usage":{…},"request_id":"…"}
    …
    data:{"output":{"finish_reason":"stop","audio":{"data":"","url":"https://…wav","id":"audio_…",…}},…}

Every event's ``output.audio.data`` is base64 of 24 kHz 16-bit little-endian mono PCM; it is
decoded and passed on as it arrives (re-cut to at most 32 KiB). The stream has no ``[DONE]``: the
event with ``finish_reason: "stop"`` ends the synthesis, and a stream that closes before it is
reported as a broken connection. ``event:error`` (``DataInspectionFailed`` on the text,
``Throttling.RateQuota``, …) raises its mapped error, also after audio was sent.

Encodings: ``pcm`` is the stream as it is; ``wav`` is the same stream behind one WAV header whose
sizes say "unknown length" (0xFFFFFFFF, as streamed WAV from other providers), so playback can
start at once. DashScope's unstreamed mode, which answers with ``output.audio.url`` (a signed
OSS link to a WAV file), is not used: it means a second download from another host, no audio
before the whole text is synthesised, and files that cannot be joined when a long text is split.

Texts longer than the model's ``word_limit`` (qwen3-tts-flash takes 600 characters, a CJK
character counting as two) are cut at sentence ends and synthesised one piece after another into
the same stream, as the OpenAI family does. The HTTP API has no speaking-rate control, so a speed
other than 1 is refused rather than ignored.

Not offered: CosyVoice, Sambert and the realtime Qwen-TTS models. DashScope serves them only over
WebSocket (``wss://dashscope.aliyuncs.com/api-ws/v1/inference``, run-task/finish-task), and this
runtime's adapters speak HTTP.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import AsyncIterator
from typing import Any

from engine.adapter import CallContext
from engine.errors import InvokeConnectionError, InvokeError, bad_request
from engine.messages import AudioChunk
from providers.kit import endpoint
from providers.kit.audio import CHUNK_BYTES, split_sentences
from providers.kit.http import dumps

from . import client

SERVICE = "aigc/multimodal-generation/generation"
SAMPLE_RATE = 24000
MIME = {"pcm": "audio/pcm", "wav": "audio/wav"}


def wav_header(sample_rate: int = SAMPLE_RATE) -> bytes:
    """A 16-bit mono PCM WAV header for a stream of unknown length."""
    unknown = 0xFFFFFFFF
    return (b"RIFF" + struct.pack("<I", unknown) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
            + b"data" + struct.pack("<I", unknown))


def _voices(props: dict[str, Any]) -> list[str]:
    return [str(v.get("mode")) for v in props.get("voices") or () if isinstance(v, dict) and v.get("mode")]


def build_body(model: str, text: str, voice: str, language_type: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "input": {"text": text, "voice": voice}}
    if language_type:
        body["input"]["language_type"] = language_type
    return body


def _audio_of(event: dict[str, Any]) -> tuple[bytes, bool]:
    """(decoded audio, finished) of one stream event."""
    output = event.get("output")
    if not isinstance(output, dict):
        raise InvokeError("DashScope returned a speech event without output")
    audio = output.get("audio") or {}
    data = audio.get("data") if isinstance(audio, dict) else None
    pcm = b""
    if data:
        if not isinstance(data, str):
            raise InvokeError("DashScope returned audio data that is not a string")
        try:
            pcm = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise InvokeError("DashScope returned audio data that is not base64") from None
    return pcm, output.get("finish_reason") == "stop"


class DashScopeSpeech:
    """TTSModel for Qwen-TTS through DashScope's native streaming HTTP API."""

    async def synthesize(
        self, ctx: CallContext, text: str, voice: str, encoding: str, speed: float | None, user: str
    ) -> AsyncIterator[AudioChunk]:
        props = ctx.schema.model_properties if ctx.schema else {}
        encoding = (encoding or str(props.get("audio_type") or "") or "pcm").strip().lower()
        if encoding not in MIME:
            raise bad_request("encoding", f"unsupported audio encoding '{encoding}'; supported: {', '.join(MIME)}")
        voices = _voices(props)
        voice = voice or str(props.get("default_voice") or "") or (voices[0] if voices else "Cherry")
        if voices and voice not in voices:
            raise bad_request("voice", f"unknown voice '{voice}'; allowed: {', '.join(voices)}")
        if speed is not None and abs(speed - 1.0) > 1e-9:
            raise bad_request("speed", "this model's HTTP API has no speaking-rate control; leave speed unset or 1")
        if not text or not text.strip():
            raise bad_request("text", "the text to synthesise is empty")
        try:
            limit = int(props.get("word_limit") or 0)
        except (TypeError, ValueError):
            limit = 0
        pieces = split_sentences(text, limit) if limit > 0 else [text]
        language_type = str(props.get("language_type") or "")

        mime = MIME[encoding]
        received = 0
        for piece in pieces:
            async for pcm in self._piece(ctx, build_body(endpoint.model_id(ctx), piece, voice, language_type)):
                if not received and encoding == "wav":  # only once audio comes: errors reach the caller first
                    yield AudioChunk(wav_header(), encoding, mime, SAMPLE_RATE)
                received += len(pcm)
                for start in range(0, len(pcm), CHUNK_BYTES):
                    yield AudioChunk(pcm[start:start + CHUNK_BYTES], encoding, mime, SAMPLE_RATE)
        if not received:
            raise InvokeError("DashScope returned no audio")

    async def _piece(self, ctx: CallContext, body: dict[str, Any]) -> AsyncIterator[bytes]:
        async with ctx.http.stream(
            "POST", client.service_url(ctx, SERVICE), headers=client.headers(ctx, stream=True),
            content=dumps(body), params=endpoint.query(ctx), deadline=ctx.deadline,
        ) as response:
            await client.check_status(response)
            if "json" in response.headers.get("content-type", ""):
                # Not a stream: an error object (or an unstreamed reply) under 200.
                client.read_json(await response.aread())
                raise InvokeError("DashScope answered a streamed speech request without a stream")
            async for event in client.aiter_results(response):
                pcm, finished = _audio_of(event)
                if pcm:
                    yield pcm
                if finished:
                    return
        raise InvokeConnectionError("DashScope's audio stream ended before the synthesis finished")
