"""OpenAI audio: transcription (``/audio/transcriptions``) and speech (``/audio/speech``).

- Transcription is a multipart upload. The format decides the file name OpenAI sniffs, so
  when the caller gives none it is guessed from magic bytes; the model's
  ``supported_file_extensions`` and ``file_upload_limit`` (MB) are checked before uploading.
- Speech streams: bytes are yielded as they arrive (re-cut to at most 32 KiB), never
  buffered whole. Texts longer than ``word_limit`` characters are cut at sentence ends and
  synthesised one after another into the same stream, as Dify does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from engine._http.status import raise_for_status
from engine.adapter import CallContext
from engine.errors import InvokeError, bad_request
from engine.messages import AudioChunk
from providers.kit.audio import CHUNK_BYTES, UPLOAD_MIME, sniff_format, split_sentences
from providers.kit.http import read_json

from . import client

SPEECH_MIME = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
PCM_SAMPLE_RATE = 24000  # OpenAI's pcm: 24 kHz, 16-bit little-endian, mono


def _extensions(props: dict[str, Any]) -> list[str]:
    raw = props.get("supported_file_extensions")
    if not raw:
        return []
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return [str(x).strip().lower().lstrip(".") for x in items if str(x).strip()]


class OpenAITranscription:
    """Speech2TextModel for OpenAI's transcription API (whisper, gpt-4o-transcribe, compatibles)."""

    async def transcribe(
        self, ctx: CallContext, audio: bytes, fmt: str, language: str, prompt: str, user: str
    ) -> str:
        if not audio:
            raise bad_request("audio", "the audio file is empty")
        props = ctx.schema.model_properties if ctx.schema else {}
        fmt = (fmt or "").strip().lower().lstrip(".") or sniff_format(audio)
        allowed = _extensions(props)
        if allowed:
            if not fmt:
                raise bad_request("format", f"could not detect the audio format; supported: {', '.join(allowed)}")
            if fmt not in allowed:
                raise bad_request("format", f"unsupported audio format '{fmt}'; supported: {', '.join(allowed)}")
        limit_mb = props.get("file_upload_limit")
        try:
            limit = float(limit_mb) * 1024 * 1024 if limit_mb else 0.0
        except (TypeError, ValueError):
            limit = 0.0
        if limit and len(audio) > limit:
            raise bad_request("audio", f"the audio file is larger than the model's limit of {limit_mb} MB")

        # The name's extension is what OpenAI uses to decide the decoder.
        filename = f"audio.{fmt}" if fmt else "audio"
        files = {"file": (filename, audio, UPLOAD_MIME.get(fmt, "application/octet-stream"))}
        data = {"model": client.model_id(ctx), "response_format": "json"}
        if language:
            data["language"] = language
        if prompt:
            data["prompt"] = prompt
        response = await ctx.http.request(
            "POST", client.url(ctx, "audio/transcriptions"), headers=client.headers(ctx, None),
            files=files, data=data, params=client.query(ctx), deadline=ctx.deadline,
        )
        await raise_for_status(response, client.error_message)
        if "json" not in response.headers.get("content-type", "json"):
            return response.text.strip()  # servers that ignore response_format answer text
        try:
            body = read_json(response)
        except InvokeError:
            return response.text.strip()
        if isinstance(body, dict):
            text = body.get("text")
            if isinstance(text, str):
                return text
            raise InvokeError("The provider returned a transcription without text")
        return body if isinstance(body, str) else ""


def _voices(props: dict[str, Any]) -> list[str]:
    return [str(v.get("mode")) for v in props.get("voices") or () if isinstance(v, dict) and v.get("mode")]


class OpenAISpeech:
    """TTSModel for OpenAI's speech API."""

    async def synthesize(
        self, ctx: CallContext, text: str, voice: str, encoding: str, speed: float | None, user: str
    ) -> AsyncIterator[AudioChunk]:
        props = ctx.schema.model_properties if ctx.schema else {}
        encoding = (encoding or props.get("audio_type") or "mp3").strip().lower()
        if encoding not in SPEECH_MIME:
            raise bad_request("encoding", f"unsupported audio encoding '{encoding}'; "
                                          f"supported: {', '.join(SPEECH_MIME)}")
        voices = _voices(props)
        voice = voice or str(props.get("default_voice") or "") or (voices[0] if voices else "alloy")
        if voices and voice not in voices:
            raise bad_request("voice", f"unknown voice '{voice}'; allowed: {', '.join(voices)}")
        if not text or not text.strip():
            raise bad_request("text", "the text to synthesise is empty")
        try:
            limit = int(props.get("word_limit") or 0)
        except (TypeError, ValueError):
            limit = 0
        pieces = split_sentences(text, limit) if limit > 0 else [text]
        mime = SPEECH_MIME[encoding]
        rate = PCM_SAMPLE_RATE if encoding == "pcm" else 0
        url = client.url(ctx, "audio/speech")
        for piece in pieces:
            body: dict[str, Any] = {"model": client.model_id(ctx), "input": piece, "voice": voice, "response_format": encoding}
            if speed is not None:
                body["speed"] = speed
            async with ctx.http.stream(
                "POST", url, headers=client.headers(ctx), content=client.dumps(body),
                params=client.query(ctx), deadline=ctx.deadline,
            ) as response:
                await raise_for_status(response, client.error_message)
                if "json" in response.headers.get("content-type", ""):
                    # Some compatible servers put an error under 200 as JSON instead of audio.
                    await response.aread()
                    read_json(response)
                    raise InvokeError("The provider returned JSON instead of audio")
                received = 0
                async for data in response.aiter_bytes():
                    received += len(data)
                    for start in range(0, len(data), CHUNK_BYTES):
                        yield AudioChunk(data[start:start + CHUNK_BYTES], encoding, mime, rate)
                if not received:
                    raise InvokeError("The provider returned no audio")
