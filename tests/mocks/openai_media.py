"""Embeddings, audio (transcriptions, translations, speech) and moderations for OpenAIMock."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import random
import re
import struct
from typing import Any

from .openai_common import ApiError, Ctx, approx_tokens, new_id

# ----------------------------------------------------------------------------------------- embeddings


def expected_embedding(text: str, dimensions: int) -> list[float]:
    """The mock's vector for `text`: seeded by the text only, unit length, float32-exact. A shorter
    `dimensions` gives the renormalised prefix of the longer vector (like text-embedding-3)."""
    rng = random.Random(hashlib.sha256(text.encode("utf-8")).digest())
    vec = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(x / norm for x in vec))))


def _embedding_inputs(inp: Any) -> list[tuple[str, int]]:
    """[(seed text, token count)] for str | [str] | [int] | [[int]]."""
    bad = ApiError(400, "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.")
    if isinstance(inp, str):
        inp = [inp]
    if not isinstance(inp, list) or not inp:
        raise bad
    if all(isinstance(x, int) for x in inp):
        return [(" ".join(map(str, inp)), len(inp))]
    out = []
    for x in inp:
        if isinstance(x, str) and x:
            out.append((x, max(1, approx_tokens(x))))
        elif isinstance(x, list) and x and all(isinstance(t, int) for t in x):
            out.append((" ".join(map(str, x)), len(x)))
        else:
            raise bad
    if len(out) > 2048:
        raise bad
    return out


async def embeddings(ctx: Ctx) -> None:
    body = ctx.req.json
    if not body.get("model"):
        raise ApiError(400, "you must provide a model parameter")
    model = ctx.mock.lookup_model(body["model"])
    if model.kind != "embedding":
        raise ApiError(400, f"The model `{model.id}` does not support embeddings.", param="model")
    if "input" not in body:
        raise ApiError(400, "Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    inputs = _embedding_inputs(body["input"])
    fmt = body.get("encoding_format") or ctx.mock.embeddings_default_format
    if fmt not in ("float", "base64"):
        raise ApiError(400, f"Invalid value: '{fmt}'. Supported values are: 'float' and 'base64'.",
                       param="encoding_format", code="invalid_value")
    dims = model.dimensions or 1536
    if body.get("dimensions") is not None:
        if model.id == "text-embedding-ada-002":
            raise ApiError(400, "This model does not support specifying dimensions.", param="dimensions")
        d = body["dimensions"]
        if not isinstance(d, int) or not 1 <= d <= dims:
            raise ApiError(400, f"Invalid value for 'dimensions' = {d}. Must be between 1 and {dims}.",
                           param="dimensions", code="invalid_value")
        dims = d
    data = []
    for i, (text, _) in enumerate(inputs):
        vec = expected_embedding(text, dims)
        emb: Any = vec if fmt == "float" else base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    if "embeddings_out_of_order" in ctx.sc:
        data.reverse()
    tokens = sum(n for _, n in inputs)
    await ctx.send_json({"object": "list", "data": data, "model": model.snapshot or model.id,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


# ----------------------------------------------------------------------------------------- audio in

AUDIO_EXTS = ["flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm"]


def _wav_duration(data: bytes) -> float | None:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, 0
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if cid == b"fmt " and size >= 16:
            byte_rate = struct.unpack("<I", data[pos + 16:pos + 20])[0]
        elif cid == b"data" and byte_rate:
            return min(size, len(data) - pos - 8) / byte_rate
        pos += 8 + size + (size & 1)
    return None


def transcript_for(data: bytes, filename: str) -> tuple[str, float]:
    """(text, duration seconds) the mock "hears": UTF-8 text files are read back verbatim; WAV files give
    a sentence with their duration; other bytes a sentence with their size."""
    dur = _wav_duration(data)
    if dur is not None:
        return f"Mock transcription of {filename}, {dur:.2f} seconds.", dur
    try:
        text = data.decode("utf-8").strip()
        if text and text.isprintable():
            return text, max(1.0, len(text) / 15)
    except UnicodeDecodeError:
        pass
    return f"Mock transcription of {filename}, {len(data)} bytes.", max(1.0, len(data) / 16000)


def _ts(sec: float, sep: str) -> str:
    ms = round(sec * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


async def transcriptions(ctx: Ctx, task: str = "transcribe") -> None:
    try:
        form = ctx.req.form()
    except ValueError:
        raise ApiError(400, "Invalid Content-Type header (expected multipart/form-data).") from None
    model_id = form.value("model")
    if not model_id:
        raise ApiError(400, "you must provide a model parameter")
    model = ctx.mock.lookup_model(model_id)
    file = form.get("file")
    if file is None or file.filename is None:
        raise ApiError(400, "Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
    ext = file.filename.rsplit(".", 1)[-1].lower() if "." in file.filename else ""
    if ext not in AUDIO_EXTS:
        raise ApiError(400, f"Invalid file format. Supported formats: {AUDIO_EXTS}", param="file")
    fmt = form.value("response_format") or "json"
    allowed = ["json", "text"] if model.id != "whisper-1" else ["json", "text", "srt", "verbose_json", "vtt"]
    if fmt not in allowed:
        raise ApiError(400, f"response_format '{fmt}' is not compatible with model '{model.id}'. Use "
                       f"{' or '.join(repr(a) for a in allowed)} instead.", param="response_format",
                       code="unsupported_value")
    text, dur = transcript_for(file.data, file.filename)
    if fmt == "text":
        await ctx.send_body((text + "\n").encode(), content_type="text/plain; charset=utf-8")
        return
    if fmt == "srt":
        body = f"1\n{_ts(0, ',')} --> {_ts(dur, ',')}\n{text}\n\n"
        await ctx.send_body(body.encode(), content_type="text/plain; charset=utf-8")
        return
    if fmt == "vtt":
        body = f"WEBVTT\n\n{_ts(0, '.')} --> {_ts(dur, '.')}\n{text}\n\n"
        await ctx.send_body(body.encode(), content_type="text/plain; charset=utf-8")
        return
    if fmt == "json":
        out: dict[str, Any] = {"text": text}
        if model.id == "whisper-1":
            out["usage"] = {"type": "duration", "seconds": math.ceil(dur)}
        else:
            audio_tokens = max(1, int(dur * 10))
            out["usage"] = {"type": "tokens", "input_tokens": audio_tokens,
                            "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
                            "output_tokens": approx_tokens(text), "total_tokens": audio_tokens + approx_tokens(text)}
        await ctx.send_json(out)
        return
    gran = form.values("timestamp_granularities[]") or ["segment"]
    out = {"task": task, "language": "english" if task == "translate" else (form.value("language") or "english"),
           "duration": round(dur, 2), "text": text}
    if "word" in gran:
        words = text.split()
        step = dur / max(len(words), 1)
        out["words"] = [{"word": w.strip(".,!?"), "start": round(i * step, 2), "end": round((i + 1) * step, 2)}
                        for i, w in enumerate(words)]
    if "segment" in gran:
        out["segments"] = [{"id": 0, "seek": 0, "start": 0.0, "end": round(dur, 2), "text": " " + text,
                            "tokens": list(range(50364, 50364 + approx_tokens(text))),
                            "temperature": float(form.value("temperature") or 0.0), "avg_logprob": -0.25,
                            "compression_ratio": 1.1, "no_speech_prob": 0.01}]
    await ctx.send_json(out)


async def translations(ctx: Ctx) -> None:
    await transcriptions(ctx, task="translate")


# ----------------------------------------------------------------------------------------- audio out

VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
          "marin", "cedar")
SPEECH_CONTENT_TYPES = {"mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac", "flac": "audio/flac",
                        "wav": "audio/wav", "pcm": "audio/pcm"}
SAMPLE_RATE = 24000


def pcm_for(text: str, speed: float = 1.0) -> bytes:
    """24 kHz 16-bit little-endian mono: a tone whose pitch depends on the text, 60 ms per character."""
    seconds = max(0.25, len(text) * 0.06 / speed)
    freq = 220 + int(hashlib.sha256(text.encode()).hexdigest()[:4], 16) % 440
    period = max(2, SAMPLE_RATE // freq)
    cycle = struct.pack(f"<{period}h", *(int(8000 * math.sin(2 * math.pi * i / period)) for i in range(period)))
    n_bytes = int(seconds * SAMPLE_RATE) * 2
    return (cycle * (n_bytes // len(cycle) + 1))[:n_bytes]


def encode_audio(pcm: bytes, fmt: str) -> bytes:
    """Real WAV/PCM; for compressed formats, bytes with the right magic numbers (not decodable)."""
    if fmt == "pcm":
        return pcm
    if fmt == "wav":
        return (b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt "
                + struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
                + b"data" + struct.pack("<I", len(pcm)) + pcm)
    payload = pcm[::6]  # "compressed"
    if fmt == "mp3":
        frames = [b"\xff\xfb\x90\x64" + payload[i:i + 413] for i in range(0, len(payload), 413)]
        return b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"".join(frames)
    if fmt == "aac":
        return b"".join(b"\xff\xf1\x50\x80\x02\x1f\xfc" + payload[i:i + 512] for i in range(0, len(payload), 512))
    if fmt == "flac":
        return b"fLaC\x00\x00\x00\x22" + bytes(34) + payload
    return b"OggS\x00\x02" + bytes(20) + b"\x13OpusHead\x01\x01\x38\x01\xc0\x5d\x00\x00" + payload  # opus


async def speech(ctx: Ctx) -> None:
    body = ctx.req.json
    if not body.get("model"):
        raise ApiError(400, "you must provide a model parameter")
    model = ctx.mock.lookup_model(body["model"])
    text = body.get("input")
    if not isinstance(text, str) or not text:
        raise ApiError(400, "Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    if len(text) > 4096:
        raise ApiError(400, f"Invalid 'input': string too long. Expected a string with maximum length 4096, but got "
                       f"a string with length {len(text)} instead.", param="input", code="string_above_max_length")
    voice = body.get("voice")
    if voice not in VOICES:
        raise ApiError(400, f"Invalid value: '{voice}'. Supported values are: {', '.join(repr(v) for v in VOICES)}.",
                       param="voice", code="invalid_value")
    fmt = body.get("response_format") or "mp3"
    if fmt not in SPEECH_CONTENT_TYPES:
        raise ApiError(400, f"Invalid value: '{fmt}'. Supported values are: 'mp3', 'opus', 'aac', 'flac', 'wav', "
                       "and 'pcm'.", param="response_format", code="invalid_value")
    speed = body.get("speed", 1.0)
    if not isinstance(speed, (int, float)) or not 0.25 <= speed <= 4.0:
        raise ApiError(400, f"Invalid 'speed': expected a value between 0.25 and 4, but got {speed} instead.",
                       param="speed", code="invalid_value")
    audio = encode_audio(pcm_for(text, float(speed)), fmt)
    if body.get("stream_format") == "sse":
        if model.id in ("tts-1", "tts-1-hd"):
            raise ApiError(400, f"stream_format 'sse' is not supported for model '{model.id}'.", param="stream_format")
        events: list[Any] = [{"type": "speech.audio.delta", "audio": base64.b64encode(audio[i:i + 6000]).decode()}
                             for i in range(0, len(audio), 6000)]
        out_tokens = max(1, len(audio) // 2400)
        events.append({"type": "speech.audio.done", "usage": {
            "input_tokens": approx_tokens(text), "output_tokens": out_tokens,
            "total_tokens": approx_tokens(text) + out_tokens}})
        await ctx.stream(events, done=False)
        return
    await send_chunked(ctx, audio, ctx.mock.speech_content_types[fmt])


async def send_chunked(ctx: Ctx, data: bytes, content_type: str, chunk_size: int = 4096) -> None:
    """A chunked binary body in `chunk_size` writes, honouring slow_first_byte / hang / truncate_after /
    slow_stream."""
    sc = ctx.sc
    sfb = sc.get("slow_first_byte")
    if sfb is not None and not sfb["headers_first"] and await ctx.resp.wait_disconnected(sfb["seconds"]):
        return
    await ctx.resp.start(200, ctx.base_headers(content_type))
    if sfb is not None and sfb["headers_first"]:
        await asyncio.sleep(sfb["seconds"])
    if (hg := sc.get("hang")) is not None:
        await ctx.resp.wait_disconnected(hg["max_seconds"])
        await ctx.resp.abort()
        return
    trunc = sc.get("truncate_after")
    interval = (sc.get("slow_stream") or {}).get("interval", 0.0)
    for k, i in enumerate(range(0, len(data), chunk_size)):
        if trunc is not None and k == trunc["n"]:
            await ctx.resp.abort(rst=trunc["rst"])
            return
        await ctx.resp.write(data[i:i + chunk_size])
        if interval:
            await asyncio.sleep(interval)
    await ctx.resp.end()


# ----------------------------------------------------------------------------------------- moderations

MODERATION_CATEGORIES = ("harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
                         "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "sexual",
                         "sexual/minors", "violence", "violence/graphic")
IMAGE_CATEGORIES = {"self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "violence",
                    "violence/graphic"}
DEFAULT_TRIGGERS: dict[str, tuple[str, ...]] = {
    "kill": ("violence", "harassment/threatening"),
    "hate": ("hate", "harassment"),
    "bomb": ("illicit", "illicit/violent"),
    "suicide": ("self-harm", "self-harm/intent"),
    "nsfw": ("sexual",),
    "gore": ("violence", "violence/graphic"),
}


def _moderation_result(triggers: dict[str, tuple[str, ...]], text: str, has_image: bool) -> dict[str, Any]:
    words = set(re.findall(r"[a-z0-9]+", text.lower()))
    hit = {c for w, cats in triggers.items() if w.lower() in words for c in cats}
    seed = hashlib.sha256(text.encode()).digest()
    scores = {c: (0.97 - i * 0.001 if c in hit else seed[i] / 255 * 0.01)
              for i, c in enumerate(MODERATION_CATEGORIES)}
    applied = {c: (["text"] if text else []) + (["image"] if has_image and c in IMAGE_CATEGORIES else [])
               for c in MODERATION_CATEGORIES}
    return {"flagged": bool(hit), "categories": {c: c in hit for c in MODERATION_CATEGORIES},
            "category_scores": scores, "category_applied_input_types": applied}


async def moderations(ctx: Ctx) -> None:
    body = ctx.req.json
    model = ctx.mock.lookup_model(body.get("model") or "omni-moderation-latest")
    if "input" not in body:
        raise ApiError(400, "Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    inp = body["input"]
    trig = ctx.mock.moderation_triggers
    if isinstance(inp, str):
        results = [_moderation_result(trig, inp, False)]
    elif isinstance(inp, list) and inp and all(isinstance(x, str) for x in inp):
        results = [_moderation_result(trig, x, False) for x in inp]
    elif isinstance(inp, list) and inp and all(isinstance(x, dict) for x in inp):
        text = " ".join(p.get("text", "") for p in inp if p.get("type") == "text")
        results = [_moderation_result(trig, text, any(p.get("type") == "image_url" for p in inp))]
    else:
        raise ApiError(400, "'$.input' is invalid. Please check the API reference: "
                       "https://platform.openai.com/docs/api-reference.", param="input")
    await ctx.send_json({"id": new_id("modr-"), "model": model.snapshot or model.id, "results": results})
